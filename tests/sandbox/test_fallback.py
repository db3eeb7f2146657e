"""Without cgroups and seccomp the engine still runs, falls back, and says what it achieved."""

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.handlers import TICKER

ROOT = Path(__file__).resolve().parents[2]


def test_without_cgroups_the_pool_falls_back_and_reports_partial_isolation(make_pool, make_spec):
    pool = make_pool(disable=["cgroups", "seccomp"], stem_cells=0)
    report = pool.isolation_report
    levels = {f.name: f.level for f in report.features}
    assert report.level == "none"
    assert levels["memory"] == "none" and levels["seccomp"] == "none"
    assert levels["freezer"] == "partial" and levels["pids"] == "partial"
    assert levels["namespaces"] == "strong"
    spec = make_spec(TICKER, timeout_s=1)
    first = pool.invoke(spec, {"run": 0.05})
    env = pool._all[first.environment_id]
    assert env.cgroup is None
    time.sleep(0.4)  # frozen by SIGSTOP meanwhile
    second = pool.invoke(spec, {"run": 0.05, "allocate_mb": 30})
    assert second.environment_id == first.environment_id
    assert second.json()["max_gap"] >= 0.35
    assert second.max_memory_used_mb >= 30  # the runtime's peak RSS stands in for the cgroup's peak
    timed_out = pool.invoke(spec, {"hang": True})
    assert timed_out.status == "timeout"
    after = pool.invoke(spec, {"run": 0.05})  # the agent killed the runtime; the environment is reused
    assert after.status == "success" and after.environment_id == first.environment_id


def test_check_exits_non_zero_below_strong():
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LAMBDALAB_DISABLE": "cgroups"},
    )
    assert done.returncode == 1
    assert any(line.startswith("memory") and " none " in line for line in done.stdout.splitlines())
    assert "isolation: none (below strong" in done.stdout


def test_without_the_scratch_disk_tmp_is_a_tmpfs_and_check_says_so(make_pool, make_spec):
    pool = make_pool(disable=["scratch"], stem_cells=1)
    levels = {f.name: f.level for f in pool.isolation_report.features}
    assert levels["tmp"] == "partial" and pool._scratch is None
    spec = make_spec(
        """
import os
def lambda_handler(event, context):
    try:
        with open("/tmp/fill", "wb") as f:
            while True:
                f.write(b"x" * (1 << 20))
    except OSError as exc:
        return [exc.errno, os.path.getsize("/tmp/fill") >> 20, os.statvfs("/tmp").f_blocks * os.statvfs("/tmp").f_frsize >> 20]
""",
        memory_mb=1024,
        tmp_mb=600,  # not the stem cell's 512: a jail of its own
        timeout_s=30,
    )
    result = pool.invoke(spec)
    assert result.status == "success", result.payload
    errno, written_mb, size_mb = result.json()
    assert errno == 28 and 590 <= written_mb <= 600 and size_mb == 600  # a tmpfs: ENOSPC, df right
