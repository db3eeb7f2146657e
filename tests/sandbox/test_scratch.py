"""The scratch disk: each environment's /tmp on a real btrfs image, with its own size; no mocks."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from sandbox import scratch
from sandbox.scratch import MB, ScratchDisk, ScratchError, ScratchFullError

PROJECT = Path(__file__).resolve().parents[2]
USER = 1_000_777  # an unprivileged host uid, as an environment's
BTRFS_IOC_SYNC = 0x9408
ROOT_ONLY = "a scratch disk needs root (loop devices, mounts, quotas)"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_ONLY)


@pytest.fixture
def state():
    """A state folder jail uids can traverse (pytest's tmp_path sits in a 0700 folder)."""
    path = Path(tempfile.mkdtemp(prefix="lambdalab-scratch-test-"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def disk(state):
    made = ScratchDisk(state, capacity_bytes=4096 * MB)
    yield made
    made.close()


def as_user(code: str, *, uid: int = USER, cgroup: Path | None = None) -> subprocess.CompletedProcess:
    """Run Python as an unprivileged uid (and in ``cgroup``), as a jail's code would."""
    prefix = f"import sys; sys.path.insert(0, {str(PROJECT)!r})\n"

    def join() -> None:
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "/usr/bin/python3", "-c"]
        + [prefix + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=join,
    )


def write_until_refused(path: Path, limit_mb: int) -> tuple[int, int | None]:
    """MiB written into ``path`` before a write failed (and its errno), at most ``limit_mb``."""
    written, failure = 0, None
    chunk = b"x" * MB
    try:
        with open(path, "wb", buffering=0) as f:
            while written < limit_mb:
                f.write(chunk)
                written += 1
    except OSError as exc:
        failure = exc.errno
    return written, failure


def mounted(path: Path) -> bool:
    return any(line.split()[4] == str(path) for line in Path("/proc/self/mountinfo").read_text().splitlines())


def loops_of(image: Path) -> list[Path]:
    return scratch._loops_backed_by(image)


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- size --------------------------------------------------------------------


@needs_root
def test_writing_past_the_size_fails_with_edquot_not_enospc(disk):
    tmp = disk.create("env-a", size_mb=64, uid=None)
    written, failure = write_until_refused(tmp / "big", 200)
    assert failure == errno.EDQUOT  # btrfs quotas; XFS project quotas would say ENOSPC
    assert 60 <= written <= 64
    assert disk.used_bytes("env-a") > 60 * MB


@needs_root
def test_statvfs_shows_the_whole_disk_not_the_environments_size(disk):
    tmp = disk.create("env-a", size_mb=64, uid=None)
    st = os.statvfs(tmp)
    assert st.f_blocks * st.f_frsize == pytest.approx(disk.image_bytes, rel=0.01)


@needs_root
def test_the_directory_belongs_to_the_environments_uid_and_anyone_may_write_it(disk):
    tmp = disk.create("env-a", size_mb=64, uid=USER)
    st = os.stat(tmp)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (USER, USER, 0o1777)
    done = as_user(f"open({str(tmp / 'note')!r}, 'w').write('hi')", uid=USER + 1)
    assert done.returncode == 0, done.stderr
    assert (tmp / "note").read_text() == "hi"


@needs_root
def test_resize_up_and_down(disk):
    tmp = disk.create("env-a", size_mb=32, uid=None)
    assert write_until_refused(tmp / "a", 100) == (pytest.approx(32, abs=2), errno.EDQUOT)
    disk.resize("env-a", 96)
    written, failure = write_until_refused(tmp / "b", 100)
    assert failure == errno.EDQUOT and 60 <= written <= 64
    disk.resize("env-a", 16)  # below what it holds: nothing more goes in
    assert write_until_refused(tmp / "c", 10) == (0, errno.EDQUOT)
    (tmp / "a").unlink()
    (tmp / "b").unlink()
    os.sync()  # the freed blocks leave the quota when the transaction commits
    assert write_until_refused(tmp / "d", 100) == (pytest.approx(16, abs=2), errno.EDQUOT)
    assert disk.promised_bytes() == 16 * MB


@needs_root
def test_two_directories_quotas_are_independent(disk):
    a = disk.create("env-a", size_mb=32, uid=None)
    b = disk.create("env-b", size_mb=48, uid=None)
    assert write_until_refused(a / "f", 100)[1] == errno.EDQUOT
    written, failure = write_until_refused(b / "f", 100)
    assert failure == errno.EDQUOT and 44 <= written <= 48


@needs_root
def test_remove_deletes_the_files_and_frees_the_space_and_the_quota(disk):
    tmp = disk.create("env-a", size_mb=256, uid=None)
    subvolume = disk._subvolumes["env-a"]
    write_until_refused(tmp / "f", 200)
    os.sync()
    before = os.statvfs(disk.path).f_bfree
    disk.remove("env-a")
    assert not tmp.exists()
    assert disk.promised_bytes() == 0
    assert disk.used_bytes("env-a") is None
    # The kernel's cleaner drops the blocks and the subvolume's own qgroup after the deletion, when
    # woken: by the 30 s commit, or at once by BTRFS_IOC_SYNC.
    qgroups = disk._sysfs / "qgroups"

    def cleaned() -> bool:
        fcntl.ioctl(disk._fd, BTRFS_IOC_SYNC)
        return not list(qgroups.glob(f"*_{subvolume}"))

    assert wait_until(cleaned), list(qgroups.iterdir())
    freed = (os.statvfs(disk.path).f_bfree - before) * os.statvfs(disk.path).f_frsize
    assert freed > 190 * MB
    again = disk.create("env-a", size_mb=256, uid=None)  # the name is free again, and empty
    assert list(again.iterdir()) == []


@needs_root
def test_remove_is_safe_twice_and_whatever_the_jail_left(disk):
    tmp = disk.create("env-a", size_mb=64, uid=USER)
    done = as_user(f"""
        import fcntl, os, struct
        os.makedirs({str(tmp / "ro/deep")!r})
        open({str(tmp / "ro/deep/f")!r}, "w").write("x")
        os.chmod({str(tmp / "ro/deep/f")!r}, 0)
        os.chmod({str(tmp / "ro/deep")!r}, 0)
        os.chmod({str(tmp / "ro")!r}, 0o500)
        os.symlink("/etc/passwd", {str(tmp / "link")!r})
        fd = os.open({str(tmp)!r}, os.O_RDONLY)
        fcntl.ioctl(fd, 0x4008941A, struct.pack("Q", 2))  # SUBVOL_SETFLAGS read-only: it owns it
    """)
    assert done.returncode == 0, done.stderr
    with pytest.raises(OSError):
        (tmp / "more").write_text("x")  # read-only now
    disk.remove("env-a")
    disk.remove("env-a")
    disk.remove("never-made")
    assert not tmp.exists()
    assert Path("/etc/passwd").exists()


@needs_root
def test_subvolumes_and_snapshots_made_inside_count_against_the_size_and_go_with_it(disk):
    tmp = disk.create("env-a", size_mb=64, uid=USER)
    done = as_user(f"""
        import fcntl, os
        from sandbox import scratch
        top = os.open({str(tmp)!r}, os.O_RDONLY)
        fcntl.ioctl(top, scratch.SUBVOL_CREATE, scratch._vol_args("nest"))
        nest = os.open({str(tmp / "nest")!r}, os.O_RDONLY)
        fcntl.ioctl(nest, scratch.SUBVOL_CREATE, scratch._vol_args("deeper"))
        snapshot = scratch._vol_args("snap")
        snapshot[0:8] = top.to_bytes(8, "little")
        fcntl.ioctl(top, scratch.SNAP_CREATE, snapshot)
        written = 0
        try:
            for target in ("nest/deeper/f", "snap/f", "f"):
                fd = os.open(os.path.join({str(tmp)!r}, target), os.O_WRONLY | os.O_CREAT)
                for _ in range(100):
                    os.write(fd, b"z" * (1 << 20))
                    written += 1
        except OSError as exc:
            print(written, exc.errno)
    """)
    assert done.returncode == 0, done.stderr
    written, failure = map(int, done.stdout.split())
    assert failure == errno.EDQUOT and written <= 64
    disk.remove("env-a")
    assert not tmp.exists()


# -- admission -----------------------------------------------------------------


@needs_root
def test_admission_is_refused_with_a_clear_error_when_the_sizes_would_not_fit(state):
    disk = ScratchDisk(state, capacity_bytes=2048 * MB)
    try:
        disk.create("env-a", size_mb=1024, uid=None)
        disk.create("env-b", size_mb=512, uid=None)
        with pytest.raises(ScratchFullError) as refused:
            disk.create("env-c", size_mb=1024, uid=None)
        assert str(refused.value) == (
            "cannot give this environment a 1024 MB /tmp: 2.0 GB of disk is free for /tmp, "
            "1.5 GB already promised to 2 environments"
        )
        assert not (disk.path / "env-c").exists()
        with pytest.raises(ScratchFullError):
            disk.resize("env-b", 1536)
        disk.admit(512)
        disk.resize("env-b", 1024)  # exactly full
        with pytest.raises(ScratchFullError):
            disk.admit(1)
        disk.remove("env-a")
        disk.create("env-c", size_mb=1024, uid=None)
    finally:
        disk.close()


@needs_root
def test_the_reserve_is_kept_from_the_hosts_free_disk(state):
    disk = ScratchDisk(state, capacity_bytes=2048 * MB)
    try:
        st = os.statvfs(state)
        disk.reserve_bytes = st.f_bavail * st.f_frsize  # as if the host had nothing to spare
        with pytest.raises(ScratchFullError, match="cannot give this environment a 512 MB /tmp"):
            disk.create("env-a", size_mb=512, uid=None)
    finally:
        disk.close()


# -- the disk's life -------------------------------------------------------------


@needs_root
def test_close_unmounts_detaches_the_loop_device_and_deletes_the_image(state):
    disk = ScratchDisk(state)
    disk.create("env-a", size_mb=64, uid=None)
    assert mounted(disk.path) and loops_of(disk.image) == [disk.device]
    assert os.stat(disk.folder).st_mode & 0o777 == 0o711
    assert os.stat(disk.path).st_mode & 0o777 == 0o711
    assert os.stat(disk.image).st_blocks * 512 < 64 * MB  # sparse
    disk.close()
    disk.close()
    disk.remove("env-a")  # after close: nothing to do, no error
    assert not mounted(disk.path) and not disk.path.exists() and not disk.image.exists()
    assert wait_until(lambda: loops_of(disk.image) == [])


KILLED = """
import os, signal, sys
sys.path.insert(0, {project!r})
from pathlib import Path
from sandbox.scratch import ScratchDisk
disk = ScratchDisk.shared(Path({root!r}))
disk.create("env-a", size_mb=64, uid=None)
print(disk.path, disk.image, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

STARTS = """
import sys
import tempfile
sys.path.insert(0, {project!r})
from pathlib import Path
from sandbox import scratch
disk = scratch.ScratchDisk.shared(Path({root!r}))
assert disk is not None, scratch.unavailable_reason()
disk.create("env-a", size_mb=64, uid=None)
disk.remove("env-a")
"""


def leave_a_dead_disk(root: Path) -> tuple[Path, Path]:
    done = subprocess.run(
        [sys.executable, "-c", KILLED.format(project=str(PROJECT), root=str(root))],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    path, image = map(Path, done.stdout.split())
    assert mounted(path) and image.exists() and loops_of(image)
    return path, image


@needs_root
def test_leftovers_of_a_killed_process_are_cleaned_by_the_next_disk(state):
    path, image = leave_a_dead_disk(state)
    disk = ScratchDisk(state)
    try:
        assert not mounted(path) and not path.exists() and not image.exists()
        assert wait_until(lambda: loops_of(image) == [])
        assert sorted(p.name for p in disk.folder.iterdir()) == sorted([disk.path.name, disk.image.name])
    finally:
        disk.close()


@needs_root
def test_several_processes_starting_at_once_over_leftovers_do_not_crash(state):
    dead = [leave_a_dead_disk(state) for _ in range(2)]
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", STARTS.format(project=str(PROJECT), root=str(state))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for start in starts:
        _, err = start.communicate(timeout=30)
        assert start.returncode == 0, err
    for path, image in dead:
        assert not mounted(path) and not image.exists()
        assert wait_until(lambda image=image: loops_of(image) == [])
    assert list((state / "scratch").iterdir()) == []  # and each closed its own at exit


def test_without_root_there_is_no_disk_and_the_reason_says_why(state):
    code = f"""
        from pathlib import Path
        from sandbox import scratch
        print(scratch.ScratchDisk.shared(Path({str(state)!r})), scratch.unavailable_reason())
    """
    if os.geteuid() == 0:
        done = as_user(code)
    else:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"None {ROOT_ONLY}"


@needs_root
def test_one_disk_per_process_and_folder(disk):
    with pytest.raises(ScratchError, match="one scratch disk per process"):
        ScratchDisk(disk.folder.parent)
    assert mounted(disk.path) and disk.image.exists()  # the first one is left alone


# -- memory --------------------------------------------------------------------

MEMORY = Path("/sys/fs/cgroup/memory")


@needs_root
@pytest.mark.skipif(not (MEMORY / "cgroup.procs").exists(), reason="no cgroup v1 memory controller")
def test_a_128_mb_function_writing_300_mb_to_its_scratch_is_not_oom_killed(disk):
    tmp = disk.create("env-a", size_mb=512, uid=USER)
    group = MEMORY / f"lambdalab-test-scratch-{os.getpid()}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(128 * MB))
        (group / "memory.swappiness").write_text("0")
        done = as_user(
            f"""
            import os
            fd = os.open({str(tmp / "f")!r}, os.O_WRONLY | os.O_CREAT)
            for _ in range(300):
                os.write(fd, b"y" * (1 << 20))
            os.close(fd)
            """,
            cgroup=group,
        )
        assert done.returncode == 0, done.stderr
        assert "oom_kill 0" in (group / "memory.oom_control").read_text()
        assert os.stat(tmp / "f").st_size == 300 * MB
        # the page cache was charged up to the limit, and reclaimed
        assert int((group / "memory.max_usage_in_bytes").read_text()) > 100 * MB
    finally:
        os.rmdir(group)


def test_the_ioctls_a_jail_is_refused_are_btrfs_subvolume_and_snapshot_making():
    assert [hex(n) for n in scratch.JAIL_BLOCKED_IOCTLS] == [
        "0x50009401",  # BTRFS_IOC_SNAP_CREATE
        "0x5000940e",  # BTRFS_IOC_SUBVOL_CREATE
        "0x50009417",  # BTRFS_IOC_SNAP_CREATE_V2
        "0x50009418",  # BTRFS_IOC_SUBVOL_CREATE_V2
    ]
