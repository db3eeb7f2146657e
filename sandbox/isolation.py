"""What isolation this host allows, feature by feature, and the level reached.

The pool asks once at start and gives every environment the same. Levels:
``strong`` (the real mechanism), ``partial`` (a weaker fallback is in force),
``none`` (missing). The engine never claims more than this says.
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass, field

from . import cgroup, jail, scratch
from .seccomp import SeccompUnavailable, compile_filter

LEVELS = ("none", "partial", "strong")


@dataclass
class Feature:
    name: str
    level: str
    detail: str


@dataclass
class IsolationReport:
    features: list[Feature] = field(default_factory=list)
    cgroup_controllers: tuple[str, ...] = ()
    seccomp_program: bytes | None = None
    scratch: bool = False  # /tmp on the scratch disk (else a tmpfs, counted as memory)
    blocking: str | None = None  # why no jail can be built at all
    # Where a jail here still differs from Lambda or leaks a little between tenants: said, not hidden.
    notes: list[str] = field(default_factory=list)

    @property
    def level(self) -> str:
        if self.blocking or not self.features:
            return "none"
        return min((f.level for f in self.features), key=LEVELS.index)

    def summary(self) -> str:
        weak = [f"{f.name}: {f.level}" for f in self.features if f.level != "strong"]
        return ", ".join(weak) or "all strong"

    def add(self, name: str, level: str, detail: str) -> None:
        self.features.append(Feature(name, level, detail))


def _namespaces_work(bwrap: str) -> str | None:
    """None if an unprivileged bwrap can create every namespace; else why not."""
    kwargs = {}
    if os.geteuid() == 0:
        kwargs.update(user=jail.UID_BASE - 1, group=jail.UID_BASE - 1, extra_groups=[])
    try:
        done = subprocess.run(
            [
                bwrap,
                "--unshare-all",
                "--die-with-parent",
                "--ro-bind",
                "/usr",
                "/usr",
                "--symlink",
                "usr/lib",
                "/lib",
                "--symlink",
                "usr/lib64",
                "/lib64",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "/usr/bin/true",
            ],
            env={},
            capture_output=True,
            timeout=20,
            cwd="/",
            **kwargs,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip() or f"bwrap exited {done.returncode}"
    return None


DISABLEABLE = ("cgroups", "cgroup-v2", "seccomp", "scratch")


def disabled_from_env() -> frozenset[str]:
    """``LAMBDALAB_DISABLE=cgroups,seccomp``: act as on a host without them (to see the fallbacks)."""
    names = {n.strip() for n in os.environ.get("LAMBDALAB_DISABLE", "").split(",") if n.strip()}
    unknown = names - set(DISABLEABLE)
    if unknown:
        raise ValueError(f"LAMBDALAB_DISABLE: unknown feature(s) {', '.join(sorted(unknown))}")
    return frozenset(names)


@functools.lru_cache(maxsize=8)
def probe(disable: frozenset[str] = frozenset()) -> IsolationReport:
    """What this host gives; ``disable`` pretends features are missing (see DISABLEABLE)."""
    report = IsolationReport()
    bwrap = jail.bwrap_path()
    if bwrap is None:
        report.blocking = "bubblewrap (bwrap) is not installed: apt-get install -y bubblewrap"
        report.add("namespaces", "none", report.blocking)
        return report
    why = _namespaces_work(bwrap)
    if why:
        report.blocking = f"bwrap cannot create namespaces unprivileged: {why}"
        report.add("namespaces", "none", report.blocking)
        return report
    report.add("namespaces", "strong", "new user, pid, net, ipc, uts, mount and cgroup namespaces (bwrap)")
    report.add("network", "strong", "own loopback only: no route to the host's 127.0.0.1")
    report.add(
        "filesystem",
        "strong",
        "read-only root, /usr (/usr/local hidden), runtime and code; only /tmp is writable; "
        "no project, home or /etc",
    )
    report.add(
        "environment",
        "strong",
        "bwrap starts with an empty environment; the runtime gets only Lambda's variables (and the "
        "lab service's LAB_SERVICE_SOCKET)",
    )
    report.add("descriptors", "strong", "only the control socket is inherited")
    report.add(
        "lab service",
        "strong",
        "the one narrow path out: a Unix socket to the function's own key-value store, read-only at "
        "/var/lab/kv.sock (no other function's, no host socket; its own network namespace)",
    )
    report.add(
        "supervisor",
        "strong",
        "the agent is the jail's pid 1 and not dumpable: user code cannot kill, stop, read or write it",
    )
    report.add(
        "lifetime",
        "strong",
        "--die-with-parent from one long-lived spawner thread; pid namespace dies with its pid 1",
    )
    if os.geteuid() == 0:
        report.add("uid", "strong", "each environment runs as its own unprivileged host uid")
    else:
        report.add(
            "uid", "partial", f"environments share this user's uid {os.getuid()} (not root: cannot pick uids)"
        )
    found = cgroup.available()
    if "cgroups" in disable:
        found = dict.fromkeys(found, False)
    if "cgroup-v2" in disable:
        found[cgroup.UNIFIED] = False
    hierarchies = [c for c in ("memory", "pids", "cpu") if found[c]]
    if found[cgroup.UNIFIED]:
        hierarchies.append(cgroup.UNIFIED)  # v2 freezer and cgroup.kill
    elif found["freezer"]:
        hierarchies.append("freezer")
    report.cgroup_controllers = tuple(hierarchies)
    report.add(
        "memory",
        "strong" if found["memory"] else "none",
        "memory cgroup: the function limited to Memory Size, the agent capped apart; OOM kills seen"
        if found["memory"]
        else "no writable memory cgroup: memory is not limited; Max Memory Used is the runtime's peak RSS",
    )
    report.add(
        "pids",
        "strong" if found["pids"] else "partial",
        f"pids cgroup: 1,024 tasks per environment, {cgroup.host_task_cap():,} for all jails together"
        if found["pids"]
        else "RLIMIT_NPROC 1,024 only",
    )
    report.add(
        "cpu",
        "strong" if found["cpu"] else "none",
        "cpu cgroup: quota in proportion to memory (1,769 MB = 1 vCPU), the agent's work included"
        if found["cpu"]
        else "no writable cpu cgroup: CPU is not limited",
    )
    if found[cgroup.UNIFIED]:
        report.add("freezer", "strong", "cgroup v2 freezer (cgroup.freeze) and cgroup.kill")
    elif found["freezer"]:
        report.add("freezer", "strong", "cgroup v1 freezer")
    else:
        report.add("freezer", "partial", "SIGSTOP/SIGCONT of every jail process")
    why_not = "disabled by LAMBDALAB_DISABLE" if "scratch" in disable else scratch.unavailable_reason()
    report.scratch = why_not is None
    if report.scratch:
        report.add(
            "tmp",
            "strong",
            "/tmp on disk, one directory per environment with its size as a quota (one btrfs image "
            "per process); not memory",
        )
        report.notes.append(
            "/tmp past its size fails with EDQUOT ('Disk quota exceeded'), not Lambda's ENOSPC, and "
            "df /tmp shows the scratch disk, not the size: this kernel has no XFS or ext4 project "
            "quotas, which would give both"
        )
    else:
        report.add("tmp", "partial", f"/tmp is a tmpfs, counted against the function's memory ({why_not})")
    report.notes += [
        "/proc/stat, /proc/loadavg, /proc/meminfo and /proc/cpuinfo show the host's, not the environment's",
        "flock and inotify on the shared read-only /usr are seen across environments (a covert channel "
        "between tenants; code folders are per function, so never shared across functions)",
        "the jail's cgroup namespace is rooted where bwrap started, so /proc/self/cgroup names the "
        "environment's groups (no cgroup files are reachable: /sys is not mounted)",
        "/proc/self/mountinfo shows the host paths bound at /var/task, /tmp and /var/lab (the engine's "
        "state folder, its pid and the environment's id): names only, none of them reachable",
    ]
    try:
        if "seccomp" in disable:
            raise SeccompUnavailable("disabled by LAMBDALAB_DISABLE")
        report.seccomp_program = compile_filter()
        report.add(
            "seccomp",
            "strong",
            "denies ptrace, mount, unshare, keyctl, bpf, io_uring and more; Unix and IP sockets only",
        )
    except SeccompUnavailable as exc:
        report.add("seccomp", "none", f"no seccomp filter: {exc}")
    return report
