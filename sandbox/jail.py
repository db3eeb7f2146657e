"""Jails: what the host provides (state folder, runtime files, uids) and the bwrap command.

The jail sees a Lambda-like filesystem and nothing of the host's own::

    /usr (read-only, the system's; /usr/local empty)   /bin /lib /lib64 /sbin -> usr/...
    /var/lang/bin/python3 -> the runtime interpreter (a real binary in /usr)
    /var/runtime   our agent and Python runtime, boto3 and its dependencies (read-only)
    /var/task      the function's code (read-only)
    /opt           empty (layers come later)
    /tmp           the environment's own, of the configured size: on the scratch disk
                   (scratch.py), or a tmpfs where there is none
    /var/lab       the lab service's socket, kv.sock, the function's own (read-only; service.py)
    /proc /dev     the jail's own

The root itself is a read-only tmpfs. New user, pid, net, ipc, uts and cgroup
namespaces; the jail's loopback is its own, so 127.0.0.1 is not the host's.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import sdk, service
from .runtime import contract

RUNTIME_SOURCE = Path(__file__).resolve().parent / "runtime"
# The package runs in the jail as /var/runtime/_lambdalab_runtime (contract.PACKAGE).
RUNTIME_FILES = (
    "__init__.py",
    "agent.py",
    "bootstrap.py",
    "contract.py",
    "fastjson.py",
    "frames.py",
    "http.py",
    "snapshot.py",
)
JAIL_UID, JAIL_GID = 993, 990  # Lambda's sbx_user1051
UID_BASE = 1_000_000
UIDS_PER_POOL = 4096


class JailError(Exception):
    """The jail could not be built on this host."""


def bwrap_path() -> str | None:
    return shutil.which("bwrap", path="/usr/bin:/usr/local/bin:/bin")


def runtime_python() -> str:
    """The interpreter jails run: a real binary under /usr, which the jail binds."""
    configured = os.environ.get("LAMBDALAB_RUNTIME_PYTHON")
    candidates = [configured] if configured else [sys.executable, "/usr/bin/python3"]
    for candidate in candidates:
        if not candidate:
            continue
        real = os.path.realpath(candidate)
        if real.startswith("/usr/") and os.access(real, os.X_OK):
            return real
    raise JailError(
        "no runtime interpreter under /usr: install Debian's python3 or set "
        "LAMBDALAB_RUNTIME_PYTHON to a Python binary under /usr"
    )


def state_dir() -> Path:
    """Where code and runtime files live: traversable, not listable, by jail uids."""
    configured = os.environ.get("LAMBDALAB_STATE_DIR")
    if configured:
        path = Path(configured)
    elif os.geteuid() == 0:
        path = Path("/var/lib/lambdalab")
    else:
        path = Path(tempfile.gettempdir()) / f"lambdalab-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o711)
    return path


_pools_made = itertools.count()
CODE_KEEP_S = 7 * 86400  # a function's code not used for a week is dropped from the cache
RUNTIME_KEEP_S = 86400  # older copies of our runtime files, left by earlier versions


def prune_state(root: Path, current_runtime: Path) -> list[Path]:
    """Bound the state folder: drop code and runtime copies nobody has used for a while.

    Code folders are touched on every cold start that uses them; a jail still
    running from a pruned folder keeps its bind mount of it.
    """
    now = time.time()
    removed = []
    for folder, keep_s in ((root / "code", CODE_KEEP_S), (root / "runtime", RUNTIME_KEEP_S)):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry == current_runtime or not entry.is_dir():
                continue
            try:
                idle = now - entry.stat().st_mtime
            except FileNotFoundError:
                continue
            if idle > keep_s:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def task_root(root: Path, pool_tag: str) -> Path:
    """A pool's own folder of /var/task sources."""
    return pool_folder(root / "task", pool_tag)


def pool_folder(top: Path, pool_tag: str) -> Path:
    """A pool's own folder under ``top`` (made if need be), after clearing those of processes that
    died. Neither is listable: one jail's folder is not found from another's name."""
    from .cgroup import owner_alive

    top.mkdir(exist_ok=True)
    os.chmod(top, 0o711)
    for folder in top.iterdir():
        if not owner_alive(folder.name):
            shutil.rmtree(folder, ignore_errors=True)
    mine = top / f"{pool_tag}-{next(_pools_made)}"
    mine.mkdir()
    os.chmod(mine, 0o711)
    return mine


def prepare_runtime(python: str, root: Path) -> Path:
    """Build ``root/runtime/<hash>/``, the jail's /var/runtime: our package and the AWS SDK.

    Our package is copied and byte-compiled; the SDK (``sdk.py``) is hard-linked
    with the pyc pip compiled. The hash covers the interpreter, our files and the
    SDK's versions, so a change to any makes a new folder (old ones are pruned).
    """
    dists = sdk.distributions()
    digest = hashlib.sha256(python.encode())
    for name in RUNTIME_FILES:
        digest.update((RUNTIME_SOURCE / name).read_bytes())
    digest.update(sdk.fingerprint(dists).encode())
    target = root / "runtime" / digest.hexdigest()[:16]
    if (target / ".ready").exists():
        return target
    tmp = Path(tempfile.mkdtemp(prefix="runtime.", dir=root))
    os.chmod(tmp, 0o755)
    package = tmp / contract.PACKAGE
    package.mkdir(mode=0o755)
    for name in RUNTIME_FILES:
        shutil.copyfile(RUNTIME_SOURCE / name, package / name)
    sdk.install(dists, tmp)
    # Compiles our package; for the SDK it only checks pip's pyc against their sources
    # (~50 ms for botocore's) and writes any missing one, as a new file, never into a link.
    subprocess.run([python, "-I", "-m", "compileall", "-q", str(tmp)], check=True, timeout=120)
    for path in tmp.rglob("*"):
        if path.is_dir():
            os.chmod(path, 0o755)
        elif path.stat().st_mode & 0o444 != 0o444:  # never a link: install() links only such files
            os.chmod(path, 0o644)
    (tmp / ".ready").touch()
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(target.parent, 0o711)
    try:
        os.rename(tmp, target)
    except OSError:  # another pool got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def runtime_version(runtime_dir: Path) -> tuple[str, str]:
    """(Runtime Version, Runtime Version ARN) for INIT_START, from our runtime's hash."""
    digest = hashlib.sha256(runtime_dir.name.encode() + sys.version.encode()).hexdigest()
    major, minor = sys.version_info[:2]
    return (
        f"python:{major}.{minor}.lambdalab{runtime_dir.name[:6]}",
        f"arn:aws:lambda:us-east-1::runtime:{digest}",
    )


def bwrap_argv(
    *,
    python: str,
    runtime_dir: Path,
    code_dir: Path,
    tmp_bytes: int,
    tmp_dir: Path | None,
    control_fd: int,
    seccomp_fd: int | None,
    hostname: str,
    service_dir: Path | None = None,
) -> list[str]:
    argv = [
        bwrap_path() or "bwrap",
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--as-pid-1",  # the agent is the namespace's init: its members cannot kill or stop it
        "--die-with-parent",
        "--new-session",
        "--uid",
        str(JAIL_UID),
        "--gid",
        str(JAIL_GID),
        "--hostname",
        hostname,
        "--ro-bind",
        "/usr",
        "/usr",
        # what the host's admin installed by hand (tools, their config) is not the jail's business
        "--perms",
        "0755",
        "--tmpfs",
        "/usr/local",
        "--remount-ro",
        "/usr/local",
    ]
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{link}"):
            argv += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
        elif os.path.isdir(f"/{link}"):
            argv += ["--ro-bind", f"/{link}", f"/{link}"]
    # A minimal /dev, as Lambda's: the usual character devices and the /proc links,
    # no /dev/shm (multiprocessing.Pool fails in Lambda too) and no ptys. It also
    # starts ~1.5 ms faster than bwrap's --dev.
    dev = ["--perms", "0755", "--tmpfs", "/dev"]
    for node in ("null", "zero", "full", "random", "urandom"):
        dev += ["--dev-bind", f"/dev/{node}", f"/dev/{node}"]
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        dev += ["--symlink", target, f"/dev/{name}"]
    dev += ["--remount-ro", "/dev"]  # only /tmp is writable, as in Lambda (the device nodes still are)
    argv += [
        "--proc",
        "/proc",
        *dev,
    ]
    if tmp_dir is not None:  # the environment's own directory on the scratch disk (scratch.py)
        argv += ["--bind", str(tmp_dir), "/tmp"]
    else:  # no scratch disk here: a tmpfs, which the memory cgroup counts
        argv += ["--size", str(tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp"]
    argv += [
        "--dir",
        "/var/lang/bin",
        "--symlink",
        python,
        "/var/lang/bin/python3",
        "--symlink",
        python,
        f"/var/lang/bin/{os.path.basename(python)}",
        "--ro-bind",
        str(runtime_dir),
        "/var/runtime",
        "--ro-bind",
        str(code_dir),
        "/var/task",
        "--dir",
        "/opt",
        "--dir",
        "/etc",
    ]
    if service_dir is not None:  # one socket, to the function's own store: nothing else of the host
        argv += ["--ro-bind", str(service_dir), service.SOCKET_DIR]
    argv += [
        "--remount-ro",
        "/",
        "--chdir",
        "/var/task",
    ]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    start = f"import sys; sys.path.insert(0, {contract.RUNTIME_DIR!r}); from {contract.PACKAGE}.agent import main; main()"
    argv += [python, "-I", "-S", "-c", start, str(control_fd)]
    return argv


SETPRIV = shutil.which("setpriv", path="/usr/bin:/bin")  # util-linux, on every Debian


class UidAllocator:
    """Unprivileged host uids, one per live environment (root only).

    Distinct uids keep RLIMIT_NPROC per environment and stop one jail's
    processes from being the same user as another's. Each process claims a
    block of uids with a lock file held for its lifetime, so pools in
    different processes on one host never share a uid; pools within a
    process share the process's allocator.
    """

    BLOCKS = 1000
    _shared: UidAllocator | None = None
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, root: Path) -> UidAllocator:
        with cls._shared_lock:
            if cls._shared is None or cls._shared._pid != os.getpid():
                cls._shared = cls(root)
            return cls._shared

    def __init__(self, root: Path) -> None:
        import fcntl

        self._pid = os.getpid()
        self.enabled = os.geteuid() == 0
        self._free: list[int] = []
        self._lock = threading.Lock()
        self._base = 0
        if not self.enabled:
            return
        locks = root / "uids"
        locks.mkdir(exist_ok=True)
        os.chmod(locks, 0o700)
        start = os.getpid() % self.BLOCKS
        for i in range(self.BLOCKS):
            block = (start + i) % self.BLOCKS
            fd = os.open(locks / f"{block}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._lock_fd = fd  # held (and the block ours) until this process exits
            self._base = UID_BASE + block * UIDS_PER_POOL
            self._free = list(range(UIDS_PER_POOL - 1, -1, -1))
            return
        raise JailError("every uid block is claimed by another process")

    def acquire(self) -> int | None:
        if not self.enabled:
            return None
        with self._lock:
            if not self._free:
                raise JailError("no free uid for a new environment")
            return self._base + self._free.pop()

    def release(self, uid: int | None) -> None:
        if uid is not None:
            with self._lock:
                self._free.append(uid - self._base)


class Spawner:
    """Starts every jail from one long-lived thread.

    bwrap's --die-with-parent is PR_SET_PDEATHSIG, which fires when the
    *thread* that forked it exits; callers' threads come and go.
    """

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lambdalab-spawner")

    def spawn(self, argv, *, pass_fds, uid, cgroup) -> subprocess.Popen:
        """Start bwrap; with ``cgroup``, move it in while it builds the jail.

        Processes bwrap forks before the move are caught up by the caller,
        which checks membership before any user code may run.
        """
        return self._executor.submit(self._spawn, argv, pass_fds, uid, cgroup).result(timeout=30)

    @staticmethod
    def _spawn(argv, pass_fds, uid, cgroup) -> subprocess.Popen:
        kwargs = {}
        if uid is not None and SETPRIV:
            # Dropping to the uid in an exec'd setpriv, not in Popen's child: with user=,
            # Popen must fork instead of vfork, which copies this process's page tables
            # (25 ms from a 300 MB process, such as a Celery worker with Django loaded).
            argv = [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]
        elif uid is not None:
            kwargs.update(user=uid, group=uid, extra_groups=[])
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            close_fds=True,
            pass_fds=pass_fds,
            env={},  # bwrap's own environment is readable in the jail via /proc/1/environ
            cwd="/",
            **kwargs,
        )
        if cgroup is not None:
            try:
                cgroup.adopt([proc.pid])
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        return proc

    def close(self) -> None:
        self._executor.shutdown(wait=False)
