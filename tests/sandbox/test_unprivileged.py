"""Started by an ordinary user (no root, so no uids to pick and no cgroups), the engine still
jails, falls back where it must, and says what it achieved."""

import json
import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USER = 900_000  # below the engine's uid blocks (from 1,000,000)

SCRIPT = """
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sandbox import EnvironmentPool, FunctionSpec
spec = FunctionSpec(source=(
    "import os, socket\\n"
    "def lambda_handler(e, c):\\n"
    "    s = socket.socket(socket.AF_UNIX)\\n"
    "    s.connect(os.environ['LAB_SERVICE_SOCKET'])\\n"
    "    s.sendall(b'INCR n\\\\n')\\n"
    "    return [os.getuid(), os.path.exists('/work'), s.makefile().readline().strip()]\\n"
))
with EnvironmentPool(stem_cells=0) as pool:
    first, second = pool.invoke(spec), pool.invoke(spec)
    print(json.dumps({
        "statuses": [first.status, second.status],
        "cold": [first.cold, second.cold],
        "payload": first.json(),
        "features": {f.name: f.level for f in pool.isolation_report.features},
    }))
"""


@pytest.fixture
def world_readable_copy():
    """The engine and its one dependency where any user can read them."""
    folder = Path(tempfile.mkdtemp(prefix="lambdalab-user-", dir="/tmp"))
    try:
        shutil.copytree(ROOT / "sandbox", folder / "sandbox", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(Path(sysconfig.get_paths()["purelib"]) / "pyseccomp.py", folder)
        (folder / "run.py").write_text(SCRIPT)
        for path in [folder, *folder.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(f"/tmp/lambdalab-{USER}", ignore_errors=True)


def test_an_ordinary_user_gets_jails_with_fallbacks_reported(world_readable_copy):
    done = subprocess.run(
        [
            "setpriv",
            f"--reuid={USER}",
            f"--regid={USER}",
            "--clear-groups",
            "--",
            "/usr/bin/python3",
            "-I",
            str(world_readable_copy / "run.py"),
        ],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["statuses"] == ["success", "success"] and report["cold"] == [True, False]
    assert report["payload"] == [993, False, "1"]  # jailed all the same, with the lab service
    features = report["features"]
    assert features["namespaces"] == features["seccomp"] == "strong"
    assert features["uid"] == "partial"  # environments share the user's uid
    assert features["memory"] == features["cpu"] == "none"  # no cgroups to write
    assert features["freezer"] == features["pids"] == "partial"  # SIGSTOP and RLIMIT_NPROC
