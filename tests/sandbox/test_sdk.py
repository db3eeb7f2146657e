"""Lambda's Python runtime ships boto3: /var/runtime holds the SDK, read-only, after the code on sys.path."""

import os
import re
import stat
from pathlib import Path

from sandbox import FunctionSpec, jail, sdk

PROJECT = Path(__file__).resolve().parents[2]
PINNED = dict(re.findall(r"^(boto3|botocore)==(\S+)$", (PROJECT / "requirements.txt").read_text(), re.M))
# boto3's dependency closure (top-level import names), none of which our runtime may import itself
SDK_MODULES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"}

# Imported at Init, as tutorials do. The handler also checks, for every SDK module the
# import loaded, that the pyc beside it is valid for its source (magic, mtime, size):
# /var/runtime is read-only, so a stale one would be recompiled on every cold start.
IMPORTS = """
import importlib.metadata, importlib.util, os, sys
import boto3
import botocore.session

def stale_bytecode():
    checked, stale = 0, []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if not (path.startswith("/var/runtime/") and path.endswith(".py")):
            continue
        checked += 1
        st = os.stat(path)
        expected = (importlib.util.MAGIC_NUMBER + bytes(4) + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
                    + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little"))
        try:
            with open(importlib.util.cache_from_source(path), "rb") as f:
                valid = f.read(16) == expected
        except OSError:
            valid = False
        if not valid:
            stale.append(name)
    return checked, stale

def lambda_handler(event, context):
    checked, stale = stale_bytecode()
    return {
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
        "metadata": [importlib.metadata.version("boto3"), importlib.metadata.version("botocore")],
        "files": [boto3.__file__, botocore.session.__file__],
        "path": sys.path,
        "checked": checked,
        "stale": stale,
    }
"""


def test_a_handler_imports_boto3_from_var_runtime_at_the_pinned_version(pool, make_spec):
    result = pool.invoke(make_spec(IMPORTS, memory_mb=512, timeout_s=10))
    assert result.status == "success", (result.payload, result.logs)
    out = result.json()
    assert out["boto3"] == PINNED["boto3"] and out["botocore"] == PINNED["botocore"]
    assert out["metadata"] == [PINNED["boto3"], PINNED["botocore"]]
    assert out["files"] == ["/var/runtime/boto3/__init__.py", "/var/runtime/botocore/session.py"]
    assert out["checked"] > 100 and out["stale"] == []


def test_sys_path_is_the_code_then_layers_then_var_runtime_then_the_standard_library(pool, make_spec):
    result = pool.invoke(make_spec(IMPORTS, memory_mb=512, timeout_s=10))
    path = result.json()["path"]
    assert path[:3] == ["/var/task", "/opt/python", "/var/runtime"]
    assert path[3:] and all(entry.startswith("/usr/lib/python3") for entry in path[3:])


def test_an_s3_client_builds_with_the_placeholder_credentials_and_its_calls_fail_fast(pool, make_spec):
    spec = make_spec(
        """
import boto3
from botocore.config import Config

s3 = boto3.client("s3", config=Config(retries={"max_attempts": 0}, connect_timeout=1))

def lambda_handler(event, context):
    if event.get("describe"):
        credentials = boto3.Session().get_credentials()
        return {"method": credentials.method, "region": s3.meta.region_name}
    return s3.list_buckets()
""",
        memory_mb=512,
        timeout_s=10,
    )
    described = pool.invoke(spec, {"describe": True})
    assert described.status == "success", (described.payload, described.logs)
    assert described.json() == {"method": "env", "region": "us-east-1"}
    # No network in a jail: the call fails at once, as a botocore error the handler could catch.
    called = pool.invoke(spec)
    assert called.status == "error" and called.error_type == "EndpointConnectionError", called.payload
    assert "https://s3.amazonaws.com/" in called.json()["errorMessage"]
    assert called.duration_ms < 5000


def test_a_boto3_bundled_with_the_code_takes_precedence_over_the_runtimes(pool, tmp_path):
    (tmp_path / "boto3").mkdir()
    (tmp_path / "boto3" / "__init__.py").write_text('__version__ = "0.0.bundled"\n')
    (tmp_path / "lambda_function.py").write_text(
        "import boto3, botocore\n"
        "def lambda_handler(event, context):\n"
        "    return [boto3.__version__, boto3.__file__, botocore.__file__]\n"
    )
    result = pool.invoke(FunctionSpec.from_directory(tmp_path, memory_mb=512, timeout_s=10))
    assert result.status == "success", (result.payload, result.logs)
    # as in Lambda: the function's copy wins; what it does not bundle still comes from /var/runtime
    assert result.json() == [
        "0.0.bundled",
        "/var/task/boto3/__init__.py",
        "/var/runtime/botocore/__init__.py",
    ]


def test_an_idle_runtime_has_imported_nothing_of_the_sdk(pool, make_spec):
    spec = make_spec("""
import sys
def lambda_handler(event, context):
    return sorted(name for name in sys.modules if name.split(".")[0] in event["sdk"])
""")
    result = pool.invoke(spec, {"sdk": sorted(SDK_MODULES)})
    assert result.status == "success", result.payload
    assert result.json() == []


def test_the_sdk_is_boto3_and_its_whole_dependency_closure():
    names = {dist.metadata["Name"].lower().replace("_", "-") for dist in sdk.distributions()}
    assert names == {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
    assert f"boto3=={PINNED['boto3']}\n" in sdk.fingerprint(sdk.distributions())


def test_the_runtime_folder_links_the_installed_sdk_readable_by_every_uid(tmp_path):
    runtime = jail.prepare_runtime(jail.runtime_python(), tmp_path)
    installed = Path(sdk.distributions()[0].locate_file(""))  # site-packages
    for relative in ("boto3/__init__.py", "botocore/__pycache__/session.cpython-311.pyc", "six.py"):
        ours, theirs = runtime / relative, installed / relative
        assert ours.read_bytes() == theirs.read_bytes()
        assert ours.stat().st_mtime_ns == theirs.stat().st_mtime_ns  # what keeps the pyc valid
        if ours.stat().st_dev == theirs.stat().st_dev:
            assert ours.samefile(theirs)  # hard-linked, not copied
    dist_info = runtime / f"boto3-{PINNED['boto3']}.dist-info"
    assert (dist_info / "METADATA").is_file() and not (dist_info / "direct_url.json").exists()
    assert (runtime / "botocore" / "cacert.pem").is_file()
    assert (runtime / "botocore" / "data" / "s3" / "2006-03-01" / "service-2.json.gz").is_file()
    for path in runtime.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o755, path
        else:
            assert mode & 0o444 == 0o444, path
    assert not os.path.exists(runtime / "bin")  # scripts (jmespath's jp.py) are not importable: left out
