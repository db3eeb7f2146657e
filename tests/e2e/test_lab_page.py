"""The lab page in a real browser, as a student uses it: by role and name, waiting on the page's signals."""

from __future__ import annotations

import json
import re
import time

import pytest
import redis
from django.conf import settings

from .conftest import shot

pytestmark = pytest.mark.slow

COUNTING = """import uuid

INSTANCE_ID = uuid.uuid4().hex[:8]
calls = 0


def lambda_handler(event, context):
    global calls
    calls += 1
    print(f"instance {INSTANCE_ID}: call {calls}")
    return {"instance": INSTANCE_ID, "calls": calls}
"""


def set_code(page, code: str) -> None:
    """Type the handler into the editor, as a student pastes it."""
    editor = page.locator(".cm-content").first
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)


def ended(page) -> int:
    return page.evaluate("window.lambdalab.ended")


def wait_ended(page, n: int, timeout: float = 60_000) -> None:
    page.wait_for_function(f"window.lambdalab.ended >= {n}", timeout=timeout)


def calls(page) -> list[dict]:
    """The calls the page shows, newest first: the table's rows, from the page's own state."""
    return page.evaluate("window.lambdalab.calls()")


def invoke(page, times: int = 1) -> None:
    for _ in range(times):
        before = ended(page)
        page.get_by_role("button", name="Invoke", exact=True).click()
        wait_ended(page, before + 1)


def test_three_invokes_are_one_cold_start_and_two_warm_calls_in_one_environment(page):
    set_code(page, COUNTING)
    invoke(page)
    shot(page, "1-first-cold-call")
    invoke(page, 2)
    shot(page, "2-warm-calls")
    shown = calls(page)
    assert [c["cold"] for c in shown] == [False, False, True]
    assert shown[-1]["init_reason_text"] == "the first call"
    assert len({c["environment"] for c in shown}) == 1 and page.evaluate("window.lambdalab.lanes") == 1
    assert len({json.loads(c["response"])["instance"] for c in shown}) == 1
    table = page.get_by_role("grid", name="Invocations, newest first")
    assert table.get_by_role("gridcell", name=re.compile(r"\bcold\b")).count() == 1
    assert table.get_by_role("gridcell", name=re.compile(r"\bwarm\b")).count() == 2
    assert page.get_by_text("the first call").first.is_visible()


def test_a_burst_of_five_makes_five_lanes(page):
    set_code(
        page, "import time\n\ndef lambda_handler(event, context):\n    time.sleep(0.5)\n    return 'ok'\n"
    )
    page.get_by_label("How many at once").fill("5")
    page.get_by_role("button", name="Invoke at once").click()
    wait_ended(page, 5)
    assert page.evaluate("window.lambdalab.lanes") == 5
    shot(page, "3-burst-of-five")


def test_a_timeout_shows_sandbox_timedout_and_the_next_call_re_initialises(page):
    set_code(
        page,
        "import time\n\ndef lambda_handler(event, context):\n    time.sleep(event.get('s', 5))\n    return 'ok'\n",
    )
    page.get_by_label("Timeout (s)").fill("1")
    invoke(page)
    assert page.get_by_text("Sandbox.Timedout").first.is_visible()
    shot(page, "4-timeout")
    invoke(page)
    assert page.get_by_text("re-initialised after a timeout").first.is_visible()


def test_editing_the_code_makes_the_next_call_cold_and_says_why(page):
    invoke(page)
    invoke(page)
    set_code(page, COUNTING + "\n# edited\n")
    invoke(page)
    assert page.get_by_text("the code or a setting changed: a new revision").first.is_visible()
    assert page.get_by_text(re.compile(r"revision 2")).first.is_visible()


def test_a_syntax_error_is_marked_in_the_editor_with_lambdas_error(page):
    set_code(page, "def lambda_handler(event, context)\n    return 1\n")
    invoke(page)
    assert page.get_by_text("Runtime.UserCodeSyntaxError").first.is_visible()
    page.wait_for_selector(".cm-lintRange-error, .cm-lint-marker-error", timeout=10_000)
    shot(page, "5-syntax-error")


def test_a_websocket_cut_mid_burst_reconnects_and_shows_every_invocation_once(page, browser):
    set_code(page, "import time\n\ndef lambda_handler(event, context):\n    time.sleep(1)\n    return 'ok'\n")
    page.get_by_label("How many at once").fill("6")
    page.get_by_role("button", name="Invoke at once").click()
    page.wait_for_function("window.lambdalab.invocations >= 1", timeout=30_000)
    # cut the page's event stream from the server: kill the consumer's Redis connection
    r = redis.Redis.from_url(settings.REDIS_URL)
    killed = 0
    deadline = time.monotonic() + 10
    while not killed and time.monotonic() < deadline:
        for client in r.client_list():
            if client.get("name", "").startswith("ll-ws-"):
                r.client_kill_filter(_id=client["id"])
                killed += 1
    assert killed, "no WebSocket consumer connection to cut"
    wait_ended(page, 6)
    page.wait_for_function("window.lambdalab.reconnects >= 1", timeout=30_000)
    ids = page.evaluate("window.lambdalab.requestIds()")
    assert len(ids) == len(set(ids)) == 6  # every invocation once


def test_two_visitors_with_the_same_code_get_different_environments(page, browser, lab_server):
    set_code(page, COUNTING)
    invoke(page)
    other = browser.new_context(base_url=lab_server).new_page()
    other.goto("/")
    other.wait_for_function("window.lambdalab && window.lambdalab.ready === true", timeout=30_000)
    set_code(other, COUNTING)
    invoke(other)
    mine = page.evaluate("window.lambdalab.environmentIds()")
    theirs = other.evaluate("window.lambdalab.environmentIds()")
    assert mine and theirs and not set(mine) & set(theirs)
    # and someone else's function id is not found
    function_id = page.evaluate("window.lambdalab.functionId")
    answer = other.goto(f"/f/{function_id}/")
    assert answer.status == 404
    api = other.request.get(f"/api/functions/{function_id}")
    assert api.status == 404 and json.loads(api.text())["error"]["type"] == "ResourceNotFoundException"
    other.context.close()


def test_the_page_refuses_bad_settings_next_to_the_field(page):
    memory = page.get_by_label("Memory (MB)")
    memory.fill("64")
    page.get_by_role("button", name="Invoke", exact=True).click()
    assert memory.get_attribute("aria-invalid") == "true"
    assert page.get_by_text(re.compile("between 128 and 10,?240")).first.is_visible()
    assert ended(page) == 0  # nothing ran


def test_what_a_handler_prints_or_returns_is_shown_as_text_never_run(page):
    fired = []
    page.on("dialog", lambda dialog: (fired.append(dialog.message), dialog.dismiss()))
    payload = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    set_code(
        page,
        f"def lambda_handler(event, context):\n    print({payload!r})\n    raise ValueError({payload!r})\n",
    )
    invoke(page)
    page.get_by_role("grid", name="Invocations, newest first").get_by_role("gridcell").first.click()
    page.wait_for_timeout(300)  # let any injected handler have its chance to fire
    assert not fired
    assert page.locator("img[src=x]").count() == 0
    assert page.get_by_text("<img src=x onerror=alert(1)>", exact=False).first.is_visible()


def test_a_burst_against_reserved_concurrency_shows_the_throttles(page):
    set_code(page, "import time\n\ndef lambda_handler(event, context):\n    time.sleep(1)\n    return 'ok'\n")
    page.get_by_label("Reserved concurrency").fill("2")
    page.get_by_label("How many at once").fill("4")
    page.get_by_role("button", name="Invoke at once").click()
    wait_ended(page, 4)
    statuses = sorted(c["status"] for c in calls(page))
    assert statuses == ["success", "success", "throttled", "throttled"]
    assert page.evaluate("window.lambdalab.lanes") == 2
    grid = page.get_by_role("grid", name="Invocations, newest first")
    assert grid.get_by_text("TooManyRequestsException").count() >= 1
    assert page.get_by_text("2 cold, 0 warm · 2 throttled (reserved concurrency)").is_visible()
    bar = page.get_by_role("progressbar", name="Calls of the batch done")
    assert bar.get_attribute("aria-valuenow") == "4" and bar.get_attribute("aria-valuemax") == "4"
    assert bar.locator(".seg.cold").get_attribute("style") == "width:50%"
    assert bar.locator(".seg.throttled").get_attribute("style") == "width:50%"
    shot(page, "8-reserved-concurrency-throttles")


def test_lifecycle_controls_evict_and_reset_an_environment_on_demand(page):
    set_code(page, COUNTING)
    invoke(page)
    invoke(page)
    page.get_by_role("button", name=re.compile(r"^Reset the runtime of environment")).click()
    page.wait_for_function("(window.lambdalab.counts.reset || 0) >= 1", timeout=15_000)
    invoke(page)
    assert calls(page)[0]["init_reason"] == "reset_request"
    assert page.get_by_text("re-initialised: its runtime was reset on request").first.is_visible()
    page.get_by_role("button", name=re.compile(r"^Evict environment .* now$")).click()
    page.wait_for_function(
        "window.lambdalab.environmentIds().length === 1 && document.querySelector('#alive .none') !== null",
        timeout=15_000,
    )
    invoke(page)
    newest = calls(page)[0]
    assert newest["cold"] and newest["init_reason"] == "evicted"
    shot(page, "9-lifecycle-controls")


def test_always_cold_beside_lambdas_model_then_provisioned_concurrency(page):
    set_code(page, COUNTING)
    invoke(page, 2)  # Lambda's model: one environment, warm the second time
    page.get_by_label(re.compile(r"Always cold")).check()
    invoke(page, 2)  # the emulator's: a new environment each time, discarded after it
    shown = calls(page)
    assert [c["init_reason"] for c in shown[:2]] == ["always_cold", "always_cold"]
    assert [json.loads(c["response"])["calls"] for c in shown] == [1, 1, 2, 1]
    assert page.locator(".lane-kind.always-cold").count() == 2
    page.wait_for_function(
        "[...document.querySelectorAll('.lane-sub')].filter(t => t.textContent.includes('discarded')).length === 2",
        timeout=15_000,
    )
    assert page.get_by_text("always-cold mode: a new environment for every call").first.is_visible()
    shot(page, "10-always-cold-beside-lambda")

    page.get_by_label(re.compile(r"Always cold")).uncheck()
    # revision 2 (the warm environment above is revision 1's), whose calls last: three at once overlap
    set_code(page, COUNTING.replace("    calls += 1\n", "    calls += 1\n    __import__('time').sleep(1)\n"))
    page.get_by_label("Provisioned concurrency").fill("2")
    page.get_by_role("button", name="Provision").click()
    page.wait_for_function("document.querySelectorAll('.lane-kind.provisioned').length === 2", timeout=30_000)
    page.get_by_text("2 provisioned environments ready").wait_for(timeout=30_000)
    before = set(page.evaluate("window.lambdalab.environmentIds()"))
    page.get_by_label("How many at once").fill("3")
    page.get_by_role("button", name="Invoke at once").click()
    wait_ended(page, 7)
    burst = calls(page)[:3]
    assert sorted(c["cold"] for c in burst) == [False, False, True]  # two provisioned, one on demand
    new = set(page.evaluate("window.lambdalab.environmentIds()")) - before
    assert len(new) == 1 and {c["environment"] for c in burst if c["cold"]} == new
    shot(page, "11-provisioned-concurrency")


INSPECTED = """CACHE = {"model": "loaded"}
calls = 0

with open("/tmp/model.bin", "wb") as f:
    f.write(b"m" * 4096)


class Sneaky:
    def __repr__(self):
        with open("/tmp/called", "a") as f:
            f.write("repr ran")
        return "sneaky"


SNEAKY = Sneaky()
NOTE = "<img src=x onerror=alert(1)>"


def lambda_handler(event, context):
    global calls
    calls += 1
    return {"calls": calls}
"""


def test_the_state_inspector_shows_a_frozen_environments_globals_and_tmp(page):
    set_code(page, INSPECTED)
    invoke(page, 2)
    page.get_by_role("button", name=re.compile(r"^Inspect the state of environment")).click()
    page.wait_for_function("window.lambdalab.inspected() >= 1", timeout=15_000)
    panel = page.get_by_role("region", name=re.compile(r"^State of environment"))
    names = panel.get_by_role("table", name=re.compile(r"^Module globals"))
    assert names.get_by_role("row", name=re.compile(r"^calls int 2$")).is_visible()
    assert names.get_by_role("row", name=re.compile(r"^SNEAKY Sneaky <Sneaky object>$")).is_visible()
    assert names.get_by_role(
        "row", name="NOTE str '<img src=x onerror=alert(1)>'"
    ).is_visible()  # text, not HTML
    assert panel.locator("img").count() == 0
    tmp = panel.get_by_role("table", name=re.compile(r"^.tmp \d+$"))  # "/tmp 1": no slash in the pattern
    assert tmp.get_by_role("row", name="/tmp/model.bin 4.0 KB file").is_visible()
    assert tmp.get_by_text("/tmp/called").count() == 0  # its __repr__ never ran
    page.locator("#inspector").evaluate("el => el.scrollIntoView({block: 'end'})")
    shot(page, "10-state-inspector")
    invoke(page)
    assert json.loads(calls(page)[0]["response"]) == {"calls": 3}  # inspecting ran nothing of the function


def test_a_connection_opened_in_init_is_reused_by_warm_calls_and_marked_on_the_timeline(page):
    from lambdalab.courses import builtin

    set_code(page, builtin.CONNECT_IN_INIT)
    invoke(page, 3)
    shown = calls(page)
    assert [json.loads(c["response"]) for c in reversed(shown)] == [
        {"calls": n, "connections_opened": 1} for n in (1, 2, 3)
    ]
    page.wait_for_function("(window.lambdalab.counts['service.connect'] || 0) === 1", timeout=15_000)
    assert page.locator(".mk-service").count() == 1
    # a connection per call instead: one more opened by each call
    set_code(page, builtin.CONNECT_PER_CALL)
    invoke(page, 2)
    assert [json.loads(c["response"])["connections_opened"] for c in calls(page)[:2]] == [3, 2]
    page.wait_for_function("(window.lambdalab.counts['service.connect'] || 0) === 3", timeout=15_000)
    shot(page, "12-connection-reuse")
