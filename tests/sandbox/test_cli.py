"""The CLI, run as a user would run it."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "docs" / "examples" / "hello.py"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_invoke_prints_what_cloudwatch_would_and_each_result():
    done = run("invoke", str(HELLO), "--count", "2", "--event", '{"who": "cli"}')
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("INIT_START Runtime Version: python:3.11.")
    starts = [line for line in lines if line.startswith("START RequestId: ")]
    reports = [line for line in lines if line.startswith("REPORT RequestId: ")]
    assert len(starts) == len(reports) == 2
    assert "Init Duration" in reports[0] and "Init Duration" not in reports[1]
    assert any("call 2, event {'who': 'cli'}" in line for line in lines)
    assert sum(line.startswith("# ") for line in lines) == 2
    assert ", cold, " in next(line for line in lines if line.startswith("# 1:"))
    assert ", warm, " in next(line for line in lines if line.startswith("# 2:"))


def test_invoke_json_prints_one_lifecycle_event_per_line():
    done = run("invoke", str(HELLO), "--json", "--count", "2", "--concurrency", "2")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types.count("invoke.end") == 2
    assert types.count("init.start") == 2  # two at once: two environments
    ends = [e for e in events if e["type"] == "invoke.end"]
    assert {e["status"] for e in ends} == {"success"}
    assert len({e["environment"] for e in ends}) == 2
    for e in events:
        assert {"type", "time", "function", "environment", "request_id"} <= set(e)


def test_invoke_reads_the_event_from_a_file_and_a_code_folder(tmp_path):
    (tmp_path / "event.json").write_text('{"from": "file"}')
    code = tmp_path / "fn"
    code.mkdir()
    (code / "app.py").write_text("def handler(event, context):\n    return {'got': event}\n")
    done = run(
        "invoke",
        str(code),
        "--handler",
        "app.handler",
        "--event-file",
        str(tmp_path / "event.json"),
        "--memory",
        "256",
        "--timeout",
        "5",
    )
    assert done.returncode == 0, done.stderr
    assert '-> {"got": {"from": "file"}}' in done.stdout
    assert "\tMemory Size: 256 MB\t" in done.stdout


def test_a_failing_handler_still_exits_0():
    done = run("invoke", str(HELLO), "--handler", "hello.missing")
    assert done.returncode == 0
    assert "Runtime.HandlerNotFound" in done.stdout


def test_bad_arguments_exit_2_with_one_line():
    for args in (
        ("invoke", str(HELLO), "--memory", "64"),
        ("invoke", str(HELLO), "--event", "{not json"),
        ("invoke", "/no/such/file.py"),
        ("invoke", str(HELLO), "--count", "0"),
        ("invoke", str(HELLO), "--timeout", "soon"),
    ):
        done = run(*args)
        assert done.returncode == 2, args
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "memory_mb" in run("invoke", str(HELLO), "--memory", "64").stderr


def test_check_reports_every_feature_strong_here():
    done = run("check")
    assert done.returncode == 0, done.stdout
    for feature in ("namespaces", "memory", "pids", "cpu", "freezer", "seccomp", "uid"):
        assert any(line.startswith(feature) and " strong " in line for line in done.stdout.splitlines())
    assert "FAIL" not in done.stdout
    assert done.stdout.strip().endswith("isolation: strong")
