"""/tmp is ephemeral storage, sized on its own, not memory: the "cache a big file in /tmp" lesson."""

from __future__ import annotations

import os

import pytest

from sandbox import FunctionSpec
from sandbox.pool import PoolCapacityError
from sandbox.scratch import GB, ScratchDisk

WRITER = """
import os
def lambda_handler(event, context):
    if event.get("read"):
        return os.path.getsize("/tmp/cache.bin")
    block = b"x" * (1024 * 1024)
    with open("/tmp/cache.bin", "wb") as f:
        for _ in range(event["mb"]):
            f.write(block)
    return os.path.getsize("/tmp/cache.bin")
"""


def needs_scratch(pool):
    if not pool.isolation_report.scratch:
        pytest.skip("no scratch disk on this host: /tmp is a tmpfs (python -m sandbox check says why)")


def test_a_128_mb_function_caches_200_mb_in_tmp(pool, make_spec):
    needs_scratch(pool)
    spec = make_spec(WRITER, memory_mb=128, tmp_mb=512, timeout_s=60)
    wrote = pool.invoke(spec, {"mb": 200})
    assert wrote.status == "success", wrote.payload
    assert wrote.json() == 200 * 1024 * 1024
    assert wrote.max_memory_used_mb < 40  # /tmp's page cache is the kernel's, not the function's
    again = pool.invoke(spec, {"read": True})
    assert again.environment_id == wrote.environment_id and again.json() == 200 * 1024 * 1024


def test_tmp_bigger_than_memory_is_disk_not_ram(pool, make_spec):
    needs_scratch(pool)
    spec = make_spec(WRITER + "\n# big\n", memory_mb=128, tmp_mb=2048, timeout_s=60)
    # over 512 MB and over its memory: a stem cell's /tmp, resized for it
    wrote = pool.invoke(spec, {"mb": 700})
    assert wrote.status == "success", wrote.payload
    assert wrote.json() == 700 * 1024 * 1024
    assert wrote.max_memory_used_mb < 40


def test_tmp_goes_with_the_environment(pool, make_spec):
    needs_scratch(pool)
    spec = make_spec(WRITER, idle_timeout_s=600)
    result = pool.invoke(spec, {"mb": 5})
    env = pool._all[result.environment_id]
    folder = env.tmp_dir
    assert folder.is_dir()
    assert pool.shutdown_environment(result.environment_id)
    assert not folder.exists()
    assert env.scratch.used_bytes(result.environment_id) is None


def test_no_environment_is_admitted_past_the_disk(make_pool, make_spec):
    pool = make_pool(stem_cells=0)
    needs_scratch(pool)
    # a disk with room for 2 GB of /tmp only, so the test need not fill the host's
    pool._scratch = ScratchDisk(pool._state_dir, capacity_bytes=2 * GB, tag=f"{os.getpid()}-test-admission")
    try:
        first = pool.invoke(make_spec(WRITER, tmp_mb=1536), {"mb": 1})
        assert first.status == "success"
        with pytest.raises(
            PoolCapacityError, match=r"no room for /tmp: cannot give this environment a 1024 MB"
        ):
            pool.invoke(make_spec(WRITER + "# another\n", tmp_mb=1024), {"mb": 1})
        assert pool.invoke(make_spec(WRITER + "# small\n", tmp_mb=512), {"mb": 1}).status == "success"
    finally:
        pool.close()
        pool._scratch.close()


def test_a_function_cannot_make_subvolumes_in_tmp(pool, make_spec):
    needs_scratch(pool)
    result = pool.invoke(
        make_spec("""
import fcntl, os, struct
def lambda_handler(event, context):
    fd = os.open("/tmp", os.O_RDONLY)
    args = bytearray(4096)
    args[8:12] = b"nest"
    try:
        fcntl.ioctl(fd, 0x5000940E, args)  # BTRFS_IOC_SUBVOL_CREATE
        return "made"
    except OSError as exc:
        return exc.errno
""")
    )
    assert result.json() == 1  # EPERM, from the seccomp filter


def test_spec_tmp_bounds_are_lambdas():
    for bad in (511, 10241):
        with pytest.raises(ValueError, match="tmp_mb"):
            FunctionSpec(source="x = 1", tmp_mb=bad)
