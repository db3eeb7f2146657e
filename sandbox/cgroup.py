"""Per-environment cgroups (v1): memory limit and peak, pids, CPU quota, freezer.

Layout: ``/sys/fs/cgroup/<controller>/lambdalab/<pool>/<environment>``, where
``<pool>`` is ``<pid>-<process start time>`` of the owning process, so that a
pool starting up can tell which leftovers belong to a dead run and clear them.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu", "freezer")
TOP = "lambdalab"
CPU_PERIOD_US = 100_000
MB_PER_VCPU = 1769
MAX_VCPUS = 6


def available() -> dict[str, bool]:
    """Which v1 controllers we can manage here (mounted and writable)."""
    found = {}
    for name in CONTROLLERS:
        path = ROOT / name
        found[name] = (path / "cgroup.procs").exists() and os.access(path, os.W_OK)
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


def cpu_quota_us(memory_mb: int) -> int:
    """CPU time per period in proportion to memory: 1,769 MB buys one vCPU."""
    vcpus = min(MAX_VCPUS, memory_mb / MB_PER_VCPU)
    return max(1000, round(CPU_PERIOD_US * vcpus))


class EnvironmentCgroup:
    """The cgroups of one environment, one directory per controller."""

    def __init__(self, pool: str, name: str, controllers: tuple[str, ...]) -> None:
        self.controllers = controllers
        self.paths = {c: ROOT / c / TOP / pool / name for c in controllers}

    def create(self, *, pids_max: int) -> None:
        for path in self.paths.values():
            path.mkdir(parents=True, exist_ok=True)
        if "memory" in self.paths:
            try:
                _write(self.paths["memory"] / "memory.swappiness", "0")
            except OSError:
                pass
        if "pids" in self.paths:
            _write(self.paths["pids"] / "pids.max", str(pids_max))
        if "cpu" in self.paths:
            _write(self.paths["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        self._memory_mb = MB_PER_VCPU

    def set_limits(self, *, memory_bytes: int, memory_mb: int) -> None:
        """The function's memory, and CPU in proportion to it."""
        if "memory" in self.paths:
            _write(self.paths["memory"] / "memory.limit_in_bytes", str(memory_bytes))
        if "cpu" in self.paths:
            _write(self.paths["cpu"] / "cpu.shares", str(max(2, memory_mb * 1024 // MB_PER_VCPU)))
        self._memory_mb = memory_mb

    def adopt(self, pids) -> None:
        """Move processes in. The first move on a quiet host waits ~10 ms for an RCU
        grace period (cgroup_threadgroup_rwsem), so callers do it while bwrap is
        still building the jail rather than in the child before exec."""
        for path in self.paths.values():
            fd = os.open(path / "cgroup.procs", os.O_WRONLY)
            try:
                for pid in pids:
                    try:
                        os.write(fd, str(pid).encode())
                    except ProcessLookupError:
                        pass
            finally:
                os.close(fd)

    def members(self, pid: int) -> bool:
        """Whether ``pid`` is in every one of this environment's groups."""
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return False
        where = {}
        for line in lines:
            _, names, path = line.split(":", 2)
            for name in names.split(","):
                where[name] = path
        return all(where.get(c) == "/" + str(p.relative_to(ROOT / c)) for c, p in self.paths.items())

    def limit_cpu(self, limited: bool) -> None:
        """Init runs unthrottled (Lambda's init boost); invokes get the quota."""
        if "cpu" in self.paths:
            quota = cpu_quota_us(self._memory_mb) if limited else -1
            _write(self.paths["cpu"] / "cpu.cfs_quota_us", str(quota))

    # -- freezer --------------------------------------------------------------

    def freeze(self, timeout: float = 2.0) -> bool:
        path = self.paths.get("freezer")
        if path is None:
            return False
        state = path / "freezer.state"
        _write(state, "FROZEN")
        deadline = time.monotonic() + timeout
        delay = 0.00002
        while True:
            with open(state, "rb") as f:
                if f.read().startswith(b"FROZEN"):
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.005)

    def thaw(self) -> None:
        path = self.paths.get("freezer")
        if path is not None:
            _write(path / "freezer.state", "THAWED")

    # -- memory ---------------------------------------------------------------

    def reset_peak(self) -> None:
        if "memory" in self.paths:
            _write(self.paths["memory"] / "memory.max_usage_in_bytes", "0")

    def peak_bytes(self) -> int | None:
        if "memory" not in self.paths:
            return None
        with open(self.paths["memory"] / "memory.max_usage_in_bytes", "rb") as f:
            return int(f.read())

    def usage_bytes(self) -> int | None:
        if "memory" not in self.paths:
            return None
        with open(self.paths["memory"] / "memory.usage_in_bytes", "rb") as f:
            return int(f.read())

    def oom_kills(self) -> int:
        if "memory" not in self.paths:
            return 0
        for line in (self.paths["memory"] / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    # -- processes ------------------------------------------------------------

    def pids(self) -> list[int]:
        for c in ("pids", "freezer", "memory", "cpu"):
            if c in self.paths:
                return _pids(self.paths[c])
        return []

    def kill(self, keep: set[int] = frozenset(), timeout: float = 2.0) -> bool:
        """SIGKILL every member but ``keep``, frozen first so none can fork away."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            victims = [p for p in self.pids() if p not in keep]
            if not victims:
                return True
            frozen = self.freeze(timeout=0.5)
            for pid in [p for p in self.pids() if p not in keep]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if frozen:
                self.thaw()
            time.sleep(0.001)
        return not [p for p in self.pids() if p not in keep]

    def destroy(self) -> None:
        self.thaw()
        self.kill()
        for path in self.paths.values():
            for _ in range(100):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)  # the last members are still exiting


def clean_stale(controllers: tuple[str, ...]) -> list[str]:
    """Remove cgroups of pools whose process is gone; kill what is left in them."""
    removed = []
    for c in controllers:
        top = ROOT / c / TOP
        if not top.is_dir():
            continue
        for pool_dir in top.iterdir():
            if not pool_dir.is_dir():
                continue
            pid, _, start = pool_dir.name.partition("-")
            if pid.isdigit() and _process_start_time(int(pid)) == start:
                continue  # the owner is alive
            for env_dir in [d for d in pool_dir.iterdir() if d.is_dir()]:
                group = EnvironmentCgroup.__new__(EnvironmentCgroup)
                group.controllers = (c,)
                group.paths = {c: env_dir}
                if c != "freezer":
                    group.paths.update(
                        {"freezer": ROOT / "freezer" / TOP / pool_dir.name / env_dir.name}
                    )
                    if not group.paths["freezer"].is_dir():
                        del group.paths["freezer"]
                group.thaw()
                group.kill()
                try:
                    env_dir.rmdir()
                except OSError:
                    pass
                removed.append(str(env_dir))
            try:
                pool_dir.rmdir()
            except OSError:
                pass
    return removed
