"""/tmp belongs to one environment and persists; frozen environments really stop."""

import os
import time

from tests.handlers import TICKER

TMP = """
import os, uuid
def lambda_handler(event, context):
    if event.get("write"):
        with open("/tmp/note", "w") as f:
            f.write(event["write"])
    return open("/tmp/note").read() if os.path.exists("/tmp/note") else None
"""


def test_tmp_persists_across_warm_invokes(pool, make_spec):
    spec = make_spec(TMP)
    first = pool.invoke(spec, {"write": "hello"})
    second = pool.invoke(spec, {})
    assert first.environment_id == second.environment_id
    assert second.json() == "hello"


def test_tmp_is_not_shared_between_environments(pool, make_spec):
    spec = make_spec(TMP.replace("return open", "import time; time.sleep(0.3)\n    return open"))
    import threading

    results = {}

    def call(name, event):
        results[name] = pool.invoke(spec, event)

    a = threading.Thread(target=call, args=("a", {"write": "from a"}))
    b = threading.Thread(target=call, args=("b", {}))
    a.start()
    b.start()
    a.join(30)
    b.join(30)
    assert results["a"].environment_id != results["b"].environment_id
    assert results["a"].json() == "from a"
    assert results["b"].json() is None


def test_filling_tmp_stops_at_its_size_and_harms_nothing(pool, make_spec):
    spec = make_spec(
        """
import errno, os
def lambda_handler(event, context):
    if event.get("check"):
        return os.path.getsize("/tmp/fill")
    chunk = b"x" * (4 * 1024 * 1024)
    written = 0
    try:
        with open("/tmp/fill", "wb") as f:
            while True:
                f.write(chunk)
                written += len(chunk)
    except OSError as exc:
        return {"errno": exc.errno, "written_mb": written // (1024 * 1024)}
""",
        memory_mb=1024,
        tmp_mb=512,
        timeout_s=30,
    )
    host = os.statvfs("/")
    result = pool.invoke(spec)
    assert result.status == "success", result.payload
    body = result.json()
    if pool.isolation_report.scratch:
        # Lambda gives ENOSPC; btrfs quotas give EDQUOT, and the host's check says so
        assert body["errno"] == 122
        assert any("EDQUOT" in note for note in pool.isolation_report.notes)
    else:
        assert body["errno"] == 28  # ENOSPC
    assert 500 <= body["written_mb"] <= 512
    # the host's disk took at most the size, and the environment still works with its file
    taken = (host.f_bavail - os.statvfs("/").f_bavail) * host.f_frsize
    assert taken < 600 * 1024 * 1024
    again = pool.invoke(spec, {"check": True})
    assert again.environment_id == result.environment_id
    assert again.json() >= 500 * 1024 * 1024


def test_a_background_thread_stops_while_frozen_and_resumes_on_thaw(pool, make_spec):
    spec = make_spec(TICKER, memory_mb=512)
    first = pool.invoke(spec, {"run": 0.1})
    env = pool._all[first.environment_id]
    # the host sees the environment frozen between calls (the kernel completes it on its own)
    deadline = time.monotonic() + 2
    while env.cgroup.freezer_state() != "FROZEN" and time.monotonic() < deadline:
        time.sleep(0.001)
    assert env.cgroup.freezer_state() == "FROZEN"
    frozen_for = 0.6
    time.sleep(frozen_for)  # the time the thread would tick through if it were not frozen
    second = pool.invoke(spec, {"run": 0.1})
    a, b = first.json(), second.json()
    # no progress while frozen: one gap as long as the freeze, not ~120 ticks
    assert b["max_gap"] >= frozen_for * 0.9
    ticks_while_frozen = b["count"] - a["count"]
    assert ticks_while_frozen < 0.1 / 0.005 * 1.5 + 5  # only the ~20 ticks of the second call
    # and it resumed after the thaw: it ticked during the second call
    assert b["last"] > a["last"] + frozen_for
