"""Engine benchmarks: cold start, warm invoke, idle memory, many environments.

Prints figures, each beside a baseline measured in the same run on the same
machine, so numbers can be compared across noisy hosts. It is not a test:
it always exits 0 (a figure that fails to run is reported as ERROR).

    .venv/bin/python bench/engine.py            # full run (~1-3 min)
    .venv/bin/python bench/engine.py --quick    # smaller run (~30-40 s)
    .venv/bin/python bench/engine.py --only 2,3 --warm 5000

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _engine_root() -> Path:
    """Where the sandbox package is imported from: this checkout, or --engine DIR."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--engine")
    known, _ = pre.parse_known_args()
    return Path(known.engine).resolve() if known.engine else ROOT


ENGINE = _engine_root()
sys.path.insert(0, str(ENGINE))

from sandbox import EnvironmentPool, FunctionSpec  # noqa: E402
from sandbox import cgroup as sb_cgroup  # noqa: E402

TRIVIAL = "def lambda_handler(event, context):\n    return 1\n"
# Figure 5: the same trivial handler, but it can hold its environment for a while
# so that many concurrent calls each take a different environment.
HOLDING = (
    "import time\n"
    "def lambda_handler(event, context):\n"
    "    hold = event.get('hold') if isinstance(event, dict) else None\n"
    "    if hold:\n"
    "        time.sleep(hold)\n"
    "    return 1\n"
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1024 * 1024


# -- small helpers -------------------------------------------------------------


def pct(values, p):
    """Percentile with linear interpolation (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ms(seconds):
    return seconds * 1000.0


def fmt(v, unit="", nd=2):
    if v is None or (isinstance(v, float) and v != v):
        return "n/a"
    return f"{v:.{nd}f}{unit}"


def say(*args):
    print(*args, flush=True)


def header(title):
    say()
    say(f"== {title} " + "=" * max(0, 74 - len(title)))


def mem_available_bytes():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def smaps_rollup(pid):
    """{field: kB} from /proc/<pid>/smaps_rollup, or {} if the process is gone."""
    out = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith(":") and parts[2] == "kB":
            out[parts[0][:-1]] = int(parts[1])
    return out


def proc_stat(pid):
    """(ppid, utime+stime ticks) or None."""
    try:
        tail = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(tail[1]), int(tail[11]) + int(tail[12])


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        st = proc_stat(pid)
        if st:
            total += st[1]
    return total


def cpu_stat(env):
    """cpu.stat of the group holding the environment's CPU quota ({} if none).

    Keys are normalised to cgroup v1's: nr_throttled, throttled_time (ns).
    """
    cg = env.cgroup
    if cg is None:
        return {}
    # The engine may confine the function's processes to a child group that holds the quota.
    function = getattr(cg, "function", None)
    candidates = []
    if isinstance(function, dict):
        candidates += [function.get("cpu"), function.get("unified")]
    candidates += [getattr(cg, "function_cpu", None), cg.paths.get("cpu"), cg.paths.get("unified")]
    for path in candidates:
        if path is None or not (Path(path) / "cpu.stat").exists():
            continue
        try:
            lines = (Path(path) / "cpu.stat").read_text().splitlines()
            stat = {k: int(v) for k, v in (line.split() for line in lines)}
        except (OSError, ValueError):
            continue
        if "throttled_usec" in stat and "throttled_time" not in stat:
            stat["throttled_time"] = stat["throttled_usec"] * 1000
        return stat
    return {}


def other_pools(own_tag=None):
    """Other lambdalab pools alive on this host (other processes' cgroups)."""
    top = sb_cgroup.ROOT / "freezer" / sb_cgroup.TOP
    try:
        names = [d.name for d in top.iterdir() if d.is_dir()]
    except OSError:
        return []
    return [n for n in names if n != own_tag]


def pool_cgroup_dirs(tag):
    """Environment cgroup directories left under this process's pool tag."""
    left = []
    for c in sb_cgroup.CONTROLLERS:
        d = sb_cgroup.ROOT / c / sb_cgroup.TOP / tag
        if d.is_dir():
            left += [str(e) for e in d.iterdir() if e.is_dir()]
    return left


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc (the jail's processes as the host sees them)."""
    found, todo = [], [root]
    while todo and len(found) < 4096:
        pid = todo.pop()
        found.append(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def escaped(env) -> list[int]:
    """Live processes of the jail's process tree that are not in the environment's cgroups."""
    if env.cgroup is None or env.proc is None:
        return []
    members = set(env.cgroup.pids())
    return [p for p in tree_pids(env.proc.pid) if p not in members and pid_alive(p)]


def escape_report(envs) -> tuple[int, int, str]:
    """(environments with escapees, escaped processes, one example) over ``envs``."""
    hit, total, example = 0, 0, ""
    for env in envs:
        out = escaped(env)
        if out:
            hit += 1
            total += len(out)
            if not example:
                pid = out[0]
                try:
                    where = Path(f"/proc/{pid}/cgroup").read_text().replace("\n", " ").strip()
                    cmd = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()[:80]
                except OSError:
                    where = cmd = "?"
                example = f"pid {pid} ({cmd}) of environment {env.id[:8]} is in: {where[:300]}"
    return hit, total, example


def engine_version(pkg: Path) -> str:
    """The engine's commit, and whether its files differ from it (others may be editing them)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(pkg), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(pkg), "status", "--porcelain", "."], capture_output=True, text=True, timeout=10
        ).stdout.split("\n")
    except (OSError, subprocess.TimeoutExpired):
        return "not a git checkout"
    if not head:
        return "not a git checkout"
    changed = [line for line in dirty if line.strip()]
    return f"commit {head}" + (f" + {len(changed)} uncommitted file(s)" if changed else "")


def others_active():
    return bool(other_pools(sb_cgroup.pool_tag()))


def pid_alive(pid):
    try:
        st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return st[0] != "Z"


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def child_pids():
    kids = []
    for task in Path("/proc/self/task").iterdir():
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


# -- figure 1: baselines -----------------------------------------------------------


def bench_baselines(args, R):
    header("1. Baselines (this machine, this run)")
    real = os.path.realpath(sys.executable)
    R["python"] = real
    out = {}

    def time_cmd(argv, n, **kw):
        samples, errors = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, **kw)
            dt = time.perf_counter() - t0
            if done.returncode == 0:
                samples.append(ms(dt))
            else:
                errors.append(done.stderr.decode(errors="replace").strip()[:200] or f"exit {done.returncode}")
        return samples, errors

    # python -c pass
    time_cmd([real, "-c", "pass"], 2)  # warm the page cache
    s, err = time_cmd([real, "-c", "pass"], args.python_runs)
    out["python_start_p50_ms"], out["python_start_p95_ms"] = pct(s, 50), pct(s, 95)
    say(
        f"python -c pass ({real}), n={len(s)}: p50 {fmt(pct(s, 50), ' ms')}  p95 {fmt(pct(s, 95), ' ms')}"
        + (f"  errors={len(err)}: {err[0]}" if err else "")
    )
    s, err = time_cmd([real, "-I", "-S", "-c", "pass"], args.python_runs)
    out["python_IS_start_p50_ms"] = pct(s, 50)
    say(
        f"python -I -S -c pass (the agent's flags), n={len(s)}: p50 {fmt(pct(s, 50), ' ms')}  "
        f"p95 {fmt(pct(s, 95), ' ms')}"
    )

    # socketpair ping-pong with a forked child (before any pool thread exists)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # child: echo bytes until EOF
        try:
            a.close()
            while True:
                d = b.recv(1)
                if not d:
                    break
                b.sendall(d)
        finally:
            os._exit(0)
    b.close()
    n = args.pingpong
    for _ in range(min(200, n)):  # warm-up
        a.send(b"x")
        a.recv(1)
    rtt = []
    pc = time.perf_counter_ns
    for _ in range(n):
        t0 = pc()
        a.send(b"x")
        a.recv(1)
        rtt.append((pc() - t0) / 1000.0)
    a.close()
    os.waitpid(pid, 0)
    out["rtt_p50_us"], out["rtt_p95_us"], out["rtt_p99_us"] = pct(rtt, 50), pct(rtt, 95), pct(rtt, 99)
    say(
        f"socketpair 1-byte round trip to a forked child, n={n}: p50 {fmt(pct(rtt, 50), ' us', 1)}  "
        f"p95 {fmt(pct(rtt, 95), ' us', 1)}  p99 {fmt(pct(rtt, 99), ' us', 1)}"
    )

    # bare bwrap
    bwrap = sb_jail_bwrap()
    argv = [
        bwrap,
        "--unshare-all",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "/usr/bin/true",
    ]
    time_cmd(argv, 2)
    s, err = time_cmd(argv, args.bwrap_runs)
    out["bwrap_p50_ms"], out["bwrap_p95_ms"] = pct(s, 50), pct(s, 95)
    say(
        f"bwrap --unshare-all ... /usr/bin/true, n={len(s)}: p50 {fmt(pct(s, 50), ' ms')}  "
        f"p95 {fmt(pct(s, 95), ' ms')}" + (f"  errors={len(err)}: {err[0]}" if err else "")
    )
    # cgroup v1 freezer: freeze + thaw of a group holding one sleeping process
    if freezer_available():
        others = frozen_groups_on_host()
        fr = freezer_cycle(args.freezer_cycles)
        with FreezerSentinel():
            fs = freezer_cycle(args.freezer_cycles)
        out.update({"freezer_" + k: v for k, v in fr.items()})
        out.update({"freezer_sentinel_" + k: v for k, v in fs.items()})
        out["frozen_groups_on_host"] = others
        say(
            f"cgroup v1 freezer, 1 sleeping process, n={args.freezer_cycles} ({others} other frozen groups on "
            f"the host): freeze p50 {fmt(fr['freeze_p50_us'], ' us', 0)}, thaw p50 "
            f"{fmt(fr['thaw_p50_us'], ' us', 0)}, CPU per cycle {fmt(fr['cpu_us'], ' us', 0)}"
        )
        say(
            f"  same with another group held frozen: freeze p50 {fmt(fs['freeze_p50_us'], ' us', 0)}, "
            f"thaw p50 {fmt(fs['thaw_p50_us'], ' us', 0)}, CPU per cycle {fmt(fs['cpu_us'], ' us', 0)}"
        )
    else:
        say("cgroup v1 freezer: not available, skipped")
    R["baselines"] = out


FREEZER = sb_cgroup.ROOT / "freezer"
# Scratch freezer groups live outside lambdalab/ so that no pool's stale-cgroup sweep touches them.
SCRATCH = FREEZER / "lambdalab-bench"


def freezer_available():
    return (FREEZER / "cgroup.procs").exists() and os.access(FREEZER, os.W_OK)


def frozen_groups_on_host():
    """How many freezer cgroups on the host are frozen right now (any owner)."""
    n = 0
    for path in FREEZER.rglob("freezer.self_freezing"):
        try:
            n += path.read_bytes().strip() == b"1"
        except OSError:
            pass
    return n


def _write(path, value):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value)
    finally:
        os.close(fd)


def _rmdir(d):
    for _ in range(100):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.005)


class FreezerSentinel:
    """An empty freezer cgroup held FROZEN while in use.

    Since Linux 6.1 the v1 freezer flips a global static key (freezer_active)
    when the first group on the host freezes and when the last one thaws;
    that costs hundreds of microseconds. While any group stays frozen, other
    groups' freeze/thaw skip it. This holds one frozen, as a busy host with
    idle environments would.
    """

    def __enter__(self):
        self.dir = SCRATCH / f"{os.getpid()}-sentinel"
        self.dir.mkdir(parents=True, exist_ok=True)
        _write(self.dir / "freezer.state", b"FROZEN")
        return self

    def __exit__(self, *exc):
        try:
            _write(self.dir / "freezer.state", b"THAWED")
        except OSError:
            pass
        _rmdir(self.dir)
        try:
            SCRATCH.rmdir()
        except OSError:
            pass


def freezer_cycle(n):
    """Time raw freeze/thaw writes on a scratch freezer cgroup holding one sleeping process."""
    d = SCRATCH / str(os.getpid())
    d.mkdir(parents=True, exist_ok=True)
    sleeper = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL)
    state = d / "freezer.state"

    def frozen():
        with open(state, "rb") as f:
            return f.read().startswith(b"FROZEN")

    try:
        (d / "cgroup.procs").write_text(str(sleeper.pid))
        tf, tt = [], []
        c0 = time.process_time()
        for _ in range(n):
            t = time.perf_counter()
            _write(state, b"FROZEN")
            while not frozen():
                pass
            tf.append((time.perf_counter() - t) * 1e6)
            t = time.perf_counter()
            _write(state, b"THAWED")
            tt.append((time.perf_counter() - t) * 1e6)
        cpu = (time.process_time() - c0) / n * 1e6
    finally:
        try:
            _write(state, b"THAWED")
        except OSError:
            pass
        sleeper.kill()
        sleeper.wait()
        _rmdir(d)
        try:
            SCRATCH.rmdir()
        except OSError:
            pass
    return {"freeze_p50_us": pct(tf, 50), "thaw_p50_us": pct(tt, 50), "cpu_us": cpu}


def sb_jail_bwrap():
    from sandbox import jail

    return jail.bwrap_path() or "bwrap"


# -- figure 2: cold start ------------------------------------------------------------


def has_stem_cells():
    import inspect

    return "stem_cells" in inspect.signature(EnvironmentPool).parameters


def make_pool(max_environments, stem_cells=None):
    """A pool; ``stem_cells`` only where the engine has them (None: the engine's default)."""
    kwargs = {}
    if stem_cells is not None and has_stem_cells():
        kwargs["stem_cells"] = stem_cells
    return EnvironmentPool(on_event=None, max_environments=max_environments, **kwargs)


def stem_cells_of(pool):
    return list(getattr(pool, "_stem_cells", []))


def wait_stem_cells(pool, timeout=10.0):
    """Wait until the pool's stem cells are all built (no background build competing for CPU)."""
    target = getattr(pool, "_stem_target", 0)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(stem_cells_of(pool)) >= target and not getattr(pool, "_growing", 0):
            return True
        time.sleep(0.002)
    return False


def cold_run(n, stem):
    """n cold starts; stem=True waits for ready stem cells first, False disables them."""
    spec = FunctionSpec(source=TRIVIAL)
    walls, inits, shutdowns, bad = [], [], [], []
    not_ready = 0
    with make_pool(8, stem_cells=None if stem else 0) as pool:
        # Untimed: materialise the code folder, warm the page cache.
        for _ in range(2):
            r = pool.invoke(spec, {})
            pool.shutdown_environment(r.environment_id)
        for _ in range(n):
            if stem and not wait_stem_cells(pool):
                not_ready += 1
            t0 = time.perf_counter()
            r = pool.invoke(spec, {})
            walls.append(ms(time.perf_counter() - t0))
            if not r.cold or r.status != "success":
                bad.append(f"cold={r.cold} status={r.status} payload={r.payload[:120]!r}")
            if r.init_duration_ms is not None:
                inits.append(r.init_duration_ms)
            t1 = time.perf_counter()
            if not pool.shutdown_environment(r.environment_id):
                bad.append(f"shutdown_environment({r.environment_id}) returned False")
            shutdowns.append(ms(time.perf_counter() - t1))
        left = len(pool.environments())
    if not_ready:
        bad.append(f"{not_ready} calls found the stem cells still building after 10 s")
    return {
        "n": n,
        "p50_ms": pct(walls, 50),
        "p95_ms": pct(walls, 95),
        "mean_ms": statistics.fmean(walls) if walls else None,
        "min_ms": min(walls, default=None),
        "max_ms": max(walls, default=None),
        "init_p50_ms": pct(inits, 50),
        "after_init_p50_ms": pct([w - i for w, i in zip(walls, inits, strict=False)], 50),
        "shutdown_p50_ms": pct(shutdowns, 50),
        "left": left,
        "problems": bad,
    }


def bench_cold(args, R):
    header(f"2. Cold start, trivial handler, 128 MB (n={args.cold})")
    variants = [("stem", True), ("scratch", False)] if has_stem_cells() else [("scratch", False)]
    R["cold"] = {}
    for key, stem in variants:
        o = cold_run(args.cold, stem)
        R["cold"][key] = o
        label = (
            "from a ready stem cell (pre-built jail, the default)"
            if stem
            else ("from scratch (stem_cells=0: build the jail too)" if has_stem_cells() else "from scratch")
        )
        say(f"{label}:")
        say(
            f"   pool.invoke wall (-> first response): p50 {fmt(o['p50_ms'], ' ms')}  "
            f"p95 {fmt(o['p95_ms'], ' ms')}  mean {fmt(o['mean_ms'], ' ms')}  "
            f"min {fmt(o['min_ms'], ' ms')}  max {fmt(o['max_ms'], ' ms')}"
        )
        say(
            f"   reported init_duration_ms p50 {fmt(o['init_p50_ms'], ' ms')}; wall - init p50 "
            f"{fmt(o['after_init_p50_ms'], ' ms')}; shutdown_environment between calls (not counted) p50 "
            f"{fmt(o['shutdown_p50_ms'], ' ms')}; environments left {o['left']}"
        )
        for p in o["problems"][:5]:
            say(f"   PROBLEM: {p}")
    b = R.get("baselines", {})
    if b:
        say(
            f"baseline: python -c pass {fmt(b.get('python_start_p50_ms'), ' ms')} + bare bwrap "
            f"{fmt(b.get('bwrap_p50_ms'), ' ms')} = {fmt(b['python_start_p50_ms'] + b['bwrap_p50_ms'], ' ms')} (p50s)"
        )


# -- figure 3: warm invoke ------------------------------------------------------------


def warm_run(memory_mb, n, warmup):
    spec = FunctionSpec(source=TRIVIAL, memory_mb=memory_mb)
    lat, bad = [], []
    with make_pool(6) as pool:
        first = pool.invoke(spec, {})
        env = pool._all[first.environment_id]
        for _ in range(warmup):
            pool.invoke(spec, {})
        pids = env.cgroup.pids() if env.cgroup is not None else []
        jail0 = cpu_ticks(pids)
        cs0 = cpu_stat(env)
        host0 = time.process_time()
        envs_seen = set()
        t_start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            r = pool.invoke(spec, {})
            lat.append(ms(time.perf_counter() - t0))
            envs_seen.add(r.environment_id)
            if r.cold or r.status != "success":
                bad.append(f"cold={r.cold} status={r.status} {r.error_type}")
        elapsed = time.perf_counter() - t_start
        host_cpu = time.process_time() - host0
        jail_cpu = (cpu_ticks(pids) - jail0) / CLK_TCK
        cs1 = cpu_stat(env)
        quota = sb_cgroup.cpu_quota_us(memory_mb)
        outside = escaped(env)
        if outside:
            bad.append(
                f"{len(outside)} jail process(es) outside the environment's cgroups during the run: "
                "their CPU is neither throttled nor counted in the throttling figures"
            )
    out = {
        "memory_mb": memory_mb,
        "n": n,
        "p50_ms": pct(lat, 50),
        "p95_ms": pct(lat, 95),
        "p99_ms": pct(lat, 99),
        "max_ms": max(lat, default=None),
        "throughput_per_s": n / elapsed if elapsed else None,
        "host_cpu_us_per_call": host_cpu / n * 1e6,
        "jail_cpu_us_per_call": jail_cpu / n * 1e6,
        "cpu_quota_pct": quota / sb_cgroup.CPU_PERIOD_US * 100,
        "throttled_periods": cs1.get("nr_throttled", 0) - cs0.get("nr_throttled", 0),
        "throttled_ms": (cs1.get("throttled_time", 0) - cs0.get("throttled_time", 0)) / 1e6,
        "environments_used": len(envs_seen),
        "problems": bad,
    }
    return out


def bench_warm(args, R):
    header(f"3. Warm invoke through the pool (thaw, invoke, freeze), trivial handler (n={args.warm})")
    R["warm"] = {}
    runs = [("128", 128, False), ("1769", 1769, False)]
    if freezer_available():
        runs.append(("1769+sentinel", 1769, True))
    for key, mem, sentinel in runs:
        others = frozen_groups_on_host() if freezer_available() else 0
        if sentinel:
            with FreezerSentinel():
                o = warm_run(mem, args.warm, args.warmup)
        else:
            o = warm_run(mem, args.warm, args.warmup)
        o["frozen_groups_on_host"] = others
        R["warm"][key] = o
        label = f"{mem:>5} MB" + (" + a frozen sentinel group" if sentinel else "")
        say(
            f"{label} (cpu quota {o['cpu_quota_pct']:.0f}% of a CPU; {others} other frozen groups on the host): "
            f"p50 {fmt(o['p50_ms'], ' ms', 3)}  "
            f"p95 {fmt(o['p95_ms'], ' ms', 3)}  p99 {fmt(o['p99_ms'], ' ms', 3)}  max {fmt(o['max_ms'], ' ms', 1)}  "
            f"throughput {fmt(o['throughput_per_s'], ' calls/s', 0)}"
        )
        say(
            f"      CPU per call: host (this process) {o['host_cpu_us_per_call']:.0f} us, jail processes "
            f"{o['jail_cpu_us_per_call']:.0f} us (tick resolution {1e6 / CLK_TCK / o['n']:.0f} us); "
            f"cgroup throttled {o['throttled_periods']} periods / {o['throttled_ms']:.0f} ms; "
            f"environments used {o['environments_used']}"
        )
        for p in o["problems"][:5]:
            say(f"      PROBLEM: {p}")
    b = R.get("baselines", {})
    if b:
        say(
            f"baseline: socketpair round trip p50 {fmt(b['rtt_p50_us'], ' us', 1)}, p95 {fmt(b['rtt_p95_us'], ' us', 1)}"
            + (
                f"; raw freezer freeze+thaw p50 {b['freezer_freeze_p50_us'] + b['freezer_thaw_p50_us']:.0f} us "
                f"({b['freezer_sentinel_freeze_p50_us'] + b['freezer_sentinel_thaw_p50_us']:.0f} us with a "
                "group held frozen)"
                if "freezer_freeze_p50_us" in b
                else ""
            )
        )
    if args.breakdown:
        warm_breakdown(max(100, args.warm // 4), args.warmup, R)


def warm_breakdown(n, warmup, R):
    """Where a warm call's time goes (1769 MB): engine methods timed by temporary wrappers."""
    from sandbox import environment as sb_env

    targets = [
        (sb_env.Environment, name) for name in ("_thaw", "_freeze", "_send", "_recv", "_finish", "emit")
    ]
    targets += [
        (sb_cgroup.EnvironmentCgroup, name)
        for name in ("reset_peak", "peak_bytes", "oom_kills", "request_freeze")
    ]
    acc: dict[str, list] = {}  # name -> [wall, cpu, calls, wall not inside another timed step]
    saved = []
    depth = [0]

    def wrap(cls, name):
        orig = cls.__dict__.get(name)
        if orig is None:  # the engine changed: time what is still there
            return
        saved.append((cls, name, orig))

        def timed(*a, **k):
            outer = depth[0] == 0
            depth[0] += 1
            t, c = time.perf_counter(), time.thread_time()
            try:
                return orig(*a, **k)
            finally:
                depth[0] -= 1
                d = acc.setdefault(name, [0.0, 0.0, 0, 0.0])
                dt = time.perf_counter() - t
                d[0] += dt
                d[1] += time.thread_time() - c
                d[2] += 1
                if outer:
                    d[3] += dt

        setattr(cls, name, timed)

    spec = FunctionSpec(source=TRIVIAL, memory_mb=1769)
    try:
        for cls, name in targets:
            wrap(cls, name)
        with make_pool(6) as pool:
            for _ in range(warmup + 1):
                pool.invoke(spec, {})
            acc.clear()
            t, c = time.perf_counter(), time.thread_time()
            for _ in range(n):
                pool.invoke(spec, {})
            wall, cpu = time.perf_counter() - t, time.thread_time() - c
    finally:
        for cls, name, orig in saved:
            setattr(cls, name, orig)
    parts = {
        k: {
            "wall_us": v[0] / n * 1e6,
            "cpu_us": v[1] / n * 1e6,
            "per_call": v[2] / n,
            "top_us": v[3] / n * 1e6,
        }
        for k, v in acc.items()
    }
    R.setdefault("warm_breakdown", {}).update(
        {"n": n, "wall_us": wall / n * 1e6, "cpu_us": cpu / n * 1e6, "parts": parts}
    )
    say(
        f"breakdown, 1769 MB, n={n} (timing wrappers add a few us): wall {wall / n * 1e6:.0f} us/call, "
        f"invoking thread CPU {cpu / n * 1e6:.0f} us/call"
    )
    rest_w = wall / n * 1e6 - sum(p["top_us"] for p in parts.values())
    for name, p in sorted(parts.items(), key=lambda kv: -kv[1]["wall_us"]):
        note = {
            "_recv": "rest of the wait for the jail's answer (agent -> runtime -> agent)",
            "_thaw": "freezer THAWED",
            "_freeze": "freezer FROZEN (+ wait, if the engine waits)",
            "_finish": "REPORT, result, events",
            "emit": "event dicts (built even with on_event=None)",
            "oom_kills": "memory.oom_control read",
            "peak_bytes": "memory.max_usage_in_bytes read",
            "reset_peak": "memory.max_usage_in_bytes write",
            "request_freeze": "freezer FROZEN write, not waited for",
            "_send": "invoke frame (on 2 cores the jail often runs before send returns)",
        }.get(name, "")
        inside = " [inside the steps above]" if p["top_us"] < 0.5 * p["wall_us"] else ""
        say(
            f"   {name:<14} x{p['per_call']:<4.2g} wall {p['wall_us']:6.0f} us  cpu {p['cpu_us']:6.0f} us   "
            f"{note}{inside}"
        )
    say(
        f"   {'other':<14}       wall {rest_w:6.0f} us   (pool lock, json, uuid, bookkeeping: not in any step above)"
    )


# -- figure 4: idle memory ------------------------------------------------------------


def role_of(pid, stats, bwrap_pid):
    if pid == bwrap_pid:
        return "bwrap"
    ppid = stats.get(pid, (None,))[0]
    if ppid == bwrap_pid:
        return "bwrap-init"
    if ppid is not None and stats.get(ppid, (None,))[0] == bwrap_pid:
        return "agent"
    return "runtime"


def bench_idle(args, R):
    header(f"4. Idle frozen environment memory (provisioned, n={args.idle})")
    spec = FunctionSpec(source=TRIVIAL)
    per_env_pss, per_env_uss, per_env_rss, usage, nprocs = [], [], [], [], []
    roles: dict[str, list[float]] = {}
    with make_pool(args.idle + 6) as pool:
        t0 = time.perf_counter()
        ids = pool.provision(spec, args.idle)
        prov_s = time.perf_counter() - t0
        time.sleep(0.2)
        for env_id in ids:
            env = pool._all[env_id]
            pids = env.cgroup.pids() if env.cgroup is not None else [env.proc.pid]
            stats = {p: proc_stat(p) for p in pids}
            stats = {p: s for p, s in stats.items() if s}
            pss = uss = rss = 0
            for p in pids:
                sm = smaps_rollup(p)
                pss += sm.get("Pss", 0)
                rss += sm.get("Rss", 0)
                uss += sm.get("Private_Clean", 0) + sm.get("Private_Dirty", 0)
                roles.setdefault(role_of(p, stats, env.proc.pid), []).append(sm.get("Pss", 0) / 1024)
            per_env_pss.append(pss / 1024)
            per_env_uss.append(uss / 1024)
            per_env_rss.append(rss / 1024)
            nprocs.append(len(pids))
            u = env.cgroup.usage_bytes() if env.cgroup is not None else None
            if u is not None:
                usage.append(u / MiB)
        frozen = sum(1 for e in pool._all.values() if getattr(e, "frozen", False))
        envs = [pool._all[i] for i in ids]
        esc_envs, esc_procs, esc_example = escape_report(envs)
        tree_counts = [len(tree_pids(e.proc.pid)) for e in envs if e.proc is not None]
        esc_pss = 0.0
        if esc_procs:
            for e in envs:
                esc_pss += sum(smaps_rollup(p).get("Pss", 0) for p in escaped(e)) / 1024
        stem_pss = []
        if has_stem_cells():
            wait_stem_cells(pool)
            for cell in stem_cells_of(pool):
                pids = cell.cgroup.pids() if cell.cgroup is not None else [cell.proc.pid]
                stem_pss.append(sum(smaps_rollup(p).get("Pss", 0) for p in pids) / 1024)
        # Baseline: a bare idle interpreter with the agent's flags, measured alongside.
        real = os.path.realpath(sys.executable)
        bare = subprocess.Popen(
            [real, "-I", "-S", "-c", "import sys; sys.stdin.read()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.3)
        bsm = smaps_rollup(bare.pid)
        bare.stdin.close()
        bare.wait(timeout=10)
    out = {
        "escaped_envs": esc_envs,
        "escaped_procs": esc_procs,
        "escaped_pss_mib_per_env": esc_pss / max(1, esc_envs),
        "tree_processes_per_env": pct(tree_counts, 50),
        "stem_cell_pss_mib": pct(stem_pss, 50) if stem_pss else None,
        "stem_cells": len(stem_pss),
        "n": args.idle,
        "provision_s": prov_s,
        "frozen": frozen,
        "pss_p50_mib": pct(per_env_pss, 50),
        "pss_max_mib": max(per_env_pss, default=None),
        "uss_p50_mib": pct(per_env_uss, 50),
        "rss_p50_mib": pct(per_env_rss, 50),
        "cgroup_usage_p50_mib": pct(usage, 50),
        "processes_per_env": pct(nprocs, 50),
        "roles_pss_p50_mib": {k: pct(v, 50) for k, v in roles.items()},
        "bare_python_pss_mib": bsm.get("Pss", 0) / 1024,
        "bare_python_uss_mib": (bsm.get("Private_Clean", 0) + bsm.get("Private_Dirty", 0)) / 1024,
    }
    R["idle"] = out
    say(
        f"provisioned {args.idle} in {prov_s:.2f} s; frozen: {frozen}/{args.idle}; "
        f"processes per environment: {out['processes_per_env']:.0f}"
    )
    say(
        f"PSS per environment: p50 {fmt(out['pss_p50_mib'], ' MiB')}  max {fmt(out['pss_max_mib'], ' MiB')}   "
        f"(USS p50 {fmt(out['uss_p50_mib'], ' MiB')}, RSS p50 {fmt(out['rss_p50_mib'], ' MiB')})"
    )
    say(
        "PSS p50 by process: "
        + ", ".join(f"{k} {v:.2f} MiB" for k, v in sorted(out["roles_pss_p50_mib"].items()))
    )
    say(f"memory cgroup usage_in_bytes per environment: p50 {fmt(out['cgroup_usage_p50_mib'], ' MiB')}")
    say(
        f"jail processes outside their environment's cgroups: {esc_procs} in {esc_envs}/{len(envs)} environments"
        + (
            f" (their PSS, not counted above: {out['escaped_pss_mib_per_env']:.2f} MiB per affected environment)"
            if esc_procs
            else ""
        )
    )
    if esc_procs:
        say(
            f"  PROBLEM: processes escaped the environment's cgroups (not frozen, limited or counted): {esc_example}"
        )
    if stem_pss:
        say(
            f"stem cells (built, no function yet, not frozen): {len(stem_pss)}, PSS p50 "
            f"{fmt(out['stem_cell_pss_mib'], ' MiB')} each"
        )
    say(
        f"baseline: bare idle `python -I -S` PSS {fmt(out['bare_python_pss_mib'], ' MiB')} "
        f"(USS {fmt(out['bare_python_uss_mib'], ' MiB')})"
    )


# -- figure 5: many environments ------------------------------------------------------------


def bench_many(args, R):
    count = args.many
    header(f"5. {count} environments alive at once (provision in batches of {args.batch})")
    spec = FunctionSpec(source=HOLDING, timeout_s=30)
    out = {"count": count, "problems": []}
    problems = out["problems"]
    fds0 = open_fds()
    avail0 = mem_available_bytes()
    pool = make_pool(count + 8)
    tag = pool._isolation.pool_tag
    all_pids: list[int] = []
    try:
        t0 = time.perf_counter()
        batch_s = []
        done = 0
        while done < count:
            k = min(args.batch, count - done)
            tb = time.perf_counter()
            try:
                done += len(pool.provision(spec, k))
            except Exception as exc:  # noqa: BLE001 - reported
                problems.append(f"provision batch at {done}: {type(exc).__name__}: {exc}")
                break
            batch_s.append(time.perf_counter() - tb)
        out["provision_s"] = time.perf_counter() - t0
        time.sleep(0.3)
        avail1 = mem_available_bytes()
        envs = list(pool._all.values())
        out["alive_after_provision"] = len(pool.environments())
        out["running_after_provision"] = sum(1 for e in envs if e.proc is not None and e.proc.poll() is None)
        out["host_mem_used_mib"] = (avail0 - avail1) / MiB
        out["host_mem_per_env_mib"] = (avail0 - avail1) / MiB / max(1, len(envs))
        say(
            f"provisioned {done}/{count} in {out['provision_s']:.2f} s "
            f"({out['provision_s'] / max(1, done) * 1000:.1f} ms/environment; batch of {args.batch}: "
            f"p50 {pct(batch_s, 50):.2f} s, max {max(batch_s, default=0):.2f} s)"
        )
        say(
            f"alive: {out['alive_after_provision']} listed, {out['running_after_provision']} jails running; "
            f"host MemAvailable dropped {out['host_mem_used_mib']:.0f} MiB "
            f"({out['host_mem_per_env_mib']:.1f} MiB/environment"
            + (", moved by other processes too" if others_active() else "")
            + ")"
        )
        pss_kb = usage_b = 0
        for e in envs:
            pids = e.cgroup.pids() if e.cgroup is not None else [e.proc.pid]
            pss_kb += sum(smaps_rollup(p).get("Pss", 0) for p in pids)
            u = e.cgroup.usage_bytes() if e.cgroup is not None else None
            usage_b += u or 0
        out["pss_total_mib"] = pss_kb / 1024
        out["pss_per_env_mib"] = pss_kb / 1024 / max(1, len(envs))
        out["cgroup_usage_total_mib"] = usage_b / MiB
        say(
            f"sum of PSS over every jail process: {out['pss_total_mib']:.0f} MiB "
            f"({out['pss_per_env_mib']:.2f} MiB/environment); sum of memory cgroup usage: "
            f"{out['cgroup_usage_total_mib']:.0f} MiB"
        )

        # Pass A: one invoke per environment, fired from a small thread pool.
        def call(event):
            try:
                r = pool.invoke(spec, event)
                return r.status, r.cold, r.environment_id, None
            except Exception as exc:  # noqa: BLE001 - counted
                return "raised", False, None, f"{type(exc).__name__}: {exc}"

        def run_pass(nthreads, event, n):
            t = time.perf_counter()
            if nthreads >= n:  # every call at once: a barrier lines them up
                barrier = threading.Barrier(n)

                def go(_):
                    barrier.wait(timeout=60)
                    return call(event)
            else:

                def go(_):
                    return call(event)

            with ThreadPoolExecutor(nthreads) as ex:
                res = list(ex.map(go, range(n)))
            el = time.perf_counter() - t
            ok = sum(1 for r in res if r[0] == "success")
            cold = sum(1 for r in res if r[1])
            used = len({r[2] for r in res if r[2]})
            errs = [r[3] or r[0] for r in res if r[0] != "success"]
            return ok, cold, used, el, errs

        ok, cold, used, el, errs = run_pass(args.threads, {}, count)
        out["pass_a"] = {"ok": ok, "cold": cold, "environments_used": used, "s": el}
        say(
            f"pass A: {count} invokes from ThreadPoolExecutor({args.threads}): {ok}/{count} succeeded, "
            f"{cold} cold, {used} distinct environments used, {el:.2f} s ({count / el:.0f} calls/s)"
        )
        if errs:
            problems.append(f"pass A: {len(errs)} failed, first: {errs[0]}")

        # Pass B: every call at once, each holding its environment, so all are used.
        ok, cold, used, el, errs = run_pass(count, {"hold": args.hold}, count)
        out["pass_b"] = {"ok": ok, "cold": cold, "environments_used": used, "s": el}
        say(
            f"pass B: {count} concurrent invokes (each holds its environment {args.hold} s): {ok}/{count} "
            f"succeeded, {cold} cold, {used} distinct environments used, {el:.2f} s"
        )
        if errs:
            problems.append(f"pass B: {len(errs)} failed, first: {errs[0]}")

        envs = list(pool._all.values())
        out["alive_after_invokes"] = len(pool.environments())
        out["running_after_invokes"] = sum(1 for e in envs if e.proc is not None and e.proc.poll() is None)
        say(
            f"alive after the invokes: {out['alive_after_invokes']} listed, "
            f"{out['running_after_invokes']} jails running"
        )
        esc = escape_report(envs + stem_cells_of(pool))
        out["escaped_envs"], out["escaped_procs"] = esc[0], esc[1]
        say(
            f"jail processes outside their environment's cgroups: {esc[1]} in {esc[0]} environments"
            + (f"; e.g. {esc[2]}" if esc[1] else "")
        )
        if esc[1]:
            problems.append(f"{esc[1]} jail processes outside their environment's cgroups")
        cells = stem_cells_of(pool)
        all_pids = sorted(
            {p for e in envs + cells for p in (e.cgroup.pids() if e.cgroup is not None else [])}
            | {p for e in envs + cells if e.proc is not None for p in tree_pids(e.proc.pid)}
        )
        out["stem_cells"] = len(cells)
    finally:
        t = time.perf_counter()
        pool.close()
        out["close_s"] = time.perf_counter() - t
    time.sleep(0.3)
    leftover_pids = [p for p in all_pids if pid_alive(p)]
    leftover_cg = pool_cgroup_dirs(tag)
    task_root = getattr(pool, "_task_root", None)
    out["task_root_left"] = bool(task_root is not None and Path(task_root).exists())
    if out["task_root_left"]:
        problems.append(f"the pool's task folder {task_root} is still there after close")
    avail2 = mem_available_bytes()
    out["leftover_pids"] = len(leftover_pids)
    out["leftover_cgroups"] = len(leftover_cg)
    out["host_mem_change_after_close_mib"] = (avail2 - avail0) / MiB
    out["fd_delta"] = open_fds() - fds0
    say(
        f"pool.close(): {out['close_s']:.2f} s; afterwards: {len(leftover_pids)} of {len(all_pids)} jail processes "
        f"(stem cells' included) "
        f"still alive, {len(leftover_cg)} environment cgroups left, MemAvailable "
        f"{out['host_mem_change_after_close_mib']:+.0f} MiB vs before provisioning (other processes move it too), "
        f"open fds {out['fd_delta']:+d}"
    )
    if leftover_pids:
        problems.append(f"{len(leftover_pids)} jail processes alive after close: {leftover_pids[:8]}")
    if leftover_cg:
        problems.append(f"{len(leftover_cg)} cgroups left after close: {leftover_cg[:3]}")
    if out["alive_after_provision"] != count or out.get("alive_after_invokes") != count:
        problems.append(
            f"alive {out['alive_after_provision']} after provision, "
            f"{out.get('alive_after_invokes')} after invokes; expected {count}"
        )
    for p in problems:
        say(f"  PROBLEM: {p}")
    R["many"] = out


# -- summary -------------------------------------------------------------------------------


def summary(R, errors):
    b = R.get("baselines", {})
    rows = []

    def row(name, measured, target=None, ok=None, baseline=""):
        met = "" if ok is None else ("yes" if ok else "NO")
        rows.append((name, measured, target or "", met, baseline))

    py = f"python -c pass {fmt(b.get('python_start_p50_ms'), ' ms', 1)}" if b else ""
    bw = f"bwrap true {fmt(b.get('bwrap_p50_ms'), ' ms', 1)}" if b else ""
    if "cold" in R:
        for key, c in R["cold"].items():
            tag = {"stem": "stem cell", "scratch": "no stem cell"}[key]
            row(
                f"cold start p50 ({tag})",
                fmt(c["p50_ms"], " ms", 1),
                "<= 40 ms",
                c["p50_ms"] <= 40,
                f"{py}; {bw}" if b else "",
            )
            row(
                f"cold start p95 ({tag})",
                fmt(c["p95_ms"], " ms", 1),
                "",
                None,
                f"python p95 {fmt(b.get('python_start_p95_ms'), ' ms', 1)}" if b else "",
            )
            row(f"cold mean ({tag})", fmt(c["mean_ms"], " ms", 1))
            row(f"init_duration p50 ({tag})", fmt(c["init_p50_ms"], " ms", 1))
    elif "cold" in errors:
        row("cold start", "ERROR")
    for key in ("128", "1769", "1769+sentinel"):
        w = R.get("warm", {}).get(key)
        if not w:
            continue
        mem = {"128": "128 MB", "1769": "1769 MB", "1769+sentinel": "1769 MB+sentinel"}[key]
        rt50 = f"socketpair RTT p50 {fmt(b.get('rtt_p50_us'), ' us', 0)}" if b else ""
        fz = "freezer_sentinel_" if "sentinel" in key else "freezer_"
        if b.get(fz + "freeze_p50_us") is not None:
            rt50 += f"; freezer cycle {b[fz + 'freeze_p50_us'] + b[fz + 'thaw_p50_us']:.0f} us"
        rt95 = f"socketpair RTT p95 {fmt(b.get('rtt_p95_us'), ' us', 0)}" if b else ""
        row(f"warm p50 ({mem})", fmt(w["p50_ms"], " ms", 3), "<= 1 ms", w["p50_ms"] <= 1, rt50)
        row(f"warm p95 ({mem})", fmt(w["p95_ms"], " ms", 3), "<= 3 ms", w["p95_ms"] <= 3, rt95)
        row(f"warm p99 ({mem})", fmt(w["p99_ms"], " ms", 3))
        row(
            f"warm throughput ({mem})",
            fmt(w["throughput_per_s"], " /s", 0),
            "",
            None,
            f"1/RTT {1e6 / b['rtt_p50_us']:.0f} /s" if b else "",
        )
    if "warm" in errors:
        row("warm invoke", "ERROR")
    if "idle" in R:
        i = R["idle"]
        base = f"bare python -I -S PSS {fmt(i['bare_python_pss_mib'], ' MiB')}"
        row("idle PSS/env p50", fmt(i["pss_p50_mib"], " MiB"), "<= 8 MiB", i["pss_p50_mib"] <= 8, base)
        row("idle PSS/env max", fmt(i["pss_max_mib"], " MiB"), "<= 8 MiB", i["pss_max_mib"] <= 8)
        row("idle cgroup usage p50", fmt(i["cgroup_usage_p50_mib"], " MiB"))
        row(
            "idle: procs outside cgroups",
            f"{i['escaped_procs']} in {i['escaped_envs']}/{i['n']} envs",
            "0",
            i["escaped_procs"] == 0,
        )
    elif "idle" in errors:
        row("idle memory", "ERROR")
    if "many" in R:
        m = R["many"]
        n = m["count"]
        row(
            f"{n} envs alive",
            f"{m.get('alive_after_invokes', m.get('alive_after_provision'))}/{n}",
            f"{n}/{n}",
            m.get("alive_after_invokes") == n and m.get("alive_after_provision") == n,
        )
        if "provision_s" in m:
            row(
                f"provision {n} envs",
                f"{m['provision_s']:.2f} s",
                "",
                None,
                f"{m['provision_s'] / n * 1000:.1f} ms/env",
            )
        for key, label in (("pass_a", "8-thread"), ("pass_b", "all-at-once")):
            p = m.get(key)
            if p:
                row(
                    f"invokes ok ({label})",
                    f"{p['ok']}/{n}",
                    f"{n}/{n}",
                    p["ok"] == n,
                    f"{p['environments_used']} envs used, {p['cold']} cold",
                )
        if "pss_per_env_mib" in m:
            row(
                "PSS / env (all alive)",
                fmt(m["pss_per_env_mib"], " MiB", 2),
                "",
                None,
                f"total {m['pss_total_mib']:.0f} MiB",
            )
        if "host_mem_per_env_mib" in m:
            row(
                "host memory / env",
                fmt(m["host_mem_per_env_mib"], " MiB", 1),
                "",
                None,
                f"total {m['host_mem_used_mib']:.0f} MiB",
            )
        if "escaped_procs" in m:
            row(
                f"{n} envs: procs outside cgroups",
                f"{m['escaped_procs']} in {m['escaped_envs']} envs",
                "0",
                m["escaped_procs"] == 0,
            )
        row(
            "close time",
            f"{m['close_s']:.2f} s",
            "",
            None,
            f"{m['leftover_pids']} pids, {m['leftover_cgroups']} cgroups left",
        )
    elif "many" in errors:
        row("many environments", "ERROR")

    header("Summary")
    cols = ("figure", "measured", "target", "met", "baseline (same run)")
    widths = [max(len(cols[i]), *(len(r[i]) for r in rows)) if rows else len(cols[i]) for i in range(5)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    say(line)
    say("-" * len(line))
    for r in rows:
        say("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    if errors:
        say()
        for k, v in errors.items():
            say(f"figure {k} failed: {v}")


# -- main ------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts (about 30-40 s in all)")
    ap.add_argument("--only", default="1,2,3,4,5", help="comma-separated figures to run (default: all)")
    ap.add_argument("--python-runs", type=int, help="python -c pass runs (20; quick 10)")
    ap.add_argument("--pingpong", type=int, help="socketpair round trips (2000; quick 1000)")
    ap.add_argument("--bwrap-runs", type=int, help="bare bwrap runs (20; quick 10)")
    ap.add_argument("--cold", type=int, help="cold starts (30; quick 10)")
    ap.add_argument("--warm", type=int, help="warm invokes per memory size (2000; quick 300)")
    ap.add_argument("--warmup", type=int, default=50, help="untimed warm invokes first (50)")
    ap.add_argument("--idle", type=int, help="provisioned environments measured for memory (20; quick 10)")
    ap.add_argument("--many", type=int, help="environments alive at once (200; quick 50)")
    ap.add_argument("--batch", type=int, default=25, help="provision batch size (25)")
    ap.add_argument("--threads", type=int, default=8, help="threads for the figure-5 invoke pass (8)")
    ap.add_argument(
        "--hold",
        type=float,
        default=1.0,
        help="seconds each call holds its environment in the all-at-once pass (1.0)",
    )
    ap.add_argument("--freezer-cycles", type=int, default=300, help="raw freezer baseline cycles (300)")
    ap.add_argument(
        "--no-breakdown",
        dest="breakdown",
        action="store_false",
        help="skip the per-step breakdown of a warm call",
    )
    ap.add_argument(
        "--engine",
        metavar="DIR",
        help="benchmark the sandbox package in DIR instead of this checkout (e.g. a git worktree of another commit)",
    )
    ap.add_argument(
        "--json", metavar="PATH", help="also write the results as JSON (bench/results/ is git-ignored)"
    )
    args = ap.parse_args(argv)
    defaults = {
        "python_runs": (20, 10),
        "pingpong": (2000, 1000),
        "bwrap_runs": (20, 10),
        "cold": (30, 10),
        "warm": (2000, 300),
        "idle": (20, 10),
        "many": (200, 50),
    }
    for k, (full, quick) in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, quick if args.quick else full)
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    t_all = time.perf_counter()
    R: dict = {}
    errors: dict = {}
    say(
        f"lambdalab engine benchmark{' (quick)' if args.quick else ''}: {platform.node()}, "
        f"{os.cpu_count()} CPUs, kernel {platform.release()}, python {platform.python_version()}, "
        f"uid {os.geteuid()}"
    )
    import sandbox

    say(f"engine: {Path(sandbox.__file__).parent} ({engine_version(Path(sandbox.__file__).parent)})")
    others = other_pools(sb_cgroup.pool_tag())
    say(
        f"loadavg {Path('/proc/loadavg').read_text().split()[:3]}; "
        f"other lambdalab pools on this host right now: {len(others)}"
        + (" (their work competes for the same CPUs)" if others else "")
    )
    steps = [
        ("1", "baselines", bench_baselines),
        ("2", "cold", bench_cold),
        ("3", "warm", bench_warm),
        ("4", "idle", bench_idle),
        ("5", "many", bench_many),
    ]
    for num, key, fn in steps:
        if num not in only:
            continue
        t = time.perf_counter()
        try:
            fn(args, R)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, never fails
            errors[key] = f"{type(exc).__name__}: {exc}"
            say(f"figure {num} ERROR:")
            traceback.print_exc(file=sys.stdout)
        say(f"({time.perf_counter() - t:.1f} s)")
    summary(R, errors)
    leftover_children = [p for p in child_pids() if pid_alive(p)]
    say()
    say(
        f"total {time.perf_counter() - t_all:.1f} s; max RSS of this process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
        f"child processes still alive: {len(leftover_children)}; other lambdalab pools now: "
        f"{len(other_pools(sb_cgroup.pool_tag()))}"
    )
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps({"args": vars(args), "results": R, "errors": errors}, indent=2, default=str)
        )
        say(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
