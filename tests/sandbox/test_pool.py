"""Pool rules: idle eviction, provisioned concurrency, the capacity bound, slow Init."""

import os
import threading
import time

import pytest

from sandbox import PoolCapacityError
from tests.procs import still_running

QUICK = "def lambda_handler(event, context):\n    return event\n"


def test_an_idle_environment_is_shut_down_and_the_next_call_is_cold(make_pool, make_spec):
    from tests.conftest import Recorder

    recorder = Recorder()
    pool = make_pool(on_event=recorder)
    spec = make_spec(QUICK, idle_timeout_s=0.5)
    first = pool.invoke(spec, {"n": 1})
    shutdown = recorder.wait_for(
        lambda e: e["type"] == "shutdown" and e["environment"] == first.environment_id
    )
    assert shutdown["reason"] == "idle"
    assert pool.environments() == []
    second = pool.invoke(spec, {"n": 2})
    assert second.cold and second.environment_id != first.environment_id


def test_provisioned_environments_are_initialised_ahead_and_serve_warm(make_pool, make_spec):
    pool = make_pool()
    spec = make_spec(
        "import os\nTYPE = os.environ['AWS_LAMBDA_INITIALIZATION_TYPE']\n"
        "def lambda_handler(event, context):\n    return TYPE\n"
    )
    ids = pool.provision(spec, 2)
    assert len(set(ids)) == 2
    assert {e["state"] for e in pool.environments()} == {"idle"}
    result = pool.invoke(spec)
    assert not result.cold and result.environment_id in ids
    assert result.json() == "provisioned-concurrency"
    assert "Init Duration" not in result.report


def test_a_call_over_the_bound_is_refused_with_a_clear_error(make_pool, make_spec):
    from tests.conftest import Recorder

    recorder = Recorder()
    pool = make_pool(max_environments=1, on_event=recorder)
    slow = make_spec(
        "import time\ndef lambda_handler(event, context):\n    time.sleep(event['s'])\n    return 1\n"
    )
    results = []
    t = threading.Thread(target=lambda: results.append(pool.invoke(slow, {"s": 1.5})))
    t.start()
    # the first call is in its handler: it holds the only slot for the next 1.5 s
    (occupied,) = recorder.wait_count(1, "invoke.start", timeout=30)
    with pytest.raises(PoolCapacityError, match="busy"):
        pool.invoke(slow, {"s": 0})
    t.join(30)
    assert results[0].status == "success"
    assert results[0].request_id == occupied["request_id"]
    assert len(recorder.of("invoke.start")) == 1  # the refused call never started


def test_at_the_bound_an_idle_environment_of_another_function_makes_room(make_pool, make_spec):
    from tests.conftest import Recorder

    recorder = Recorder()
    pool = make_pool(max_environments=1, on_event=recorder)
    a = pool.invoke(make_spec(QUICK), {"f": "a"})
    b = pool.invoke(make_spec(QUICK + "# b\n"), {"f": "b"})
    assert b.status == "success" and b.environment_id != a.environment_id
    assert recorder.of("shutdown", environment=a.environment_id)[0]["reason"] == "capacity"


@pytest.mark.slow
def test_init_over_10_s_is_retried_inside_the_first_invoke(pool, recorder, make_spec):
    spec = make_spec(
        "import time\ntime.sleep(10.5)\ndef lambda_handler(event, context):\n    return 'late but ready'\n",
        timeout_s=15,
    )
    result = pool.invoke(spec)
    assert result.status == "success", result.payload
    assert result.json() == "late but ready"
    init_report = next(line for line in result.logs if line.startswith("INIT_REPORT"))
    duration = float(init_report.split("Init Duration: ")[1].split(" ms")[0])
    assert 10000 <= duration < 10500
    assert init_report.endswith("\tPhase: init\tStatus: timeout")
    assert "Init Duration" not in result.report  # the retried Init is part of this invoke's Duration
    assert result.duration_ms > 10000
    assert recorder.of("init.start", request_id=result.request_id, phase="invoke")
    assert pool.invoke(spec).environment_id == result.environment_id


def test_shutdown_without_extensions_kills_the_runtime_at_once(make_pool, make_spec):
    """Lambda's Shutdown phase is 0 ms when no extension is registered: no SIGTERM grace."""
    from tests.conftest import Recorder

    recorder = Recorder()
    pool = make_pool(on_event=recorder)
    stubborn = make_spec("import signal\nsignal.signal(signal.SIGTERM, lambda *a: None)\n" + QUICK)
    a = pool.invoke(stubborn)
    pids_a = pool._all[a.environment_id].cgroup.pids()
    t0 = time.monotonic()
    assert pool.shutdown_environment(a.environment_id, reason="request")
    assert time.monotonic() - t0 < 1.0  # not the 2 s an extension would get
    assert recorder.of("shutdown", environment=a.environment_id)[0]["reason"] == "request"
    assert still_running(pids_a) == []
    assert pool.environments() == []


def test_max_memory_used_is_the_real_peak_not_the_configured_size(pool, make_spec):
    spec = make_spec(
        "def lambda_handler(event, context):\n"
        "    block = bytearray(event['mb'] * 1024 * 1024)\n    return len(block)\n",
        memory_mb=1024,
    )
    small = pool.invoke(spec, {"mb": 1})
    big = pool.invoke(spec, {"mb": 200})
    assert small.max_memory_used_mb < 60
    assert 200 <= big.max_memory_used_mb < 300
    assert f"\tMemory Size: 1024 MB\tMax Memory Used: {big.max_memory_used_mb} MB\t" in big.report


def test_the_state_folder_drops_code_and_runtimes_unused_for_long(tmp_path):
    from sandbox import jail

    (tmp_path / "code" / "old").mkdir(parents=True)
    (tmp_path / "code" / "fresh").mkdir()
    (tmp_path / "runtime" / "current").mkdir(parents=True)
    (tmp_path / "runtime" / "stale").mkdir()
    week_ago = time.time() - 8 * 86400
    for name in ("code/old", "runtime/stale", "runtime/current"):
        os.utime(tmp_path / name, (week_ago, week_ago))
    removed = jail.prune_state(tmp_path, tmp_path / "runtime" / "current")
    assert sorted(p.name for p in removed) == ["old", "stale"]
    assert (tmp_path / "code" / "fresh").exists() and (tmp_path / "runtime" / "current").exists()


def test_close_lets_a_call_in_flight_finish_then_tears_its_environment_down(make_pool, make_spec):
    from tests.conftest import Recorder

    recorder = Recorder()
    pool = make_pool(on_event=recorder)
    spec = make_spec(
        "import time\ndef lambda_handler(event, context):\n    time.sleep(0.5)\n    return 'done'\n"
    )
    outcome = {}
    call = threading.Thread(target=lambda: outcome.setdefault("result", pool.invoke(spec)))
    call.start()
    started = recorder.wait_for(lambda e: e["type"] == "invoke.start")
    pids = pool._all[started["environment"]].cgroup.pids()
    pool.close()
    call.join(10)
    assert outcome["result"].status == "success" and outcome["result"].json() == "done"
    assert recorder.of("shutdown", environment=started["environment"])[0]["reason"] == "close"
    assert still_running(pids) == []
    assert pool.environments() == []
