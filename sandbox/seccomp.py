"""The seccomp filter every jail runs under, compiled once to BPF for bwrap.

bwrap installs a compiled filter passed as ``--seccomp FD``, so no seccomp code
runs inside the jail. Denied calls fail with EPERM, as they would for a
process without the privilege; 32-bit syscalls kill the process (libseccomp's
bad-architecture default), and ``clone3`` reports ENOSYS so that libc falls
back to ``clone``, whose namespace flags the filter can see.
"""

from __future__ import annotations

import errno
import os

DENIED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",  # would let user code take the agent's control socket
    "process_madvise",
    "kcmp",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "open_by_handle_at",
    "name_to_handle_at",
    "fsopen",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
)
CLONE_NEW_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)
TIOCSTI = 0x5412
# The socket families a function needs. The rest are refused (EAFNOSUPPORT): AF_VSOCK is not
# in the network namespace (one port space shared with the host and every jail), and netlink,
# packet and the like are kernel interfaces no handler needs.
SOCKET_FAMILIES = (1, 2, 10)  # AF_UNIX, AF_INET, AF_INET6


class SeccompUnavailable(Exception):
    pass


def compile_filter() -> bytes:
    """Return the filter as BPF bytes, or raise SeccompUnavailable."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:  # libseccomp.so.2 missing, or the binding
        raise SeccompUnavailable(str(exc)) from None
    f = sc.SyscallFilter(defaction=sc.ALLOW)
    try:  # a binary tree rather than a list: every syscall of the jail goes through this filter
        f.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
    except (OSError, RuntimeError, ValueError, AttributeError):
        pass
    for name in DENIED:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            pass  # not a syscall on this architecture
    for flag in CLONE_NEW_FLAGS:
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    from .scratch import JAIL_BLOCKED_IOCTLS  # btrfs subvolumes and snapshots: not in Lambda's /tmp

    for request in (TIOCSTI, *JAIL_BLOCKED_IOCTLS):
        f.add_rule(sc.ERRNO(errno.EPERM), "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    # socket(family, ...) and socketpair(family, ...): anything but exactly an allowed family
    # (compared as 64 bits, so high bits cannot smuggle a family past the filter)
    for call in ("socket", "socketpair"):
        top = max(SOCKET_FAMILIES)
        for family in range(top):
            if family not in SOCKET_FAMILIES:
                f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), call, sc.Arg(0, sc.EQ, family))
        f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), call, sc.Arg(0, sc.GT, top))
    read_fd, write_fd = os.pipe()
    try:
        with os.fdopen(write_fd, "wb") as out:
            f.export_bpf(out)
        chunks = []
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(read_fd)
    return b"".join(chunks)


def filter_fd(program: bytes) -> int:
    """A fresh readable descriptor holding ``program``, for one bwrap start."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, program)  # a few hundred bytes: well under the pipe buffer
    os.close(write_fd)
    return read_fd
