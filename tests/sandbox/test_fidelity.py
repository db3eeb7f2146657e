"""Behaviours Lambda documents (lambda-model.md, awslambdaric's source) that the probes found wrong."""

from __future__ import annotations

import re
import textwrap

import pytest

from sandbox import FunctionSpec

# -- memory ------------------------------------------------------------------------------

HOLDER = """
held = []
def lambda_handler(event, context):
    if event.get("hold_mb"):
        held.append(bytearray(event["hold_mb"] * 1024 * 1024))
    if event.get("brief_mb"):
        block = bytearray(event["brief_mb"] * 1024 * 1024)
        del block
    if event.get("crash"):
        import os
        os._exit(1)
    return sum(len(b) for b in held)
"""


def test_a_128_mb_function_is_held_to_128_mb(pool, make_spec):
    spec = make_spec(HOLDER, timeout_s=30)
    result = pool.invoke(spec, {"hold_mb": 140})
    assert result.status == "error" and result.error_type == "Runtime.OutOfMemory"
    assert "Max Memory Used: 128 MB" in result.report


def test_120_mb_of_data_does_not_fit_beside_the_runtime_in_128_mb(pool, make_spec):
    """The runtime's own pages count: as on Lambda, 120 MB of data at 128 MB runs out of memory."""
    result = pool.invoke(make_spec(HOLDER, timeout_s=30), {"hold_mb": 120})
    assert result.error_type == "Runtime.OutOfMemory"


def test_max_memory_used_never_exceeds_memory_size(pool, make_spec):
    spec = make_spec(HOLDER, timeout_s=30)
    for mb in (60, 30, 25):  # creeping up to the limit
        result = pool.invoke(spec, {"hold_mb": mb})
        assert result.max_memory_used_mb <= 128


def test_max_memory_used_is_stable_for_the_same_code(make_pool, make_spec):
    pool = make_pool(stem_cells=0)
    source = "def lambda_handler(event, context):\n    return 1\n"
    figures = set()
    for i in range(3):
        spec = FunctionSpec(source=source + f"# {i}\n")  # same code, three environments
        figures.add(pool.invoke(spec).max_memory_used_mb)
    assert len(figures) == 1 or max(figures) - min(figures) <= 1, figures
    assert 4 <= min(figures) <= 40  # the whole runtime: an interpreter, not a few pages


def test_max_memory_used_is_the_environments_high_water_mark(pool, make_spec):
    spec = make_spec(HOLDER, memory_mb=512, timeout_s=30)
    first = pool.invoke(spec)
    brief = pool.invoke(spec, {"brief_mb": 80})
    after = pool.invoke(spec)
    assert brief.max_memory_used_mb >= first.max_memory_used_mb + 80
    assert after.max_memory_used_mb == brief.max_memory_used_mb  # it never goes down between calls
    # not even through a reset: the environment is the same
    crashed = pool.invoke(spec, {"crash": True})
    assert crashed.error_type == "Runtime.ExitError"
    again = pool.invoke(spec)
    assert again.environment_id == first.environment_id
    assert again.max_memory_used_mb >= brief.max_memory_used_mb


# -- the runtime's environment -----------------------------------------------------------

ENVIRONMENT = """
import os
def lambda_handler(event, context):
    return dict(os.environ)
"""


def test_the_execution_roles_credentials_are_placeholders_and_there_is_no_timeout_variable(pool, make_spec):
    one = pool.invoke(make_spec(ENVIRONMENT)).json()
    two = pool.invoke(make_spec(ENVIRONMENT + "# another environment\n")).json()
    for env in (one, two):
        assert (
            re.fullmatch(r"ASIA[A-Z0-9]{16}", env["AWS_ACCESS_KEY_ID"])
            and "LAMBDALAB" in env["AWS_ACCESS_KEY_ID"]
        )
        assert "placeholder" in env["AWS_SECRET_ACCESS_KEY"] and "placeholder" in env["AWS_SESSION_TOKEN"]
        assert "AWS_LAMBDA_FUNCTION_TIMEOUT" not in env
    assert one["AWS_ACCESS_KEY_ID"] != two["AWS_ACCESS_KEY_ID"]  # one set per environment


# -- responses --------------------------------------------------------------------------


def test_decimals_keep_their_digits_as_awslambdaric_writes_them(pool, make_spec):
    result = pool.invoke(
        make_spec("""
from decimal import Decimal
def lambda_handler(event, context):
    return {"price": Decimal("1.10"), "big": Decimal("12345678901234567890.123456789"),
            "nan": Decimal("NaN"), "list": [Decimal("-0"), Decimal("1E+3"), 2.5, "text"]}
""")
    )
    assert result.status == "success", result.payload
    assert result.payload == (
        b'{"price": 1.10, "big": 12345678901234567890.123456789, "nan": NaN, "list": [-0, 1E+3, 2.5, "text"]}'
    )


# -- Init errors --------------------------------------------------------------------------


def test_init_report_keeps_only_runtime_and_function_error_types(pool, make_spec):
    user = pool.invoke(make_spec("raise ValueError('at import')\n"))
    assert user.error_type == "ValueError"
    reports = [line for line in user.logs if line.startswith("INIT_REPORT")]
    assert reports and all(line.endswith("Error Type: Runtime.Unknown") for line in reports)
    missing = pool.invoke(make_spec("import no_such_module_here\n"))
    assert missing.error_type == "Runtime.ImportModuleError"
    reports = [line for line in missing.logs if line.startswith("INIT_REPORT")]
    assert reports and all(line.endswith("Error Type: Runtime.ImportModuleError") for line in reports)


def test_an_import_time_error_traces_from_importlib_as_on_lambda(pool, make_spec):
    result = pool.invoke(make_spec("x = 1\nraise ValueError('at import')\n"))
    trace = result.json()["stackTrace"]
    assert trace[0].startswith('  File "/usr/lib/python3.11/importlib/__init__.py"')
    assert trace[0].rstrip().endswith("return _bootstrap._gcd_import(name[level:], package, level)")
    assert any("<frozen importlib._bootstrap>" in entry for entry in trace)
    assert trace[-1] == (
        "  File \"/var/task/lambda_function.py\", line 3, in <module>\n    raise ValueError('at import')\n"
    )
    assert not any("/var/runtime/" in entry for entry in trace)


def test_outside_a_request_the_log_format_leaves_the_request_id_empty(pool, make_spec):
    result = pool.invoke(
        make_spec("""
import logging
logging.getLogger().setLevel(logging.INFO)
logging.info("during init")
raise RuntimeError("boom")
""")
    )
    init_line = next(line for line in result.logs if line.endswith("\tduring init"))
    assert init_line.split("\t")[2] == ""
    warning = next(line for line in result.logs if "LAMBDA_WARNING" in line)
    assert warning.split("\t")[2] == ""
    assert "None" not in init_line and "\tNone\t" not in warning


# -- the runtime's own modules ------------------------------------------------------------


@pytest.fixture
def shadowing_folder(tmp_path, request):
    for name in ("frames", "fastjson", "bootstrap", "agent", "contract", "http"):
        (tmp_path / f"{name}.py").write_text(f"MINE = 'user {name} {request.node.nodeid}'\n")
    (tmp_path / "lambda_function.py").write_text(
        textwrap.dedent("""
        import frames, fastjson, bootstrap, agent, contract, http
        def lambda_handler(event, context):
            return [m.MINE.split()[1] for m in (frames, fastjson, bootstrap, agent, contract, http)]
        """)
    )
    return tmp_path


def test_user_modules_named_like_the_runtimes_are_the_users(pool, shadowing_folder):
    spec = FunctionSpec.from_directory(shadowing_folder)
    result = pool.invoke(spec)
    assert result.status == "success", result.payload
    assert result.json() == ["frames", "fastjson", "bootstrap", "agent", "contract", "http"]
    again = pool.invoke(spec)  # and the runtime, whose modules live under _lambdalab_runtime, still works
    assert again.status == "success" and not again.cold
