"""What a hostile handler tried, and what it gets now: one test per attack."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import Recorder


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # USER_HZ


def test_a_crash_takes_the_runtimes_children_with_it(pool, make_spec):
    spec = make_spec("""
import os, subprocess
def lambda_handler(event, context):
    if event.get("crash"):
        subprocess.Popen(["sleep", "300"])
        os._exit(1)
    return sorted(open(f"/proc/{p}/comm").read().strip() for p in os.listdir("/proc") if p.isdigit())
""")
    crashed = pool.invoke(spec, {"crash": True})
    assert crashed.error_type == "Runtime.ExitError"
    assert crashed.json()["errorMessage"].endswith("Runtime exited with error: exit status 1")
    after = pool.invoke(spec)
    assert after.environment_id == crashed.environment_id
    assert "sleep" not in after.json()
    assert after.json() == ["python3.11", "python3.11"]  # the agent (pid 1) and the runtime


def test_only_unix_and_ip_sockets_can_be_made(pool, make_spec):
    result = pool.invoke(
        make_spec("""
import socket
def lambda_handler(event, context):
    made = {}
    for name, family in (("unix", 1), ("inet", 2), ("inet6", 10), ("vsock", 40), ("netlink", 16),
                         ("packet", 17), ("alg", 38), ("bluetooth", 31), ("high bits", 40 | 1 << 32)):
        try:
            socket.socket(family & 0xFFFFFFFF if family > 1 << 31 else family, socket.SOCK_STREAM
                          if family in (1, 2, 10) else socket.SOCK_DGRAM).close()
            made[name] = "made"
        except OSError as exc:
            made[name] = exc.errno
    try:
        import _socket
        _socket.socketpair(40, socket.SOCK_STREAM)
        made["vsock pair"] = "made"
    except OSError as exc:
        made["vsock pair"] = exc.errno
    return made
""")
    )
    made = result.json()
    assert made["unix"] == made["inet"] == made["inet6"] == "made"
    for name in ("vsock", "netlink", "packet", "alg", "bluetooth", "high bits", "vsock pair"):
        assert made[name] == 97, (name, made[name])  # EAFNOSUPPORT


def test_nothing_but_tmp_is_writable(pool, make_spec):
    result = pool.invoke(
        make_spec("""
import os
def lambda_handler(event, context):
    wrote = {}
    for folder in ("/", "/dev", "/dev/fd", "/usr/local", "/var/task", "/var/runtime", "/opt", "/etc", "/var/lang",
                   "/var", "/tmp"):
        try:
            with open(os.path.join(folder, "x"), "wb") as f:
                f.write(b"x" * 1024 * 1024)
            wrote[folder] = True
        except OSError:
            wrote[folder] = False
    return wrote
""")
    )
    wrote = result.json()
    assert wrote.pop("/tmp") is True
    assert not any(wrote.values()), wrote


def test_the_pool_caps_the_tasks_of_all_its_environments_together(make_pool, make_spec):
    pool = make_pool(stem_cells=0, max_tasks=1500)
    source = """
import threading
stop = threading.Event()
def lambda_handler(event, context):
    started = 0
    try:
        for _ in range(900):
            threading.Thread(target=stop.wait, daemon=True).start()
            started += 1
    except RuntimeError:
        pass
    return started
"""
    # three functions, so three environments; their threads stay (frozen) between calls
    started = [
        pool.invoke(make_spec(source + f"# {n}\n", memory_mb=1024, timeout_s=60)).json() for n in range(3)
    ]
    assert started[0] == 900  # one environment alone is held only to its own 1,024
    assert sum(started) <= 1500 - 3 * 2  # each environment's agent and runtime count too
    assert started[2] < 100
    # and the host can still fork, with the jails holding all they could get
    assert subprocess.run(["true"], timeout=10).returncode == 0


def test_the_agents_work_for_the_function_counts_against_its_cpu(make_pool, make_spec):
    """A 128 MB function pipelining requests at the Runtime API gets its 7% of a CPU, agent included."""
    recorder = Recorder()
    pool = make_pool(on_event=recorder)
    spec = make_spec(
        """
import socket, time
REQUEST = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
def lambda_handler(event, context):
    end = time.monotonic() + event["seconds"]
    sent = 0
    s = socket.create_connection(("127.0.0.1", 9001))
    while time.monotonic() < end:
        s.sendall(REQUEST * 2000)  # 2,000 requests, one write; each costs the agent a parse and a 403
        got = 0
        while got < 2000:
            got += s.recv(1 << 20).count(b"HTTP/1.1 403")
        sent += 2000
    return sent
""",
        memory_mb=128,
        timeout_s=30,
    )
    pool.invoke(spec, {"seconds": 0.01})
    env = next(e for e in pool._all.values() if e.spec.key == spec.key)
    agent = next(p for p in env.keep_pids if p != env.proc.pid)
    box = {}
    thread = threading.Thread(target=lambda: box.update(result=pool.invoke(spec, {"seconds": 3})))
    recorder_mark = len(recorder.events)
    thread.start()
    recorder.wait_for(
        lambda e: (
            e["type"] == "invoke.start"
            and e["environment"] == env.id
            and recorder.events.index(e) >= recorder_mark
        )
    )
    runtime = env._runtime_pid()
    before = cpu_seconds(agent) + cpu_seconds(runtime)
    t0 = time.monotonic()
    thread.join(30)
    wall = time.monotonic() - t0
    used = cpu_seconds(agent) + cpu_seconds(runtime) - before
    assert box["result"].status == "success" and box["result"].json() > 0
    share = 128 / 1769
    assert used <= share * wall * 1.5 + 0.05, (used, wall)  # not the whole core the agent used to take


def test_a_retried_init_runs_under_the_cpu_quota(make_pool, make_spec):
    recorder = Recorder()
    pool = make_pool(on_event=recorder)
    spec = make_spec(
        """
import os, time
if os.path.exists("/tmp/second"):
    t = time.process_time() + 0.15
    while time.process_time() < t:
        pass
open("/tmp/second", "w").close()
raise RuntimeError("init fails")
""",
        memory_mb=512,
        timeout_s=20,
    )
    first = pool.invoke(spec)  # Init (boosted) fails, then its retry inside the invoke (throttled)
    assert first.error_type == "RuntimeError"
    env = pool._all[first.environment_id]
    stat = dict(line.split() for line in (env.cgroup.paths["cpu"] / "cpu.stat").read_text().splitlines())
    assert int(stat["nr_throttled"]) > 0  # 0.15 s of CPU at 29% of a CPU: throttled
    retried = recorder.of("init.report", environment=env.id, phase="invoke")
    assert retried and retried[0]["duration_ms"] >= 300  # 0.15 s of CPU took over 0.3 s of wall


def test_code_files_are_the_functions_own_not_shared_with_another_function(pool, make_spec):
    """A link count, flock or inotify on /var/task tells an environment nothing of other functions."""
    from sandbox import FunctionSpec

    source = "import os\ndef lambda_handler(event, context):\n    return os.stat(__file__).st_nlink\n"
    a = pool.invoke(FunctionSpec(source=source, function_name="tenant-a"))
    b = pool.invoke(FunctionSpec(source=source, function_name="tenant-b"))  # the same code, another function
    assert a.json() == 2 and b.json() == 2  # the function's code cache and this environment's /var/task
