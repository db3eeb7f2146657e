"""Engine benchmarks: cold start, warm invoke, idle memory, many environments.

Prints figures, each beside a baseline measured in the same run on the same
machine, so numbers can be compared across noisy hosts. It is not a test:
it always exits 0 (a figure that fails to run is reported as ERROR).

    .venv/bin/python bench/engine.py            # full run
    .venv/bin/python bench/engine.py --quick    # smaller run
    .venv/bin/python bench/engine.py --only 2,3 --warm 5000

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the sandbox package of this checkout

from sandbox import EnvironmentPool, FunctionSpec  # noqa: E402
from sandbox import cgroup as sb_cgroup  # noqa: E402

TRIVIAL = "def lambda_handler(event, context):\n    return 1\n"
# Figure 5: the same trivial handler, but a call can hold its environment for a while
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
HIERARCHIES = sb_cgroup.CONTROLLERS + (sb_cgroup.UNIFIED,)
P3 = ("p50", "p95", "p99")
ROWS: list[tuple[str, ...]] = []  # the summary table, filled in by the figures


# -- small helpers -------------------------------------------------------------


def pct(values, p):
    """Percentile with linear interpolation (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def stats(values):
    """p50, p95, p99, max and mean of ``values``."""
    if not values:
        return dict.fromkeys(("p50", "p95", "p99", "max", "mean"), float("nan"))
    ps = {f"p{p}": pct(values, p) for p in (50, 95, 99)}
    return ps | {"max": max(values), "mean": statistics.fmean(values)}


def show(s, unit=" ms", nd=2, keys=("p50", "p95")):
    return "  ".join(f"{k} {s[k]:.{nd}f}{unit}" for k in keys)


def say(*args):
    print(*args, flush=True)


def header(title):
    say()
    say(f"== {title} " + "=" * max(0, 74 - len(title)))


def row(figure, measured, target="", ok=None, baseline=""):
    ROWS.append((figure, measured, target, "" if ok is None else ("yes" if ok else "NO"), baseline))


def mem_available_mib():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def smaps_rollup(pid):
    """{field: kB} from /proc/<pid>/smaps_rollup, or {} if the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    fields = (line.split() for line in lines)
    return {f[0][:-1]: int(f[1]) for f in fields if len(f) == 3 and f[2] == "kB"}


def memory_mib(pids):
    """(PSS, USS, RSS) summed over ``pids``, in MiB."""
    pss = uss = rss = 0
    for pid in pids:
        sm = smaps_rollup(pid)
        pss, rss = pss + sm.get("Pss", 0), rss + sm.get("Rss", 0)
        uss += sm.get("Private_Clean", 0) + sm.get("Private_Dirty", 0)
    return pss / 1024, uss / 1024, rss / 1024


def proc_stat(pid):
    """(state, ppid, utime+stime ticks, start time) or None."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return f[0], int(f[1]), int(f[11]) + int(f[12]), f[19]


def pid_alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def cpu_ticks(pids):
    return sum(st[2] for st in map(proc_stat, pids) if st)


def children(pid):
    kids = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids += [int(x) for x in (task / "children").read_text().split()]
    except OSError:
        pass
    return kids


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc (the jail's processes as the host sees them)."""
    found, todo = [], [root]
    while todo and len(found) < 4096:
        found.append(todo.pop())
        todo += children(found[-1])
    return found


def env_pids(env) -> list[int]:
    """Every live process of a jail: its process tree and its cgroups' members."""
    pids = set(tree_pids(env.proc.pid)) if env.proc is not None else set()
    if env.cgroup is not None:
        pids |= set(env.cgroup.pids()) | set(env.cgroup.function_pids() or [])
    return sorted(p for p in pids if pid_alive(p))


def misplaced(env) -> list[tuple[int, str]]:
    """Live jail processes that are not where the engine's layout puts them, and why.

    Every process must be in all the environment's groups (``members``); the runtime's
    tree, i.e. all but the agent's chain (bwrap, its pid 1, the agent: ``keep_pids``),
    must also be in the ``function`` subgroups (``confined``), which hold the CPU quota
    and are what cgroup v2 freezes. The exception is the agent's idle pre-forked runtime
    while no runtime is initialised (after a reset): the engine confines it before Init.
    """
    cg, out = env.cgroup, []
    if cg is None or env.proc is None:
        return out
    for pid in tree_pids(env.proc.pid):
        st = proc_stat(pid)
        if st is None or st[0] == "Z":
            continue
        if not cg.members(pid):
            out.append((pid, "outside the environment's cgroups"))
        elif pid not in env.keep_pids and not cg.confined(pid):
            idle_prefork = not env.runtime_ready and st[1] in env.keep_pids
            if not idle_prefork:
                out.append((pid, "a runtime process outside the function subgroups"))
    return out


def misplaced_report(envs) -> tuple[int, int, str]:
    """(environments with misplaced processes, misplaced processes, one example)."""
    hit, total, example = 0, 0, ""
    for env in envs:
        out = misplaced(env)
        hit, total = hit + bool(out), total + len(out)
        if out and not example:
            pid, why = out[0]
            try:
                where = Path(f"/proc/{pid}/cgroup").read_text().replace("\n", " ").strip()
            except OSError:
                where = "?"
            example = f"pid {pid} of environment {env.id[:8]} is {why}; its cgroups: {where[:300]}"
    return hit, total, example


def cpu_throttled(env):
    """(periods, ms) the group holding the function's CPU quota was throttled, from its cpu.stat."""
    cg = env.cgroup
    for path in [] if cg is None else [*cg.function.values(), *cg.paths.values()]:
        try:
            stat = dict(line.split() for line in (path / "cpu.stat").read_text().splitlines())
        except (OSError, ValueError):
            continue
        if "nr_throttled" in stat:
            ns = int(stat.get("throttled_time", 0)) or int(stat.get("throttled_usec", 0)) * 1000
            return int(stat["nr_throttled"]), ns / 1e6
    return 0, 0.0


def other_pools():
    """Other lambdalab pools with a live owner on this host (by their cgroup directories)."""
    found = set()
    for h in HIERARCHIES:
        top = sb_cgroup.ROOT / h / sb_cgroup.TOP
        found |= {d.name for d in top.iterdir() if d.is_dir()} if top.is_dir() else set()
    alive = []
    for name in found - {sb_cgroup.pool_tag()}:
        pid, _, start = name.partition("-")
        st = proc_stat(int(pid)) if pid.isdigit() else None
        if st is not None and st[3] == start:
            alive.append(name)
    return alive


def engine_version(pkg: Path) -> str:
    """The engine's commit, and how many of its files differ from it (others may be editing them)."""
    git = ["git", "-C", str(pkg)]
    try:
        head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(git + ["status", "--porcelain", "."], capture_output=True, text=True)
    except OSError:
        return "not a git checkout"
    if not head.stdout.strip():
        return "not a git checkout"
    changed = [line for line in dirty.stdout.splitlines() if line.strip()]
    return f"commit {head.stdout.strip()}" + (f" + {len(changed)} uncommitted file(s)" if changed else "")


def wait_stem_cells(pool, timeout=10.0):
    """Wait until the pool's stem cells are all built (no background build competing for CPU)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(pool._stem_cells) >= pool._stem_target and not pool._growing:
            return True
        time.sleep(0.002)
    return False


# -- figure 1: baselines -----------------------------------------------------------


def time_cmd(label, argv, n):
    """Wall time (ms) of ``n`` runs of ``argv`` after 2 untimed ones; printed, and returned as stats."""
    samples, errors = [], []
    for i in range(n + 2):
        t0 = time.perf_counter()
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True)
        dt = (time.perf_counter() - t0) * 1000
        if done.returncode:
            errors.append(done.stderr.decode(errors="replace").strip()[:200] or f"exit {done.returncode}")
        elif i >= 2:
            samples.append(dt)
    s = stats(samples)
    say(f"{label}, n={len(samples)}: {show(s)}" + (f"  errors={len(errors)}: {errors[0]}" if errors else ""))
    return s


def pingpong(n, space_s=0.0):
    """1-byte round trips (µs) over a socketpair with a forked child (before any pool thread exists),
    back to back or each after an (untimed) pause of ``space_s``, when both sides have gone idle."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # child: echo bytes until EOF
        try:
            a.close()
            while d := b.recv(1):
                b.sendall(d)
        finally:
            os._exit(0)
    b.close()
    rtt, warmup = [], min(200, n)
    for i in range(warmup + n):
        if space_s and i >= warmup:
            time.sleep(space_s)
        t0 = time.perf_counter_ns()
        a.send(b"x")
        a.recv(1)
        if i >= warmup:
            rtt.append((time.perf_counter_ns() - t0) / 1000.0)
    a.close()
    os.waitpid(pid, 0)
    return rtt


# name, hierarchy, control file, freeze, thaw, state file, frozen when the state file contains
FREEZERS = (
    ("cgroup v2 freeze", sb_cgroup.UNIFIED, "cgroup.freeze", b"1", b"0", "cgroup.events", b"frozen 1"),
    ("cgroup v1 freezer", "freezer", "freezer.state", b"FROZEN", b"THAWED", "freezer.state", b"FROZEN"),
)


def freezer_cycle(n):
    """Freeze (until the kernel reports it done) and thaw (the write) of a scratch group holding one
    sleeping process, with what the engine uses: ``cgroup.freeze`` in the host's cgroup v2
    hierarchy (a cgroup2 mount has ``cgroup.controllers``), else the v1 freezer; None if neither.

    The group, ``<hierarchy>/lambdalab-bench/<pid>``, is outside lambdalab/ (no pool's
    stale-cgroup sweep touches it) and is removed before returning.
    """
    for name, hierarchy, control, freeze, thaw, state, frozen in FREEZERS:
        top = sb_cgroup.ROOT / hierarchy
        v2 = (top / "cgroup.controllers").exists()
        if v2 != (hierarchy == sb_cgroup.UNIFIED) or not os.access(top / "cgroup.procs", os.W_OK):
            continue
        group = top / "lambdalab-bench" / str(os.getpid())
        try:
            group.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        sleeper, fds = None, []
        try:
            if not (group / control).exists():
                continue
            sleeper = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL)
            (group / "cgroup.procs").write_text(str(sleeper.pid))
            fds = [os.open(group / control, os.O_WRONLY), os.open(group / state, os.O_RDONLY)]
            tf, tt = [], []
            c0 = time.process_time()
            for _ in range(n):
                t0 = time.perf_counter()
                os.pwrite(fds[0], freeze, 0)
                while frozen not in os.pread(fds[1], 256, 0):
                    pass
                t1 = time.perf_counter()
                os.pwrite(fds[0], thaw, 0)
                tf.append((t1 - t0) * 1e6)
                tt.append((time.perf_counter() - t1) * 1e6)
            cpu = (time.process_time() - c0) / n * 1e6
            return {"mechanism": name, "freeze_us": pct(tf, 50), "thaw_us": pct(tt, 50), "cpu_us": cpu}
        finally:
            if fds:
                os.pwrite(fds[0], thaw, 0)
            for fd in fds:
                os.close(fd)
            if sleeper is not None:
                sleeper.kill()
                sleeper.wait()
            for _ in range(100):
                try:
                    group.rmdir()
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)  # the killed sleeper is still leaving the group
            with contextlib.suppress(OSError):  # stays while another bench run uses it
                group.parent.rmdir()
    return None


def bench_baselines(args, R):
    header("1. Baselines (this machine, this run)")
    real = os.path.realpath(sys.executable)
    out = {"python": real}  # R["baselines"] only once complete: the other figures read it
    out["python_ms"] = time_cmd(f"python -c pass ({real})", [real, "-c", "pass"], args.python_runs)
    argv = [real, "-I", "-S", "-c", "pass"]
    out["python_IS_ms"] = time_cmd("python -I -S -c pass (the agent's flags)", argv, args.python_runs)
    rtt = out["rtt_us"] = stats(pingpong(args.pingpong))
    say(f"socketpair 1-byte round trip to a forked child, n={args.pingpong}: {show(rtt, ' us', 1, P3)}")
    n = max(1, args.pingpong // 4)
    rtt = out["rtt_spaced_us"] = stats(pingpong(n, args.space_ms / 1000))
    say(f"  the same, each {args.space_ms:g} ms after the last, n={n}: {show(rtt, ' us', 1, P3)}")

    from sandbox import jail

    usr = ["--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"]
    argv = [jail.bwrap_path() or "bwrap", "--unshare-all", *usr, "/usr/bin/true"]
    out["bwrap_ms"] = time_cmd("bwrap --unshare-all ... /usr/bin/true", argv, args.bwrap_runs)
    fr = out["freezer"] = freezer_cycle(args.freezer_cycles)
    if fr is None:
        say("freezer: neither a writable cgroup v2 hierarchy nor the v1 freezer here, skipped")
    else:
        say(
            f"{fr['mechanism']} of a scratch group, 1 sleeping process, n={args.freezer_cycles}: freeze p50 "
            f"{fr['freeze_us']:.0f} us (until frozen), thaw p50 {fr['thaw_us']:.0f} us (the write), "
            f"CPU per cycle {fr['cpu_us']:.0f} us"
        )
    R["baselines"] = out


# -- figure 2: cold start ------------------------------------------------------------


def cold_run(n, stem):
    """n cold starts; stem=True waits for ready stem cells first, False disables them."""
    spec = FunctionSpec(source=TRIVIAL)
    walls, inits, bad = {}, {}, []  # by request id, so that each wall pairs with its own Init
    with EnvironmentPool(max_environments=8, **({} if stem else {"stem_cells": 0})) as pool:
        for _ in range(2):  # untimed: materialise the code folder, warm the page cache
            pool.shutdown_environment(pool.invoke(spec, {}).environment_id)
        for _ in range(n):
            if stem and not wait_stem_cells(pool):
                bad.append("the stem cells were still building after 10 s")
            t0 = time.perf_counter()
            r = pool.invoke(spec, {})
            walls[r.request_id] = (time.perf_counter() - t0) * 1000
            if not r.cold or r.status != "success":
                bad.append(f"cold={r.cold} status={r.status} payload={r.payload[:120]!r}")
            if r.init_duration_ms is not None:
                inits[r.request_id] = r.init_duration_ms
            if not pool.shutdown_environment(r.environment_id):  # not timed
                bad.append(f"shutdown_environment({r.environment_id}) returned False")
        left = len(pool.environments())
    after_init = [walls[rid] - inits[rid] for rid in paired(walls, inits)]
    return {
        "wall_ms": stats(list(walls.values())),
        "init_ms": stats(list(inits.values())),
        "after_init_p50_ms": pct(after_init, 50),
        "left": left,
        "problems": bad,
    }


def paired(walls: dict[str, float], inits: dict[str, float]) -> list[str]:
    """The request ids that have both a wall time and an Init Duration; every cold start must."""
    if walls.keys() != inits.keys():
        unmatched = sorted(walls.keys() ^ inits.keys())
        raise RuntimeError(
            f"cold starts and Init Durations do not pair up: {len(walls)} wall times, {len(inits)} "
            f"Init Durations; unmatched request ids: {', '.join(unmatched[:5])}"
        )
    return list(walls)


def bench_cold(args, R):
    header(f"2. Cold start, trivial handler, 128 MB (n={args.cold})")
    b = R.get("baselines")
    R["cold"] = {}
    for key, stem, label in (
        ("stem cell", True, "from a ready stem cell (pre-built jail, the default)"),
        ("no stem cell", False, "from scratch (stem_cells=0: build the jail too)"),
    ):
        o = R["cold"][key] = cold_run(args.cold, stem)
        w = o["wall_ms"]
        say(f"{label}:")
        say(f"   pool.invoke wall (-> first response): {show(w, keys=('p50', 'p95', 'mean', 'max'))}")
        say(
            f"   reported init_duration_ms p50 {o['init_ms']['p50']:.2f} ms; wall - init p50 "
            f"{o['after_init_p50_ms']:.2f} ms; environments left {o['left']}"
        )
        for p in o["problems"][:5]:
            say(f"   PROBLEM: {p}")
        base = (
            f"python -c pass {b['python_ms']['p50']:.1f} ms; bwrap true {b['bwrap_ms']['p50']:.1f} ms"
            if b
            else ""
        )
        row(f"cold start p50 ({key})", f"{w['p50']:.1f} ms", "<= 40 ms", w["p50"] <= 40, base)
        base = f"python p95 {b['python_ms']['p95']:.1f} ms" if b else ""
        row(f"cold start p95 ({key})", f"{w['p95']:.1f} ms", baseline=base)
        row(f"init_duration p50 ({key})", f"{o['init_ms']['p50']:.1f} ms")
    if b:
        floor = b["python_ms"]["p50"] + b["bwrap_ms"]["p50"]
        say(f"baseline: python -c pass + bare bwrap = {floor:.2f} ms (p50s)")


# -- figure 3: warm invoke ------------------------------------------------------------


def warm_run(memory_mb, n, warmup, space_s=0.0):
    """n warm calls back to back, or each after an (untimed) pause of ``space_s``."""
    spec = FunctionSpec(source=TRIVIAL, memory_mb=memory_mb)
    events = collections.Counter()  # update() of one key is atomic enough across the pool's threads
    lat, bad, used = [], [], set()
    with EnvironmentPool(lambda e: events.update((e["type"],)), max_environments=6) as pool:
        env = pool._all[pool.invoke(spec, {}).environment_id]
        for _ in range(warmup):
            pool.invoke(spec, {})
        pids = env_pids(env)
        jail0, throttled0, host0 = cpu_ticks(pids), cpu_throttled(env), time.process_time()
        before = events.copy()
        for _ in range(n):
            if space_s:
                time.sleep(space_s)
            t0 = time.perf_counter()
            r = pool.invoke(spec, {})
            lat.append((time.perf_counter() - t0) * 1000)
            used.add(r.environment_id)
            if r.cold or r.status != "success":
                bad.append(f"cold={r.cold} status={r.status} {r.error_type}")
        host_cpu = time.process_time() - host0
        counts = events.copy() - before
        jail_cpu = (cpu_ticks(pids) - jail0) / CLK_TCK
        throttled = [a - b for a, b in zip(cpu_throttled(env), throttled0, strict=True)]
        wrong = misplaced(env)
    if wrong:
        bad.append(f"{len(wrong)} jail process(es) misplaced ({wrong[0][1]}): the quota and freeze miss them")
    return {
        "memory_mb": memory_mb,
        "n": n,
        "latency_ms": stats(lat),
        "throughput_per_s": None if space_s else n / sum(lat) * 1000,
        "host_cpu_us_per_call": host_cpu / n * 1e6,
        "jail_cpu_us_per_call": jail_cpu / n * 1e6,
        "cpu_quota_pct": sb_cgroup.cpu_quota_us(memory_mb) / sb_cgroup.CPU_PERIOD_US * 100,
        "throttled_periods": throttled[0],
        "throttled_ms": throttled[1],
        "freezes": counts["freeze"],
        "thaws": counts["thaw"],
        "environments_used": len(used),
        "problems": bad,
    }


def bench_warm(args, R):
    header(f"3. Warm invoke through the pool (thaw, invoke, freeze), trivial handler (n={args.warm})")
    b = R.get("baselines", {})
    fr = b.get("freezer")
    cycle = f"; {fr['mechanism']} + thaw {fr['freeze_us'] + fr['thaw_us']:.0f} us" if fr else ""
    R["warm"] = {}
    spaced = f"128 MB, {args.space_ms:g} ms apart"
    for label, mem, space_ms in (("128 MB", 128, 0), ("1769 MB", 1769, 0), (spaced, 128, args.space_ms)):
        o = R["warm"][label] = warm_run(mem, args.warm, args.warmup, space_ms / 1000)
        lat, tput = o["latency_ms"], o["throughput_per_s"]
        tail = f"  max {lat['max']:.1f} ms" + (f"  throughput {tput:.0f} calls/s" if tput else "")
        say(f"{label} (cpu quota {o['cpu_quota_pct']:.0f}% of a CPU): {show(lat, ' ms', 3, P3)}{tail}")
        say(
            f"      freeze events {o['freezes']}, thaw events {o['thaws']} (calls that found the environment "
            f"frozen: {o['thaws']} of {o['n']}); environments used {o['environments_used']}"
        )
        say(
            f"      CPU per call: host (this process) {o['host_cpu_us_per_call']:.0f} us, jail processes "
            f"{o['jail_cpu_us_per_call']:.0f} us (tick resolution {1e6 / CLK_TCK / o['n']:.0f} us); "
            f"cpu cgroup throttled {o['throttled_periods']} periods / {o['throttled_ms']:.0f} ms"
        )
        if space_ms and o["thaws"] < o["n"]:
            say(f"      note: {o['n'] - o['thaws']} call(s) came before the freeze landed (see --space-ms)")
        for p in o["problems"][:5]:
            say(f"      PROBLEM: {p}")
        rtt = b.get("rtt_spaced_us" if space_ms else "rtt_us")
        apart = f" {args.space_ms:g} ms apart" if space_ms else ""
        rtt50 = f"socketpair RTT{apart} p50 {rtt['p50']:.0f} us{cycle}" if rtt else ""
        rtt95 = f"socketpair RTT{apart} p95 {rtt['p95']:.0f} us" if rtt else ""
        row(f"warm p50 ({label})", f"{lat['p50']:.3f} ms", "<= 1 ms", lat["p50"] <= 1, rtt50)
        row(f"warm p95 ({label})", f"{lat['p95']:.3f} ms", "<= 3 ms", lat["p95"] <= 3, rtt95)
        throttled = f"throttled {o['throttled_periods']} periods"
        row(f"warm p99 ({label})", f"{lat['p99']:.3f} ms", baseline=throttled)
        row(f"warm freeze/thaw events ({label})", f"{o['freezes']}/{o['thaws']} in {o['n']} calls")
        if tput:
            base = f"1/RTT {1e6 / b['rtt_us']['p50']:.0f} /s" if b else ""
            row(f"warm throughput ({label})", f"{tput:.0f} /s", baseline=base)
    if b:
        rtt, spaced = b["rtt_us"], b["rtt_spaced_us"]
        say(
            f"baseline: socketpair RTT p50 {rtt['p50']:.1f} us, p95 {rtt['p95']:.1f} us ({spaced['p50']:.1f} / "
            f"{spaced['p95']:.1f} us {args.space_ms:g} ms apart){cycle}"
        )


# -- figure 4: idle memory ------------------------------------------------------------


def roles(env):
    """{pid: role}: bwrap, bwrap-init, agent (the agent's chain), runtime (the rest)."""
    chain = [env.proc.pid]
    while len(chain) < 3 and len(kids := children(chain[-1])) == 1:
        chain.append(kids[0])
    named = dict(zip(chain, ("bwrap", "bwrap-init", "agent"), strict=False))
    return {pid: named.get(pid, "runtime") for pid in env_pids(env)}


def bench_idle(args, R):
    n = args.idle
    header(f"4. Idle frozen environment memory (provisioned, n={n})")
    spec = FunctionSpec(source=TRIVIAL)
    mems, usage, nprocs = [], [], []
    by_role = collections.defaultdict(list)
    with EnvironmentPool(max_environments=n + 6) as pool:
        t0 = time.perf_counter()
        envs = [pool._all[i] for i in pool.provision(spec, n)]
        prov_s = time.perf_counter() - t0
        time.sleep(0.2)
        for env in envs:
            procs = roles(env)
            for pid, role in procs.items():
                by_role[role].append(memory_mib([pid])[0])
            mems.append(memory_mib(procs))
            nprocs.append(len(procs))
            if (u := env.cgroup and env.cgroup.usage_bytes()) is not None:
                usage.append(u / MiB)
        frozen = sum(1 for e in envs if e.frozen)
        kernel_frozen = sum(1 for e in envs if e.cgroup and e.cgroup.freezer_state() == "FROZEN")
        wrong_envs, wrong, example = misplaced_report(envs)
        wait_stem_cells(pool)
        cells = list(pool._stem_cells)
        stem_pss = [memory_mib(env_pids(c))[0] for c in cells]
        cells_wrong = misplaced_report(cells)[1]
        # Baseline: a bare idle interpreter with the agent's flags, measured alongside.
        argv = [os.path.realpath(sys.executable), "-I", "-S", "-c", "import sys; sys.stdin.read()"]
        bare = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        bare_mem = memory_mib([bare.pid])
        bare.stdin.close()
        bare.wait(timeout=10)
    pss, uss, rss = ([m[i] for m in mems] for i in range(3))
    out = R["idle"] = {
        "n": n,
        "provision_s": prov_s,
        "frozen": frozen,
        "kernel_frozen": kernel_frozen,
        "processes_per_env": pct(nprocs, 50),
        "pss_mib": stats(pss),
        "uss_p50_mib": pct(uss, 50),
        "rss_p50_mib": pct(rss, 50),
        "cgroup_usage_p50_mib": pct(usage, 50),
        "roles_pss_p50_mib": {k: pct(v, 50) for k, v in sorted(by_role.items())},
        "misplaced_envs": wrong_envs,
        "misplaced_procs": wrong,
        "stem_cells": len(cells),
        "stem_cell_pss_p50_mib": pct(stem_pss, 50),
        "stem_cell_misplaced_procs": cells_wrong,
        "bare_python_pss_uss_rss_mib": bare_mem,
    }
    p = out["pss_mib"]
    say(
        f"provisioned {n} in {prov_s:.2f} s; frozen: {frozen}/{n} by the engine's flag, {kernel_frozen}/{n} "
        f"by the kernel; processes per environment: {out['processes_per_env']:.0f}"
    )
    say(
        f"PSS per environment: p50 {p['p50']:.2f} MiB  max {p['max']:.2f} MiB   "
        f"(USS p50 {out['uss_p50_mib']:.2f} MiB, RSS p50 {out['rss_p50_mib']:.2f} MiB)"
    )
    say("PSS p50 by process: " + ", ".join(f"{k} {v:.2f} MiB" for k, v in out["roles_pss_p50_mib"].items()))
    say(f"memory cgroup usage_in_bytes per environment: p50 {out['cgroup_usage_p50_mib']:.2f} MiB")
    say(f"jail processes misplaced in the engine's cgroup layout: {wrong} in {wrong_envs}/{n} environments")
    if wrong:
        say(f"  PROBLEM: {example}")
    if cells:
        say(
            f"stem cells (agent and idle pre-forked runtime, no function yet, not frozen): {len(cells)}, "
            f"PSS p50 {out['stem_cell_pss_p50_mib']:.2f} MiB each; misplaced processes {cells_wrong}"
        )
    bare = f"bare python -I -S PSS {bare_mem[0]:.2f} MiB"
    say(f"baseline: {bare} (USS {bare_mem[1]:.2f} MiB)")
    row("idle PSS/env p50", f"{p['p50']:.2f} MiB", "<= 8 MiB", p["p50"] <= 8, bare)
    row("idle PSS/env max", f"{p['max']:.2f} MiB", "<= 8 MiB", p["max"] <= 8)
    row("idle cgroup usage p50", f"{out['cgroup_usage_p50_mib']:.2f} MiB")
    row("idle frozen (by the kernel)", f"{kernel_frozen}/{n}", f"{n}/{n}", kernel_frozen == n)
    row("idle: misplaced procs", f"{wrong} in {wrong_envs}/{n} envs", "0", wrong == 0)


# -- figure 5: many environments ------------------------------------------------------------


def invoke_pass(pool, spec, event, count, threads):
    """``count`` invokes from ``threads`` threads (lined up by a barrier if threads >= count)."""
    barrier = threading.Barrier(count) if threads >= count else None

    def call(_):
        if barrier is not None:
            barrier.wait(timeout=60)
        try:
            r = pool.invoke(spec, event)
            return r.status, r.cold, r.environment_id
        except Exception as exc:  # noqa: BLE001 - counted
            return f"{type(exc).__name__}: {exc}", False, None

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        res = list(ex.map(call, range(count)))
    errors = [r[0] for r in res if r[0] != "success"]
    return {
        "ok": count - len(errors),
        "cold": sum(1 for r in res if r[1]),
        "environments_used": len({r[2] for r in res if r[2]}),
        "s": time.perf_counter() - t,
        "first_error": errors[0] if errors else None,
    }


def bench_many(args, R):
    count = args.many
    spec = FunctionSpec(source=HOLDING, timeout_s=30)
    fds0, avail0 = len(os.listdir("/proc/self/fd")), mem_available_mib()
    pool = EnvironmentPool(max_environments=count + 8)
    admitted = None
    if pool._scratch is not None:
        # Every /tmp is promised its full size on disk: no more environments than the disk admits.
        admitted = pool._scratch.available_bytes() // (spec.tmp_mb * MiB) - len(pool._stem_cells) - 2
        count = max(1, min(count, admitted))
    header(f"5. {count} environments alive at once (provision in batches of {args.batch})")
    if admitted is not None and count < args.many:
        say(
            f"the disk admits {admitted} more {spec.tmp_mb} MB /tmp here: {count} environments, not {args.many}"
        )
    out = R["many"] = {"count": count, "problems": []}
    problems = out["problems"]
    all_pids: list[int] = []
    try:
        t0, done = time.perf_counter(), 0
        while done < count:
            try:
                done += len(pool.provision(spec, min(args.batch, count - done)))
            except Exception as exc:  # noqa: BLE001 - reported
                problems.append(f"provision batch at {done}: {type(exc).__name__}: {exc}")
                break
        prov_s = out["provision_s"] = time.perf_counter() - t0
        time.sleep(0.3)
        envs = list(pool._all.values())
        alive = out["alive_after_provision"] = len(pool.environments())
        running = sum(1 for e in envs if e.proc is not None and e.proc.poll() is None)
        used = out["host_mem_used_mib"] = avail0 - mem_available_mib()
        out["pss_total_mib"] = sum(memory_mib(env_pids(e))[0] for e in envs)
        usage = sum(e.cgroup.usage_bytes() or 0 for e in envs if e.cgroup) / MiB
        say(
            f"provisioned {done}/{count} in {prov_s:.2f} s ({prov_s / max(1, done) * 1e3:.1f} ms/environment)"
        )
        say(
            f"alive: {alive} listed, {running} jails running; host MemAvailable dropped {used:.0f} MiB "
            f"({used / max(1, len(envs)):.1f} MiB/environment; other processes move it too)"
        )
        say(
            f"sum of PSS over every jail process: {out['pss_total_mib']:.0f} MiB "
            f"({out['pss_total_mib'] / max(1, len(envs)):.2f} MiB/environment); "
            f"sum of memory cgroup usage: {usage:.0f} MiB"
        )
        # Pass A: the pool takes the most recently used idle environment, so only a few get used.
        # Pass B: every call at once, each holding its environment, so every environment thaws.
        a = ("A", args.threads, {}, f"invokes from ThreadPoolExecutor({args.threads})")
        b = (
            "B",
            count,
            {"hold": args.hold},
            f"concurrent invokes (each holds its environment {args.hold:g} s)",
        )
        for key, threads, event, what in (a, b):
            p = out[f"pass_{key}"] = invoke_pass(pool, spec, event, count, threads)
            say(
                f"pass {key}: {count} {what}: {p['ok']}/{count} succeeded, {p['cold']} cold, "
                f"{p['environments_used']} distinct environments used, {p['s']:.2f} s"
            )
            if p["first_error"]:
                problems.append(f"pass {key}: {count - p['ok']} failed, first: {p['first_error']}")
        envs, cells = list(pool._all.values()), list(pool._stem_cells)
        out["alive_after_invokes"] = len(pool.environments())
        running = sum(1 for e in envs if e.proc is not None and e.proc.poll() is None)
        say(f"alive after the invokes: {out['alive_after_invokes']} listed, {running} jails running")
        hit, wrong, example = misplaced_report(envs + cells)
        out["misplaced_envs"], out["misplaced_procs"] = hit, wrong
        say(f"jail processes misplaced in the cgroup layout (stem cells too): {wrong} in {hit} environments")
        if wrong:
            problems.append(f"{wrong} jail processes misplaced, e.g. {example}")
        all_pids = sorted({p for e in envs + cells for p in env_pids(e)})
    finally:
        t = time.perf_counter()
        pool.close()
        out["close_s"] = time.perf_counter() - t
    time.sleep(0.3)
    left_pids = out["leftover_pids"] = [p for p in all_pids if pid_alive(p)]
    tops = [sb_cgroup.ROOT / h / sb_cgroup.TOP / pool._isolation.pool_tag for h in HIERARCHIES]
    left_cg = out["leftover_cgroups"] = [str(d) for top in tops for d in top.glob("*") if d.is_dir()]
    if Path(pool._task_root).exists():
        problems.append(f"the pool's task folder {pool._task_root} is still there after close")
    say(
        f"pool.close(): {out['close_s']:.2f} s; afterwards: {len(left_pids)} of {len(all_pids)} jail "
        f"processes (stem cells' too) still alive, {len(left_cg)} environment cgroups left, MemAvailable "
        f"{mem_available_mib() - avail0:+.0f} MiB vs before provisioning, "
        f"open fds {len(os.listdir('/proc/self/fd')) - fds0:+d}"
    )
    if left_pids:
        problems.append(f"{len(left_pids)} jail processes alive after close: {left_pids[:8]}")
    if left_cg:
        problems.append(f"{len(left_cg)} cgroups left after close: {left_cg[:3]}")
    for p in problems:
        say(f"  PROBLEM: {p}")
    all_ok, alive = f"{count}/{count}", (out["alive_after_provision"], out["alive_after_invokes"])
    row(
        f"{count} envs alive", f"{alive[0]}/{count}, then {alive[1]}/{count}", all_ok, alive == (count, count)
    )
    row(f"provision {count} envs", f"{prov_s:.2f} s", baseline=f"{prov_s / count * 1000:.1f} ms/env")
    for key, label in (("A", f"{args.threads}-thread"), ("B", "all-at-once")):
        p = out[f"pass_{key}"]
        used = f"{p['environments_used']} envs used, {p['cold']} cold"
        row(f"invokes ok ({label})", f"{p['ok']}/{count}", all_ok, p["ok"] == count, used)
    pss, used = out["pss_total_mib"], out["host_mem_used_mib"]
    row("PSS / env (all alive)", f"{pss / count:.2f} MiB", baseline=f"total {pss:.0f} MiB")
    row("host memory / env", f"{used / count:.1f} MiB", baseline=f"total {used:.0f} MiB")
    wrong = f"{out['misplaced_procs']} in {out['misplaced_envs']} envs"
    row(f"{count} envs: misplaced procs", wrong, "0", out["misplaced_procs"] == 0)
    left = f"{len(left_pids)} pids, {len(left_cg)} cgroups left"
    row("close time", f"{out['close_s']:.2f} s", baseline=left)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = ap.add_argument
    counts = {}

    def count(flag, full, quick, what):  # a count with a smaller --quick default
        counts[flag[2:].replace("-", "_")] = full, quick
        add(flag, type=int, help=f"{what} ({full}; quick {quick})")

    add("--quick", action="store_true", help="smaller counts")
    add("--only", default="1,2,3,4,5", help="comma-separated figures to run (default: all)")
    count("--python-runs", 20, 10, "python -c pass runs")
    count("--pingpong", 2000, 1000, "socketpair round trips, a quarter as many spaced")
    count("--bwrap-runs", 20, 10, "bare bwrap runs")
    add("--freezer-cycles", type=int, default=300, help="raw freeze+thaw baseline cycles (300)")
    count("--cold", 30, 10, "cold starts per variant")
    count("--warm", 2000, 300, "warm invokes per run")
    add("--warmup", type=int, default=50, help="untimed warm invokes first (50)")
    add("--space-ms", type=float, default=3.0, help="pause before each call of the spaced warm run (3)")
    count("--idle", 20, 10, "provisioned environments measured for memory")
    count("--many", 200, 50, "environments alive at once")
    add("--batch", type=int, default=25, help="provision batch size (25)")
    add("--threads", type=int, default=8, help="threads for the figure-5 invoke pass (8)")
    add("--hold", type=float, default=1.0, help="seconds each all-at-once call holds its environment (1)")
    add("--json", metavar="PATH", help="also write the results as JSON (bench/results/ is git-ignored)")
    args = ap.parse_args(argv)
    for k, (full, quick) in counts.items():
        if getattr(args, k) is None:
            setattr(args, k, quick if args.quick else full)
    return args


def print_summary(errors):
    header("Summary")
    cols = ("figure", "measured", "target", "met", "baseline (same run)")
    rows = ROWS + [(f"figure {key}", "ERROR", "", "", "") for key in errors]
    widths = [max(len(r[i]) for r in [cols, *rows]) for i in range(5)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    say(line)
    say("-" * len(line))
    for r in rows:
        say("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    for key, why in errors.items():
        say(f"figure {key} failed: {why}")


def main(argv=None):
    args = parse_args(argv)
    only = {s.strip() for s in args.only.split(",")}
    t_all = time.perf_counter()
    R, errors = {}, {}
    say(
        f"lambdalab engine benchmark{' (quick)' if args.quick else ''}: {platform.node()}, "
        f"{os.cpu_count()} CPUs, kernel {platform.release()}, python {platform.python_version()}, "
        f"uid {os.geteuid()}"
    )
    import sandbox

    pkg = Path(sandbox.__file__).parent
    say(f"engine: {pkg} ({engine_version(pkg)})")
    others = len(other_pools())
    say(
        f"loadavg {Path('/proc/loadavg').read_text().split()[:3]}; other live lambdalab pools on this host "
        f"right now: {others}" + (" (their work competes for the same CPUs)" if others else "")
    )
    for num, fn in enumerate((bench_baselines, bench_cold, bench_warm, bench_idle, bench_many), 1):
        if str(num) not in only:
            continue
        t = time.perf_counter()
        try:
            fn(args, R)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, never fails
            errors[f"{num} ({fn.__name__[6:]})"] = f"{type(exc).__name__}: {exc}"
            say(f"figure {num} ERROR:")
            traceback.print_exc(file=sys.stdout)
        say(f"({time.perf_counter() - t:.1f} s)")
    print_summary(errors)
    left = [p for p in children(os.getpid()) if pid_alive(p)]
    say()
    say(
        f"total {time.perf_counter() - t_all:.1f} s; max RSS of this process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
        f"child processes still alive: {len(left)}; other live lambdalab pools now: {len(other_pools())}"
    )
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        results = {"args": vars(args), "results": R, "errors": errors}
        path.write_text(json.dumps(results, indent=2, default=str))
        say(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
