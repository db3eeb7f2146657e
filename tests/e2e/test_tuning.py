"""Power tuning in a real browser: pick sizes, run, and read the chart and the verdict."""

from __future__ import annotations

import re

import pytest

from .conftest import shot
from .test_lab_page import set_code

pytestmark = pytest.mark.slow

CPU_BOUND = """def lambda_handler(event, context):
    total = 0
    for i in range(250_000):
        total += i * i
    return {"total": total}
"""


def pick_sizes(page, sizes: list[int]) -> None:
    panel = page.get_by_role("region", name="Power tuning")
    for box in panel.get_by_role("checkbox").all():
        box.set_checked(int(box.get_attribute("value")) in sizes)


def run_tuning(page, sizes: list[int], count: int) -> None:
    panel = page.get_by_role("region", name="Power tuning")
    pick_sizes(page, sizes)
    panel.get_by_label("Calls per size").fill(str(count))
    panel.get_by_role("button", name="Power tuning").click()
    page.wait_for_function(
        "window.lambdalab.tuning && ['done', 'failed'].includes(window.lambdalab.tuning.status)",
        timeout=120_000,
    )


def test_power_tuning_draws_duration_and_cost_at_each_size_and_says_which_is_best(page):
    set_code(page, CPU_BOUND)
    run_tuning(page, [128, 1769], 2)
    assert page.evaluate("window.lambdalab.tuning.status") == "done"
    panel = page.get_by_role("region", name="Power tuning")
    chart = panel.locator("svg.tune-chart")
    assert chart.locator("g.pt.dur").count() == 2 and chart.locator("g.pt.cost").count() == 2
    assert chart.get_by_role("img", name=re.compile(r"^1,769 MB: .* ms$")).count() == 1
    assert chart.locator("g.pt.dur.best").get_attribute("aria-label").startswith("1,769 MB")
    verdict = panel.locator(".verdict").inner_text()
    assert "1,769 MB: fastest" in verdict and "cheapest" in verdict and "best balance" in verdict
    assert panel.get_by_role("status").inner_text().startswith("Done: 4 calls at 2 sizes")
    table = panel.get_by_role("table", name="Power tuning, by memory size")
    assert table.get_by_role("row").count() == 3  # the head and a row per size
    # the tuning's calls are invocations too, each with its cost; the meter sums them
    assert page.evaluate("window.lambdalab.calls().length") == 4
    assert re.match(
        r"These 4 calls: [\d.]+ GB-s \(Init [\d.e-]+ GB-s of it\), \$0\.0",
        page.locator("#meter").inner_text(),
    )
    panel.scroll_into_view_if_needed()
    shot(page, "tuning-2-sizes")


def test_an_out_of_memory_size_shows_as_an_error_and_is_never_the_verdict(page):
    set_code(
        page,
        "def lambda_handler(event, context):\n"
        "    block = bytearray(150 * 1024 * 1024)\n"
        "    total = 0\n"
        "    for i in range(250_000):\n"
        "        total += i * i\n"
        "    return len(block) + total\n",
    )
    run_tuning(page, [128, 256, 1024], 2)
    panel = page.get_by_role("region", name="Power tuning")
    chart = panel.locator("svg.tune-chart")
    error = chart.locator("g.pt.err")
    assert error.count() == 1 and error.get_attribute("aria-label") == "128 MB: Runtime.OutOfMemory"
    assert chart.locator("g.pt.dur").count() == 2  # the sizes that ran
    verdict = panel.locator(".verdict").inner_text()
    assert "128 MB" not in verdict and "cheapest" in verdict
    assert "(1 with errors)" in panel.get_by_role("status").inner_text()
    page.locator("#tuning").screenshot(path="tests/e2e/screenshots/tuning-with-an-error.png")
