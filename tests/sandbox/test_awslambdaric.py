"""AWS's own runtime interface client runs unchanged against our Runtime API."""

import shutil
import sysconfig
from pathlib import Path

HANDLER = """
import os
calls = 0

def handler(event, context):
    global calls
    calls += 1
    print("hello from awslambdaric", context.aws_request_id)
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"calls": calls, "remaining": context.get_remaining_time_in_millis(), "runtime": os.environ.get("AWS_EXECUTION_ENV")}
"""

BOOTSTRAP = """#!/bin/sh
# A custom runtime (provided): AWS's runtime interface client, as in a container image.
exec /var/lang/bin/python3 -m awslambdaric lambda_function.handler
"""


def code_folder(tmp_path: Path) -> Path:
    site = Path(sysconfig.get_paths()["purelib"])
    folder = tmp_path / "function"
    folder.mkdir()
    for name in ("awslambdaric", "simplejson"):
        shutil.copytree(site / name, folder / name, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    for pattern in ("runtime_client*.so", "snapshot_restore_py.py"):
        for path in site.glob(pattern):
            shutil.copy(path, folder / path.name)
    (folder / "lambda_function.py").write_text(HANDLER)
    (folder / "bootstrap").write_text(BOOTSTRAP)
    (folder / "bootstrap").chmod(0o755)
    return folder


def test_awslambdaric_runs_a_handler_warm_and_reports_its_errors(pool, tmp_path):
    from sandbox import FunctionSpec

    spec = FunctionSpec(
        code_dir=str(code_folder(tmp_path)), runtime="provided", handler="lambda_function.handler"
    )
    first = pool.invoke(spec, {"n": 1})
    assert first.status == "success", (first.payload, first.logs)
    assert first.json()["calls"] == 1
    assert 0 < first.json()["remaining"] <= 3000
    assert f"hello from awslambdaric {first.request_id}" in first.logs
    second = pool.invoke(spec, {"n": 2})
    assert not second.cold and second.environment_id == first.environment_id
    assert second.json()["calls"] == 2
    failed = pool.invoke(spec, {"fail": True})
    assert failed.status == "error" and failed.error_type == "RuntimeError"
    assert failed.json()["errorMessage"] == "asked to fail"
    assert any(line.startswith("[ERROR] RuntimeError: asked to fail") for line in failed.logs)


def test_a_custom_runtime_without_bootstrap_fails_init_clearly(pool, tmp_path):
    from sandbox import FunctionSpec

    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "lambda_function.py").write_text("x = 1\n")
    result = pool.invoke(FunctionSpec(code_dir=str(folder), runtime="provided"))
    assert result.status == "error"
    assert result.error_type == "Runtime.InvalidEntrypoint"
    assert "Couldn't find valid bootstrap(s)" in result.json()["errorMessage"]
