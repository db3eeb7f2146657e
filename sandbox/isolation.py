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

from . import cgroup, jail
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
    blocking: str | None = None  # why no jail can be built at all

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


DISABLEABLE = ("cgroups", "cgroup-v2", "seccomp")


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
        "read-only /usr (/usr/local hidden), runtime and code; private tmpfs /tmp; no project, home or /etc",
    )
    report.add(
        "environment",
        "strong",
        "bwrap starts with an empty environment; the runtime gets only Lambda's variables",
    )
    report.add("descriptors", "strong", "only the control socket is inherited")
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
        "memory cgroup: limit, peak and OOM kills (tmpfs counts)"
        if found["memory"]
        else "no writable memory cgroup: memory is not limited; Max Memory Used is the runtime's peak RSS",
    )
    report.add(
        "pids",
        "strong" if found["pids"] else "partial",
        "pids cgroup: 1,024 tasks" if found["pids"] else "RLIMIT_NPROC 1,024 only",
    )
    report.add(
        "cpu",
        "strong" if found["cpu"] else "none",
        "cpu cgroup: quota in proportion to memory (1,769 MB = 1 vCPU)"
        if found["cpu"]
        else "no writable cpu cgroup: CPU is not limited",
    )
    if found[cgroup.UNIFIED]:
        report.add("freezer", "strong", "cgroup v2 freezer (cgroup.freeze) and cgroup.kill")
    elif found["freezer"]:
        report.add("freezer", "strong", "cgroup v1 freezer")
    else:
        report.add("freezer", "partial", "SIGSTOP/SIGCONT of every jail process")
    try:
        if "seccomp" in disable:
            raise SeccompUnavailable("disabled by LAMBDALAB_DISABLE")
        report.seccomp_program = compile_filter()
        report.add("seccomp", "strong", "denies ptrace, mount, unshare, keyctl, bpf, io_uring and more")
    except SeccompUnavailable as exc:
        report.add("seccomp", "none", f"no seccomp filter: {exc}")
    return report
