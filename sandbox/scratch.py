"""Scratch disk: each environment's /tmp on disk, with its own size, as Lambda's ephemeral storage.

A tmpfs /tmp is charged to the memory cgroup (a 128 MB function writing
200 MB to /tmp dies of OOM), and a 10 GB /tmp would be 10 GB of RAM. Here
/tmp is a directory on one filesystem per host process, shared by every pool
in it: a sparse image under ``<state>/scratch/<pool>.img`` on a loop device
(direct I/O, so the host does not cache the image's pages a second time),
mounted at ``<state>/scratch/<pool>/``. Each environment gets a directory
there with a hard size limit; ``<pool>`` is ``cgroup.pool_tag()``, so a
process starting up can tell which images belong to processes that died.

The filesystem is btrfs with simple quotas (Linux 6.7+). Each environment's
directory is a subvolume ``0/<id>``, held in a level-1 qgroup ``1/<id>``
whose limit is the configured size; a jail user may make subvolumes or
snapshots inside its /tmp (btrfs lets anyone who can write a directory), and
simple quotas put them in the same level-1 qgroup, so they count against the
same size. XFS project quotas would give two niceties (ENOSPC rather than
EDQUOT, and ``df /tmp`` showing the size), but a kernel built without
CONFIG_XFS_QUOTA (this one) cannot mount XFS with ``prjquota``, and ext4's
project quotas need CONFIG_QFMT_V2, missing here as well. So, unlike Lambda:

- writing past the size fails with EDQUOT ("Disk quota exceeded"), not ENOSPC;
- ``statvfs``/``df`` in the jail show the whole image, not the environment's size.

A directory costs ~50 µs to make and ~20 µs to delete, whatever the jail left
in it (the kernel's cleaner frees the blocks afterwards); the filesystem
discards freed blocks (after ~2 minutes), so the image gives space back to
the host. The data reaches the disk through the page cache, which the
kernel charges to the writer's memory cgroup but reclaims: a 128 MB function
writing 500 MB to /tmp is not OOM-killed, though its peak memory reads full.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import fcntl
import os
import shutil
import stat
import struct
import subprocess
import threading
import uuid
from pathlib import Path

from .cgroup import owner_alive, pool_tag

MB = 1024 * 1024
GB = 1024 * MB
RESERVE_BYTES = 1 * GB  # host disk no environment may be promised
MIN_IMAGE_BYTES = 1 * GB
MAX_IMAGE_BYTES = 16 * 1024 * GB
TOOLS_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _ioc(direction: int, number: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (0x94 << 8) | number  # 0x94: btrfs's ioctl type


_W, _R, _WR = 1, 2, 3
_VOL_ARGS = 4096  # struct btrfs_ioctl_vol_args: s64 fd, name[4088]
SNAP_CREATE = _ioc(_W, 1, _VOL_ARGS)
SUBVOL_CREATE = _ioc(_W, 14, _VOL_ARGS)
SNAP_DESTROY = _ioc(_W, 15, _VOL_ARGS)
INO_LOOKUP = _ioc(_WR, 18, 4096)  # u64 treeid, u64 objectid, name[4080]
SNAP_CREATE_V2 = _ioc(_W, 23, 4096)
SUBVOL_CREATE_V2 = _ioc(_W, 24, 4096)
FS_INFO = _ioc(_R, 31, 1024)
QGROUP_ASSIGN = _ioc(_W, 41, 24)  # u64 assign (1) or remove (0), u64 src, u64 dst
QGROUP_CREATE = _ioc(_W, 42, 16)  # u64 create (1) or destroy (0), u64 qgroupid
QUOTA_CTL = _ioc(_WR, 40, 16)  # u64 cmd, u64 status
QGROUP_LIMIT = _ioc(_R, 43, 48)  # u64 qgroupid; flags, max_rfer, max_excl, rsv_rfer, rsv_excl
QUOTA_CTL_ENABLE_SIMPLE = 4
QGROUP_LIMIT_MAX_RFER = 1
NO_LIMIT = 2**64 - 1
LEVEL_1 = 1 << 48  # qgroup ids are level << 48 | number
SUBVOLUME_ROOT_INO = 256  # every subvolume's top directory has this inode number
LOOP_CLR_FD = 0x4C01
MNT_DETACH = 2

# Making subvolumes or snapshots: harmless to the quota, but a jail has no use for them
# either, and seccomp may refuse them (one less way into the filesystem's code).
JAIL_BLOCKED_IOCTLS = (SNAP_CREATE, SUBVOL_CREATE, SNAP_CREATE_V2, SUBVOL_CREATE_V2)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MS_NOATIME, MS_NOSUID, MS_NODEV = 1024, 2, 4


class ScratchError(Exception):
    """The scratch disk could not be set up or changed."""


class ScratchFullError(ScratchError):
    """The disk cannot hold one more environment's /tmp of the size asked for."""


def _vol_args(name: str) -> bytearray:
    args = bytearray(_VOL_ARGS)
    encoded = name.encode()
    args[8 : 8 + len(encoded)] = encoded  # the fd field (first 8 bytes) stays 0
    return args


def _gb(n: int) -> str:
    return f"{n / GB:.1f} GB"


def _umount(path: Path) -> None:
    """Detach a mount now; the filesystem goes when its last user (a jail's bind) does."""
    if _libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):  # not mounted (any more): someone else was first
            raise OSError(code, f"umount {path}: {os.strerror(code)}")


def _loops_backed_by(image: Path) -> list[Path]:
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            name = backing.read_text().strip().removesuffix(" (deleted)")
        except OSError:
            continue
        if name == str(image):
            found.append(Path("/dev") / backing.parent.parent.name)
    return found


def _detach_loop(device: Path) -> None:
    """Release a loop device; while the filesystem is mounted this only marks it
    autoclear, and the kernel detaches it at the last unmount."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.ioctl(fd, LOOP_CLR_FD)
    except OSError as exc:
        if exc.errno != errno.ENXIO:  # not attached: another process detached it
            raise
    finally:
        os.close(fd)


def clean_stale(folder: Path) -> list[str]:
    """Unmount and delete the images of processes that died.

    Several processes may start at once and clean the same leftovers: every
    step tolerates the thing being gone already.
    """
    removed = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        tag = entry.name.removesuffix(".img")
        if owner_alive(tag):
            continue
        if entry.suffix == ".img":
            for device in _loops_backed_by(entry):  # died between losetup and mount
                _detach_loop(device)
            try:
                entry.unlink()
                removed.append(entry.name)
            except FileNotFoundError:
                pass
        elif entry.is_dir():
            _umount(entry)
            try:
                entry.rmdir()
                removed.append(entry.name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno != errno.EBUSY:  # still a mount point: someone mounted it again
                    raise
    return removed


_reason: str | None = None


def unavailable_reason() -> str | None:
    """Why ``ScratchDisk.shared`` gave None in this process (None when it did not)."""
    return _reason


class ScratchDisk:
    """One process's scratch filesystem, and each environment's directory on it.

    Environments are admitted only while the sizes promised to all of them
    fit the disk that is free for /tmp: the host's free space, plus what the
    image already holds, minus a reserve (``capacity_bytes`` caps it further;
    tests use it rather than filling the disk).
    """

    _shared: ScratchDisk | None = None
    _shared_pid = 0
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, root: Path) -> ScratchDisk | None:
        """The process's disk, made on first use; None where this host cannot have one
        (``unavailable_reason()`` says why), and the engine keeps a tmpfs /tmp."""
        global _reason
        with cls._shared_lock:
            if cls._shared_pid != os.getpid():
                cls._shared, cls._shared_pid, _reason = None, os.getpid(), None
                try:
                    cls._shared = cls(root)
                    atexit.register(cls._shared.close)
                except (ScratchError, OSError) as exc:
                    _reason = str(exc)
            return cls._shared

    def __init__(
        self,
        root: Path,
        *,
        reserve_bytes: int = RESERVE_BYTES,
        capacity_bytes: int | None = None,
        tag: str | None = None,
    ) -> None:
        _check_host()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.reserve_bytes = reserve_bytes
        self.capacity_bytes = capacity_bytes
        self._sizes: dict[str, int] = {}  # environment -> its size in bytes
        self._subvolumes: dict[str, int] = {}  # environment -> subvolume id (its quota: 1/<id>)
        self.folder = root / "scratch"
        self.folder.mkdir(exist_ok=True)
        os.chmod(self.folder, 0o711)
        clean_stale(self.folder)
        tag = tag or pool_tag()
        self.image = self.folder / f"{tag}.img"
        self.path = self.folder / tag
        self.image_bytes = self._image_size()
        self.device: Path | None = None
        self._fd = -1
        self._closed = False
        self._made = False  # whether the image is ours to delete
        self._autoclear = False
        try:
            self._make()
        except BaseException:
            self.close()
            raise

    def _host_free(self) -> int:
        st = os.statvfs(self.folder)
        return st.f_bavail * st.f_frsize

    def _image_size(self) -> int:
        size = min(MAX_IMAGE_BYTES, self._host_free() - self.reserve_bytes)
        if self.capacity_bytes is not None:
            size = min(size, max(self.capacity_bytes, MIN_IMAGE_BYTES))
        if size < MIN_IMAGE_BYTES:
            raise ScratchError(f"only {_gb(self._host_free())} of disk free under {self.folder}")
        return size // MB * MB

    def _make(self) -> None:
        try:
            with open(self.image, "xb") as f:
                f.truncate(self.image_bytes)  # sparse: costs nothing until written
        except FileExistsError:
            raise ScratchError(f"{self.image} exists: one scratch disk per process and folder") from None
        self._made = True
        os.chmod(self.image, 0o600)
        device = _run(["losetup", "--find", "--show", "--direct-io=on", str(self.image)]).strip()
        self.device = Path(device)
        # single copies of metadata (no DUP): /tmp needs no redundancy; -K: the image is already empty
        _run(["mkfs.btrfs", "-q", "-f", "-K", "-m", "single", "-d", "single", device])
        self.path.mkdir(mode=0o711)
        flags = MS_NOATIME | MS_NOSUID | MS_NODEV
        if _libc.mount(device.encode(), os.fsencode(self.path), b"btrfs", flags, b"discard=async") != 0:
            code = ctypes.get_errno()
            raise ScratchError(f"cannot mount a btrfs image: {os.strerror(code)}")
        _detach_loop(self.device)  # autoclear: the loop device goes with the last unmount
        self._autoclear = True
        os.chmod(self.path, 0o711)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(self._fd, QUOTA_CTL, bytearray(struct.pack("QQ", QUOTA_CTL_ENABLE_SIMPLE, 0)))
        except OSError as exc:
            raise ScratchError(f"no btrfs simple quotas in this kernel (Linux 6.7+): {exc}") from None
        info = bytearray(1024)  # struct btrfs_ioctl_fs_info_args; the fsid is at offset 16
        fcntl.ioctl(self._fd, FS_INFO, info)
        self._sysfs = Path("/sys/fs/btrfs") / str(uuid.UUID(bytes=bytes(info[16:32])))

    # -- admission --------------------------------------------------------------

    def available_bytes(self) -> int:
        """Disk that /tmp directories may be promised, in all."""
        try:
            held = os.stat(self.image).st_blocks * 512
        except FileNotFoundError:
            held = 0
        free = self._host_free() + held - self.reserve_bytes
        if self.capacity_bytes is not None:
            free = min(free, self.capacity_bytes)
        return max(0, min(free, self.image_bytes))

    def promised_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def admit(self, size_mb: int, *, replacing: str | None = None) -> None:
        """Raise ScratchFullError unless one more /tmp of ``size_mb`` (or ``replacing``'s,
        resized to it) fits beside the sizes already promised."""
        with self._lock:
            self._admit(size_mb * MB, replacing)

    def _admit(self, size: int, replacing: str | None) -> None:
        others = {env: n for env, n in self._sizes.items() if env != replacing}
        available = self.available_bytes()
        if sum(others.values()) + size > available:
            raise ScratchFullError(
                f"cannot give this environment a {size // MB} MB /tmp: {_gb(available)} of disk is free "
                f"for /tmp, {_gb(sum(others.values()))} already promised to {len(others)} environments"
            )

    # -- environments -----------------------------------------------------------

    def create(self, env_id: str, *, size_mb: int, uid: int | None) -> Path:
        """An empty /tmp of ``size_mb`` for one environment, owned by its host ``uid``."""
        path = self.path / env_id
        with self._lock:
            if env_id in self._sizes:
                raise ScratchError(f"environment {env_id} already has a scratch directory")
            self._admit(size_mb * MB, None)
            fcntl.ioctl(self._fd, SUBVOL_CREATE, _vol_args(env_id))
            subvolume = None
            try:
                subvolume = _subvolume_id(path)
                # The limit sits on a level-1 qgroup holding the subvolume's: subvolumes made
                # inside join it too (simple quotas inherit the parent's groups), so stay within it.
                group = LEVEL_1 | subvolume
                fcntl.ioctl(self._fd, QGROUP_CREATE, bytearray(struct.pack("QQ", 1, group)))
                fcntl.ioctl(self._fd, QGROUP_ASSIGN, bytearray(struct.pack("QQQ", 1, subvolume, group)))
                self._limit(group, size_mb * MB)
                if uid is not None:
                    os.chown(path, uid, uid)
                os.chmod(path, 0o1777)
            except BaseException:
                self._destroy(env_id, subvolume)
                raise
            self._sizes[env_id] = size_mb * MB
            self._subvolumes[env_id] = subvolume
        return path

    def resize(self, env_id: str, size_mb: int) -> None:
        """A new size for an environment's /tmp: a stem cell built for 512 MB may
        serve a function that wants 2,048. Shrinking below what is used stops writes."""
        with self._lock:
            if env_id not in self._sizes:
                raise ScratchError(f"environment {env_id} has no scratch directory")
            self._admit(size_mb * MB, env_id)
            self._limit(LEVEL_1 | self._subvolumes[env_id], size_mb * MB)
            self._sizes[env_id] = size_mb * MB

    def remove(self, env_id: str) -> None:
        """Delete an environment's /tmp and everything in it, whatever the jail left. Safe to repeat."""
        with self._lock:
            self._sizes.pop(env_id, None)
            subvolume = self._subvolumes.pop(env_id, None)
            if not self._closed:
                self._destroy(env_id, subvolume)

    def used_bytes(self, env_id: str) -> int | None:
        """What an environment's /tmp holds now, as its quota counts it."""
        with self._lock:
            subvolume = self._subvolumes.get(env_id)
        if subvolume is None:
            return None
        try:
            return int((self._sysfs / "qgroups" / f"1_{subvolume}" / "referenced").read_text())
        except FileNotFoundError:
            return None

    def _limit(self, group: int, size: int | None) -> None:
        """Set a qgroup's limit; None lifts it."""
        limit = NO_LIMIT if size is None else size
        args = struct.pack("QQQQQQ", group, QGROUP_LIMIT_MAX_RFER, limit, 0, 0, 0)
        fcntl.ioctl(self._fd, QGROUP_LIMIT, bytearray(args))

    def _destroy(self, env_id: str, subvolume: int | None) -> None:
        """Delete a subvolume (and first any the jail nested in it: they block its deletion),
        then its level-1 qgroup. The kernel's cleaner frees the blocks and the subvolumes'
        own qgroups afterwards."""
        children = [subvolume]
        try:
            fcntl.ioctl(self._fd, SNAP_DESTROY, _vol_args(env_id))
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
            # deleting a nested subvolume writes to its full parent: lift the limit first
            self._limit(LEVEL_1 | _subvolume_id(self.path / env_id), None)
            for nested in _nested_subvolumes(self.path / env_id):
                children.append(_subvolume_id(nested))
                fd = os.open(nested.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    fcntl.ioctl(fd, SNAP_DESTROY, _vol_args(nested.name))
                finally:
                    os.close(fd)
            fcntl.ioctl(self._fd, SNAP_DESTROY, _vol_args(env_id))
        if subvolume is None:
            return
        group = LEVEL_1 | subvolume
        try:
            for child in children:
                fcntl.ioctl(self._fd, QGROUP_ASSIGN, bytearray(struct.pack("QQQ", 0, child, group)))
            fcntl.ioctl(self._fd, QGROUP_CREATE, bytearray(struct.pack("QQ", 0, group)))
        except OSError:
            pass  # a qgroup left behind costs a few bytes of the image, and goes with it

    # -- the end ----------------------------------------------------------------

    def close(self) -> None:
        """Unmount (lazily: jails still running keep their /tmp until they go) and delete the image."""
        if self._pid != os.getpid():
            return  # a forked child inherited the object (and this atexit hook): not its disk
        with self._lock:
            if self._closed or not self._made:
                return
            self._closed = True
            self._sizes.clear()
            self._subvolumes.clear()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        if self.path.is_dir():
            _umount(self.path)
            try:
                self.path.rmdir()
            except FileNotFoundError:
                pass
        if self.device is not None and not self._autoclear and self.device in _loops_backed_by(self.image):
            _detach_loop(self.device)  # never mounted. (An autoclear device may be another's by now.)
        try:
            self.image.unlink()
        except FileNotFoundError:
            pass


def _subvolume_id(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        args = bytearray(4096)
        struct.pack_into("QQ", args, 0, 0, SUBVOLUME_ROOT_INO)  # treeid 0: the fd's own subvolume
        fcntl.ioctl(fd, INO_LOOKUP, args)
        return struct.unpack_from("Q", args, 0)[0]
    finally:
        os.close(fd)


def _nested_subvolumes(path: Path) -> list[Path]:
    """Subvolumes below ``path``, deepest first (root reads whatever modes the jail left)."""
    found = []
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            child = Path(dirpath) / name
            try:
                st = os.lstat(child)
                if not stat.S_ISDIR(st.st_mode):
                    continue
                if st.st_ino == SUBVOLUME_ROOT_INO:
                    found.append(child)
            except FileNotFoundError:
                continue
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _check_host() -> None:
    if os.geteuid() != 0:
        raise ScratchError("a scratch disk needs root (loop devices, mounts, quotas)")
    if not shutil.which("mkfs.btrfs", path=TOOLS_PATH):
        raise ScratchError("mkfs.btrfs is missing (Debian: btrfs-progs)")
    if not shutil.which("losetup", path=TOOLS_PATH):
        raise ScratchError("losetup is missing (Debian: mount)")
    try:
        filesystems = Path("/proc/filesystems").read_text().split()
    except OSError:
        filesystems = []
    if "btrfs" not in filesystems:
        raise ScratchError("this kernel has no btrfs")
    if not os.path.exists("/dev/loop-control"):
        raise ScratchError("this host has no loop devices (/dev/loop-control)")


def _run(argv: list[str]) -> str:
    env = {"PATH": TOOLS_PATH, "LC_ALL": "C"}
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ScratchError(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        raise ScratchError(f"{argv[0]} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout
