"""The jail holds: no host network, files, environment or processes; bombs and floods stay inside."""

import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.procs import still_running

PROJECT = Path(__file__).resolve().parents[2]


def test_no_connection_to_the_hosts_loopback(pool, make_spec):
    with socket.create_connection(("127.0.0.1", 6379), timeout=2) as s:  # Redis is up on the host
        s.sendall(b"PING\r\n")
        assert s.recv(16).startswith(b"+PONG")
    spec = make_spec("""
import socket
def lambda_handler(event, context):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", 6379))
        return "connected"
    except OSError as exc:
        return exc.errno
""")
    result = pool.invoke(spec)
    assert result.status == "success"
    assert result.json() == 111  # ECONNREFUSED: the jail's own, empty loopback


def test_no_view_of_the_project_home_or_host_files(pool, make_spec):
    spec = make_spec("""
import os
def lambda_handler(event, context):
    seen = {}
    for path in event["paths"]:
        try:
            with open(path, "rb") as f:
                seen[path] = "read"
        except OSError as exc:
            seen[path] = exc.errno
    return {"seen": seen, "root": sorted(os.listdir("/")), "etc": os.listdir("/etc"),
            "local": os.listdir("/usr/local")}
""")
    paths = [str(PROJECT / "lambdalab" / "settings.py"), "/root/.bashrc", "/etc/passwd", "/etc/shadow"]
    assert Path(paths[0]).exists()
    result = pool.invoke(spec, {"paths": paths})
    body = result.json()
    assert all(v == 2 for v in body["seen"].values()), body  # ENOENT: not there at all
    assert "work" not in body["root"] and "root" not in body["root"] and "home" not in body["root"]
    assert body["etc"] == [] and body["local"] == []  # nor what the host installed by hand


def test_no_view_of_the_hosts_environment(pool, make_spec):
    os.environ["LAMBDALAB_TEST_SENTINEL"] = "host-secret"
    try:
        spec = make_spec("""
import os
def lambda_handler(event, context):
    environs = []
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            environs.append(open(f"/proc/{pid}/environ", "rb").read().decode())
        except OSError:
            pass
    return {"env": dict(os.environ), "all": environs}
""")
        result = pool.invoke(spec)
    finally:
        del os.environ["LAMBDALAB_TEST_SENTINEL"]
    body = result.json()
    assert "host-secret" not in result.payload.decode()
    assert "LAMBDALAB_TEST_SENTINEL" not in body["env"]
    assert not any(k.startswith(("REDIS", "DJANGO", "DATABASE", "HOME", "USER")) for k in body["env"])


def test_no_signal_reaches_a_host_process(pool, make_spec):
    victim = subprocess.Popen(["sleep", "60"])
    try:
        spec = make_spec("""
import os, signal
def lambda_handler(event, context):
    try:
        os.kill(event["pid"], signal.SIGKILL)
        return "sent"
    except OSError as exc:
        return exc.errno
""")
        result = pool.invoke(spec, {"pid": victim.pid})
        assert result.json() in (1, 3)  # EPERM or ESRCH
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_seccomp_denies_namespace_and_tracing_calls(pool, make_spec):
    spec = make_spec("""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    rc = getattr(libc, name)(*args)
    return 0 if rc == 0 else ctypes.get_errno()
def lambda_handler(event, context):
    return {
        "unshare": call("unshare", 0x10000000),
        "ptrace": call("ptrace", 16, 1, 0, 0),
        "mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
        "keyctl": call("syscall", 250, 0, 0, 0, 0),
        "io_uring_setup": call("syscall", 425, 1, 0),
        "bpf": call("syscall", 321, 0, 0, 0),
        "pidfd_getfd": call("syscall", 438, 0, 3, 0),
    }
""")
    result = pool.invoke(spec)
    assert result.json() == {
        "unshare": 1,
        "ptrace": 1,
        "mount": 1,
        "keyctl": 1,
        "io_uring_setup": 1,
        "bpf": 1,
        "pidfd_getfd": 1,
    }


@pytest.mark.slow
def test_a_fork_bomb_stays_contained(pool, make_spec):
    bomb = make_spec(
        """
import os
def lambda_handler(event, context):
    if event.get("ok"):
        return "alive"
    while True:
        try:
            os.fork()
        except OSError:
            pass
""",
        timeout_s=3,
    )
    bystander = make_spec("def lambda_handler(event, context):\n    return 'fine'\n")
    pool.invoke(bystander)  # warm
    outcome = {}
    t = threading.Thread(target=lambda: outcome.setdefault("bomb", pool.invoke(bomb)))
    t.start()
    during = pool.invoke(bystander)  # another environment keeps working meanwhile
    peak = 0
    while t.is_alive():  # watch the bomb's task count from the host while it runs
        for env in [e for e in list(pool._all.values()) if e.spec.key == bomb.key and e.cgroup]:
            try:
                peak = max(peak, int((env.cgroup.paths["pids"] / "pids.current").read_text()))
            except (OSError, ValueError):
                pass
        t.join(0.01)
    result = outcome["bomb"]
    assert during.status == "success" and during.json() == "fine"
    assert result.status in ("timeout", "error"), result.payload
    assert 100 < peak <= 1024  # it really forked, and was held at Lambda's 1,024 tasks
    env = pool._all[result.environment_id]
    # everything the bomb started is gone, and the environment is usable again
    assert len(env.cgroup.function_pids()) <= 1  # at most the agent's fresh, idle pre-forked runtime
    assert len(env.cgroup.pids()) <= 4  # bwrap, its pid 1, the agent and its idle pre-forked runtime
    again = pool.invoke(bomb, {"ok": True})
    assert again.environment_id == result.environment_id and again.json() == "alive"


def test_an_output_flood_is_truncated_and_contained(pool, make_spec):
    spec = make_spec(
        """
import sys
def lambda_handler(event, context):
    line = "y" * 1023
    for _ in range(event.get("lines", 10 * 1024)):
        print(line)
    return "done"
""",
        timeout_s=30,
    )
    result = pool.invoke(spec)
    assert result.status == "success" and result.json() == "done"
    assert result.log_truncated
    function_lines = [line for line in result.logs if line.startswith("y")]
    assert 200 <= len(function_lines) <= 257  # 256 KiB of 1 KiB lines, not 10 MiB
    assert (
        "[lambdalab] output truncated: the invocation wrote more than 256 KiB or 10,000 lines" in result.logs
    )
    assert result.logs[-1] == result.report
    # the next call starts with a fresh budget: 100 KiB, all of it kept (a spent budget would keep none)
    again = pool.invoke(spec, {"lines": 100})
    assert again.environment_id == result.environment_id and again.json() == "done"
    assert len([line for line in again.logs if line.startswith("y")]) == 100
    assert not again.log_truncated


def test_a_flood_of_empty_lines_is_bounded_by_count(pool, make_spec):
    result = pool.invoke(
        make_spec(
            "import sys\ndef lambda_handler(event, context):\n"
            "    sys.stdout.write('\\n' * 200000)\n    return 1\n"
        )
    )
    assert result.status == "success" and result.log_truncated, (result.payload, result.report)
    assert len(result.logs) < 10_100


def test_nothing_survives_the_pools_close(make_pool, make_spec):
    pool = make_pool()
    spec = make_spec("""
import subprocess
def lambda_handler(event, context):
    subprocess.Popen(["sleep", "1000"], start_new_session=True)
    return "spawned"
""")
    results = [pool.invoke(spec) for _ in range(2)]
    assert all(r.json() == "spawned" for r in results)
    envs = list(pool._all.values())
    uids = {e.uid for e in envs}
    groups = [p for e in envs for p in e.cgroup.paths.values()]
    pids = [pid for e in envs for pid in e.cgroup.pids()]
    assert len(pids) >= 4 and all(g.exists() for g in groups)
    pool.close()
    assert not any(g.exists() for g in groups)
    assert still_running(pids) == []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if "Z" not in fields["State"]:
            assert int(fields["Uid"].split()[0]) not in uids


def test_a_killed_host_leaves_no_jail_behind(tmp_path):
    """--die-with-parent: the pool's process dies, its jails die with it (even when frozen, at restart)."""
    script = tmp_path / "host.py"
    script.write_text(f"""
import os, sys, json
sys.path.insert(0, {str(PROJECT)!r})
from sandbox import EnvironmentPool, FunctionSpec
pool = EnvironmentPool()
spec = FunctionSpec(source="def lambda_handler(e, c):\\n    return 1\\n")
r = pool.invoke(spec)
env = pool._all[r.environment_id]
print(json.dumps({{"pids": env.cgroup.pids(), "groups": [str(p) for p in env.cgroup.paths.values()]}}), flush=True)
os.kill(os.getpid(), 9)
""")
    import json
    import sys

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    left = json.loads(done.stdout.strip().splitlines()[-1])
    assert left["pids"]
    # the next pool start clears what a crashed pool left (frozen jails cannot die until thawed)
    from sandbox import cgroup

    cgroup.clean_stale()
    assert not any(Path(g).exists() for g in left["groups"])
    assert still_running(left["pids"]) == []


@pytest.mark.parametrize("stem_cells", [0, 2])
def test_every_jail_process_is_in_its_cgroups_and_the_runtime_under_the_cpu_quota(
    make_pool, make_spec, stem_cells
):
    pool = make_pool(stem_cells=stem_cells)
    spec = make_spec(
        "import subprocess, time\ndef lambda_handler(event, context):\n"
        "    subprocess.Popen(['sleep', '30'])\n    time.sleep(0.3)\n    return 1\n"
    )
    # six at once: six environments, some built while bwrap was still forking
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(6) as ex:
        results = list(ex.map(lambda _: pool.invoke(spec), range(6)))
    assert all(r.status == "success" for r in results)
    assert len({r.environment_id for r in results}) == 6
    assert len({env.uid for env in pool._all.values()}) == len(pool._all)  # one uid per environment
    for env in list(pool._all.values()):
        tree = env._tree_pids()
        assert len(tree) >= 4  # bwrap, the agent (the jail's pid 1), the runtime, sleep
        assert all(env.cgroup.members(pid) for pid in tree), tree
        # and every one of them, bwrap included, runs as the environment's own unprivileged uid
        uids = {int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0]) for pid in tree}
        assert uids == {env.uid} and env.uid >= 1_000_000
        runtime_tree = [pid for pid in tree if pid not in env.keep_pids]
        assert runtime_tree and all(env.cgroup.confined(pid) for pid in runtime_tree)


def test_the_runtime_has_lambdas_process_and_descriptor_limits(pool, make_spec):
    result = pool.invoke(
        make_spec(
            "import resource\ndef lambda_handler(event, context):\n"
            "    return [resource.getrlimit(r) for r in (resource.RLIMIT_NOFILE,"
            " resource.RLIMIT_NPROC, resource.RLIMIT_CORE)]\n"
        )
    )
    assert result.json() == [[1024, 1024], [1024, 1024], [0, 0]]


def test_dev_holds_what_lambda_has_and_no_shm(pool, make_spec):
    spec = make_spec("""
import os, subprocess
def lambda_handler(event, context):
    with open("/dev/null", "w") as f:
        f.write("gone")
    with open("/dev/urandom", "rb") as f:
        random = len(f.read(16))
    echoed = subprocess.run(["cat"], input=b"via pipes", capture_output=True).stdout.decode()
    print("to stdout", file=open("/dev/stdout", "w"))
    return {"dev": sorted(os.listdir("/dev")), "random": random, "echoed": echoed}
""")
    result = pool.invoke(spec)
    body = result.json()
    assert body["random"] == 16 and body["echoed"] == "via pipes"
    assert body["dev"] == ["fd", "full", "null", "random", "stderr", "stdin", "stdout", "urandom", "zero"]
    assert "to stdout" in result.logs
