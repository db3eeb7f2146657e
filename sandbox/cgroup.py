"""Per-environment cgroups: memory limit, pids, CPU quota, freezing and killing.

The limits use the v1 controllers (memory, pids, cpu). Freezing and killing
use the cgroup v2 hierarchy where the host mounts one beside them (hybrid
mode, ``/sys/fs/cgroup/unified``): its ``cgroup.freeze`` costs ~25 µs per
change where v1's freezer costs ~180 µs, and ``cgroup.kill`` takes a whole
tree at once. Without it, the v1 freezer is used.

Layout: ``<hierarchy>/lambdalab/<pool>/<environment>[/agent|/function]``,
where ``<pool>`` is ``<pid>-<process start time>`` of the owning process, so
that a pool starting up can tell which leftovers belong to a dead run and
clear them. Inside an environment:

- memory: ``agent`` (bwrap and the agent: platform overhead, under a cap of
  its own) and ``function`` (the runtime and all it starts, limited to Memory
  Size minus the pages it shares with the agent it was forked from);
- unified: ``function``, what is frozen and what a reset kills (the agent
  stays awake and alive);
- cpu and pids: the environment as a whole. The agent's work for the function
  counts against the function's CPU quota, as everything in a Lambda sandbox
  does.

The pool's own group caps the tasks of all its environments together
(``pids.max``), so jails can never take the host's last pids.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu", "freezer")
UNIFIED = "unified"  # the v2 hierarchy of a hybrid host
TOP = "lambdalab"
CPU_PERIOD_US = 100_000
MB_PER_VCPU = 1769
MAX_VCPUS = 6
AGENT_MEMORY_MB = 64  # the agent's own cap: a 6 MB payload in flight a few times over, and Python
MIB = 1024 * 1024


def _unified_works() -> bool:
    path = ROOT / UNIFIED
    if not (path / "cgroup.procs").exists() or not os.access(path, os.W_OK):
        return False
    probe = path / TOP
    try:
        probe.mkdir(exist_ok=True)
        return (probe / "cgroup.freeze").exists() and (probe / "cgroup.kill").exists()
    except OSError:
        return False


def available() -> dict[str, bool]:
    """Which hierarchies we can manage here (mounted and writable)."""
    found = {}
    for name in CONTROLLERS:
        path = ROOT / name
        found[name] = (path / "cgroup.procs").exists() and os.access(path, os.W_OK)
    found[UNIFIED] = _unified_works()
    return found


def _process_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pool_tag() -> str:
    pid = os.getpid()
    return f"{pid}-{_process_start_time(pid)}"


def owner_alive(name: str) -> bool:
    """Whether the process a ``<pid>-<start time>[-...]`` name was made by still runs."""
    pid, start, *_ = name.split("-") + [""]
    return pid.isdigit() and _process_start_time(int(pid)) == start


def _vanished(exc: OSError) -> bool:
    """Whether an error means the group was removed under us: by its owner, or another
    pool clearing the same dead pool's leftovers. A path that is gone gives ENOENT; a
    file opened just before its group was removed gives ENODEV."""
    return exc.errno in (errno.ENOENT, errno.ENODEV)


def _subfolders(path: Path) -> list[Path]:
    """The folders in ``path``; none if it (or one of them) is removed while we look."""
    try:
        return [child for child in path.iterdir() if child.is_dir()]
    except OSError as exc:
        if _vanished(exc):
            return []
        raise


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in (path / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _move(path: Path, pids) -> None:
    fd = os.open(path / "cgroup.procs", os.O_WRONLY)
    try:
        for pid in pids:
            try:
                os.write(fd, str(pid).encode())
            except ProcessLookupError:
                pass
    finally:
        os.close(fd)


HOST_TASK_SHARE = 0.5  # of the host's pid_max/threads-max: all jails together, never more


def host_task_cap() -> int:
    """Tasks every jail of this host may hold together: half of what the kernel allows, so that
    Redis, PostgreSQL and the workers themselves can always fork."""
    limits = []
    for name in ("pid_max", "threads-max"):
        try:
            limits.append(int(Path(f"/proc/sys/kernel/{name}").read_text()))
        except (OSError, ValueError):
            pass
    return max(1024, int(min(limits or [32768]) * HOST_TASK_SHARE))


def cap_pool_tasks(pool: str, max_tasks: int | None = None) -> int:
    """Cap the tasks of a pool's environments together (its group's ``pids.max``), and of all
    pools on the host (``lambdalab``'s). Returns the pool's cap."""
    top = ROOT / "pids" / TOP
    top.mkdir(exist_ok=True)
    host_cap = host_task_cap()
    _write(top / "pids.max", str(host_cap))
    cap = min(host_cap, max_tasks) if max_tasks else host_cap
    group = top / pool
    group.mkdir(exist_ok=True)
    _write(group / "pids.max", str(cap))
    return cap


def cpu_quota_us(memory_mb: int) -> int:
    """CPU time per period in proportion to memory: 1,769 MB buys one vCPU."""
    vcpus = min(MAX_VCPUS, memory_mb / MB_PER_VCPU)
    return max(1000, round(CPU_PERIOD_US * vcpus))


class EnvironmentCgroup:
    """The cgroups of one environment, one directory per hierarchy."""

    def __init__(self, pool: str, name: str, hierarchies: tuple[str, ...]) -> None:
        self.hierarchies = hierarchies
        self.paths = {h: ROOT / h / TOP / pool / name for h in hierarchies}
        # Where bwrap and the agent live, and where the runtime's tree lives, per hierarchy.
        self.agent = {h: p / "agent" if h == "memory" else p for h, p in self.paths.items()}
        self.function = {h: p / "function" if h in ("memory", UNIFIED) else p for h, p in self.paths.items()}
        self._memory_mb = MB_PER_VCPU
        self._fds: dict[str, int] = {}

    @property
    def freezes(self) -> bool:
        return UNIFIED in self.paths or "freezer" in self.paths

    def _groups(self) -> list[Path]:
        """Every folder, parents first."""
        found = list(self.paths.values())
        for extra in (self.agent, self.function):
            found += [p for h, p in extra.items() if p != self.paths[h] and p not in found]
        return found

    def create(self, *, pids_max: int) -> None:
        for path in self._groups():
            path.mkdir(parents=True, exist_ok=True)
        if "memory" in self.paths:
            for group in (self.paths["memory"], self.agent["memory"], self.function["memory"]):
                try:
                    _write(group / "memory.swappiness", "0")
                except OSError:
                    pass
            _write(self.agent["memory"] / "memory.limit_in_bytes", str(AGENT_MEMORY_MB * MIB))
        if "pids" in self.paths:
            _write(self.paths["pids"] / "pids.max", str(pids_max))
        if "cpu" in self.paths:
            _write(self.paths["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))

    def set_limits(self, *, memory_mb: int, function_bytes: int) -> None:
        """The function's memory (``function_bytes`` for its own group), and CPU in proportion."""
        if "memory" in self.paths:
            whole = (memory_mb + AGENT_MEMORY_MB) * MIB
            _write(self.paths["memory"] / "memory.limit_in_bytes", str(whole))
            _write(self.function["memory"] / "memory.limit_in_bytes", str(max(MIB, function_bytes)))
        if "cpu" in self.paths:
            _write(self.paths["cpu"] / "cpu.shares", str(max(2, memory_mb * 1024 // MB_PER_VCPU)))
        self._memory_mb = memory_mb

    def limit_cpu(self, limited: bool) -> None:
        """The quota in proportion to memory, on the whole environment; off during Init's boost."""
        if "cpu" in self.paths:
            quota = cpu_quota_us(self._memory_mb) if limited else -1
            os.pwrite(self._hot_fd("quota", self.paths["cpu"] / "cpu.cfs_quota_us"), str(quota).encode(), 0)

    # -- membership ------------------------------------------------------------

    def adopt(self, pids) -> None:
        """Move processes in, as the agent's. The first move on a quiet host waits ~10 ms for an
        RCU grace period (cgroup_threadgroup_rwsem), so callers do it while bwrap is still
        building the jail rather than in the child before exec."""
        for path in self.agent.values():
            _move(path, pids)

    def confine(self, pids) -> None:
        """Put runtime processes in the function's groups."""
        for h, path in self.function.items():
            if path != self.agent[h]:
                _move(path, pids)

    @staticmethod
    def _where(pid: int) -> dict[str, str]:
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return {}
        where = {}
        for line in lines:
            number, names, path = line.split(":", 2)
            for name in names.split(",") if names else [UNIFIED if number == "0" else ""]:
                where[name] = path
        return where

    def _relative(self, hierarchy: str, path: Path) -> str:
        return "/" + str(path.relative_to(ROOT / hierarchy))

    def members(self, pid: int) -> bool:
        """Whether ``pid`` is in every one of this environment's groups (or below them)."""
        where = self._where(pid)
        return all(where.get(h, "").startswith(self._relative(h, p)) for h, p in self.paths.items())

    def confined(self, pid: int) -> bool:
        where = self._where(pid)
        return all(where.get(h) == self._relative(h, p) for h, p in self.function.items())

    def function_pids(self) -> list[int] | None:
        """Members of the function's own groups (None when there are none to tell by)."""
        own = [p for h, p in self.function.items() if p != self.paths[h]]
        if not own:
            return None
        return sorted({pid for path in own for pid in _pids(path)})

    def pids(self) -> list[int]:
        """Every process of the environment."""
        for h in ("pids", "freezer", "cpu"):
            if h in self.paths:
                return _pids(self.paths[h])
        for h in ("memory", UNIFIED):
            if h in self.paths:
                return sorted(
                    {pid for g in (self.paths[h], self.agent[h], self.function[h]) for pid in _pids(g)}
                )
        return []

    # -- freezing --------------------------------------------------------------

    def _hot_fd(self, name: str, path: Path) -> int:
        """A descriptor kept open for a file written on every invocation."""
        if name not in self._fds:
            self._fds[name] = os.open(path, os.O_RDWR)
        return self._fds[name]

    def _freeze_group(self) -> Path:
        """With cgroup v2, the function's own tree: user code stops; the agent,
        idle in epoll and running none of it, is not woken to freeze and thaw."""
        return self.function[UNIFIED]

    def request_freeze(self) -> None:
        """Ask the kernel to freeze every task; it completes on its own within microseconds."""
        if UNIFIED in self.paths:
            os.pwrite(self._hot_fd("freeze", self._freeze_group() / "cgroup.freeze"), b"1", 0)
        elif "freezer" in self.paths:
            os.pwrite(self._hot_fd("freeze", self.paths["freezer"] / "freezer.state"), b"FROZEN", 0)

    def thaw(self) -> None:
        if UNIFIED in self.paths:
            os.pwrite(self._hot_fd("freeze", self._freeze_group() / "cgroup.freeze"), b"0", 0)
        elif "freezer" in self.paths:
            os.pwrite(self._hot_fd("freeze", self.paths["freezer"] / "freezer.state"), b"THAWED", 0)

    def freezer_state(self) -> str | None:
        """FROZEN once every task is frozen; FREEZING or THAWED otherwise."""
        if UNIFIED in self.paths:
            events = (self._freeze_group() / "cgroup.events").read_text()
            frozen = "frozen 1" in events
            wanted = (self._freeze_group() / "cgroup.freeze").read_text().strip() == "1"
            return "FROZEN" if frozen else ("FREEZING" if wanted else "THAWED")
        if "freezer" in self.paths:
            return (self.paths["freezer"] / "freezer.state").read_text().strip()
        return None

    def freeze(self, timeout: float = 2.0) -> bool:
        """Freeze and wait until every task is frozen."""
        if not self.freezes:
            return False
        self.request_freeze()
        deadline = time.monotonic() + timeout
        delay = 0.00002
        while self.freezer_state() != "FROZEN":
            if time.monotonic() > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.005)
        return True

    # -- memory ---------------------------------------------------------------

    def usage_bytes(self) -> int | None:
        if "memory" not in self.paths:
            return None
        with open(self.paths["memory"] / "memory.usage_in_bytes", "rb") as f:
            return int(f.read())

    def function_charged_bytes(self) -> int | None:
        """Anonymous and mapped file memory charged to the function's group (not its page cache)."""
        if "memory" not in self.paths:
            return None
        stat = {}
        for line in (self.function["memory"] / "memory.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name in ("rss", "rss_huge", "mapped_file", "shmem"):
                stat[name] = int(value)
        return stat.get("rss", 0) + stat.get("mapped_file", 0)

    def oom_kills(self) -> int:
        """How many times the OOM killer took a process of the function's memory group."""
        if "memory" not in self.paths:
            return 0
        for line in (self.function["memory"] / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    # -- killing --------------------------------------------------------------

    def kill(self, keep: set[int] = frozenset(), timeout: float = 2.0) -> bool:
        """SIGKILL every member but ``keep`` (the runtime's tree, when keep is the agent's chain)."""
        if UNIFIED in self.paths:
            for path in [self.function[UNIFIED]] + ([] if keep else [self.paths[UNIFIED]]):
                try:
                    _write(path / "cgroup.kill", "1")
                except OSError as exc:
                    if not _vanished(exc):
                        raise

        def victims() -> list[int]:
            if keep:  # the runtime's tree only: the agent's fresh, idle pre-fork is not in it yet
                members = self.function_pids()
                if members is not None:
                    return [p for p in members if p not in keep]
            return [p for p in self.pids() if p not in keep]

        deadline = time.monotonic() + timeout
        delay = 0.0002
        while time.monotonic() < deadline:
            if not victims():
                return True
            if UNIFIED in self.paths:  # cgroup.kill already took them all, forks included
                time.sleep(delay)
                delay = min(delay * 2, 0.01)
                continue
            try:
                frozen = self.freeze(timeout=0.5)  # nothing forks away while we take it
            except OSError as exc:
                if not _vanished(exc):
                    raise
                frozen = False  # the freezer's group is gone: so are its members
            for pid in victims():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if frozen:
                try:
                    self.thaw()
                except OSError as exc:
                    if not _vanished(exc):
                        raise
            time.sleep(delay)  # killed tasks leave the group as they finish exiting
            delay = min(delay * 2, 0.01)
        return not victims()

    def close_fds(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def destroy(self) -> None:
        """Kill every member and remove the folders; any of them may be removed by someone
        else meanwhile (another pool clearing the same leftovers), which is no error."""
        try:
            self.thaw()
        except OSError as exc:
            if not _vanished(exc):
                raise
        self.kill()
        self.close_fds()
        for path in reversed(self._groups()):
            for _ in range(100):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)  # the last members are still exiting


def clean_stale(hierarchies: tuple[str, ...] = CONTROLLERS + (UNIFIED,)) -> list[str]:
    """Remove cgroups of pools whose process is gone; kill what is left in them.

    Every pool does this as it starts, so others may be removing the same
    folders at the same moment: anything listed may be gone when we use it.
    Returns the ``<pool>/<environment>`` groups that were found stale.
    """
    hierarchies = tuple(h for h in hierarchies if (ROOT / h).is_dir())
    removed = []
    stale: set[tuple[str, str]] = set()
    for h in hierarchies:
        for pool_dir in _subfolders(ROOT / h / TOP):
            if owner_alive(pool_dir.name):
                continue
            for env_dir in _subfolders(pool_dir):
                stale.add((pool_dir.name, env_dir.name))
    for pool, env in sorted(stale):
        group = EnvironmentCgroup(
            pool, env, tuple(h for h in hierarchies if (ROOT / h / TOP / pool / env).is_dir())
        )
        group.destroy()
        removed.append(f"{pool}/{env}")
    for h in hierarchies:
        for pool_dir in _subfolders(ROOT / h / TOP):
            if not owner_alive(pool_dir.name):
                try:
                    pool_dir.rmdir()
                except OSError:
                    pass  # gone already, or another pool is still emptying it
    return removed
