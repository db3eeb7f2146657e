"""The lab service: a key-value store per function, reached from its jails through one socket,
and nothing else of the host with it."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from sandbox import service
from sandbox.service import LabService, Store
from tests.conftest import Recorder

# What a scenario's handler does: one connection opened in Init, reused by every call.
REUSED = """
import json, os, socket

conn = socket.socket(socket.AF_UNIX)
conn.connect(os.environ["LAB_SERVICE_SOCKET"])
replies = conn.makefile("rb")

def ask(line):
    conn.sendall(line.encode() + b"\\n")
    return replies.readline().decode().rstrip("\\n")

def lambda_handler(event, context):
    return {"calls": int(ask("INCR calls")), "stats": json.loads(ask("STATS"))}
"""

# The same, but a new connection in every call (closed at its end).
PER_CALL = """
import json, os, socket

def lambda_handler(event, context):
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(os.environ["LAB_SERVICE_SOCKET"])
        replies = conn.makefile("rb")
        def ask(line):
            conn.sendall(line.encode() + b"\\n")
            return replies.readline().decode().rstrip("\\n")
        return {"calls": int(ask("INCR calls")), "stats": json.loads(ask("STATS"))}
"""

# Runs the event's commands on one new connection: {"commands": [...]} -> the replies.
ASK = """
import os, socket

def lambda_handler(event, context):
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(os.environ["LAB_SERVICE_SOCKET"])
        replies = conn.makefile("rb")
        out = []
        for line in event["commands"]:
            conn.sendall(line.encode() + b"\\n")
            out.append(replies.readline().decode().rstrip("\\n"))
        return out
"""


def test_a_connection_opened_in_init_is_reused_by_every_warm_call(pool, make_spec):
    spec = make_spec(REUSED)
    results = [pool.invoke(spec) for _ in range(3)]
    assert [r.status for r in results] == ["success"] * 3
    assert len({r.environment_id for r in results}) == 1
    assert [r.json()["calls"] for r in results] == [1, 2, 3]
    stats = results[-1].json()["stats"]
    assert stats["connections_opened"] == 1 and stats["connections_open"] == 1
    assert pool.service_stats(spec.key)["connections_opened"] == 1  # no function id: the key names it


def test_a_connection_opened_in_each_call_is_counted_each_time(pool, make_spec):
    spec = make_spec(PER_CALL)
    results = [pool.invoke(spec) for _ in range(3)]
    assert [r.json()["calls"] for r in results] == [1, 2, 3]
    assert results[-1].json()["stats"]["connections_opened"] == 3


def test_connections_are_told_to_the_event_stream_with_their_environment(make_pool, make_spec):
    recorder = Recorder()
    pool = make_pool(on_event=recorder, stem_cells=0)
    spec = make_spec(REUSED)
    first = pool.invoke(spec)
    pool.invoke(spec)
    connects = recorder.wait_count(1, "service.connect")
    assert len(connects) == 1
    assert connects[0]["environment"] == first.environment_id and connects[0]["function"] == spec.key
    assert connects[0]["connections_opened"] == 1


def test_every_revision_and_environment_of_a_function_shares_its_store(pool, make_spec):
    old = make_spec(ASK, function_id="service-shared", revision="1")
    new = make_spec(ASK + "# edited\n", function_id="service-shared", revision="2")
    assert pool.invoke(old, {"commands": ["SET greeting hello world"]}).json() == ["OK"]
    again = pool.invoke(new, {"commands": ["GET greeting", "STATS"]})
    assert again.json()[0] == "VALUE hello world"
    assert json.loads(again.json()[1])["connections_opened"] == 2
    assert pool.service_stats("service-shared")["keys"] == 1


def test_another_function_sees_only_its_own_socket_and_its_own_store(pool, make_spec):
    mine = make_spec(ASK, function_id="service-mine")
    assert pool.invoke(mine, {"commands": ["SET secret 42"]}).json() == ["OK"]
    host_path = next(service_dirs(pool, "service-mine")) / service.SOCKET_NAME
    assert host_path.is_socket()
    theirs = make_spec(
        """
import os, socket
def lambda_handler(event, context):
    tried = {}
    for path in (event["host_path"], os.path.dirname(event["host_path"])):
        tried[path] = os.path.exists(path)
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(event["host_path"])
        tried["connect"] = "connected"
    except OSError as exc:
        tried["connect"] = exc.errno
    s.close()
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ["LAB_SERVICE_SOCKET"])
    s.sendall(b"GET secret\\n")
    tried["get"] = s.makefile("rb").readline().decode().strip()
    tried["listing"] = os.listdir("/var/lab")
    tried["mounts"] = [line.split()[4] for line in open("/proc/self/mountinfo") if "/var/lab" in line]
    return tried
""",
        function_id="service-theirs",
    )
    seen = pool.invoke(theirs, {"host_path": str(host_path)}).json()
    assert seen[str(host_path)] is False and seen[str(host_path.parent)] is False
    assert seen["connect"] == 2  # ENOENT: the other function's socket is not in this jail at all
    assert seen["get"] == "NONE"  # its own store, empty
    assert seen["listing"] == ["kv.sock"] and seen["mounts"] == ["/var/lab"]


def service_dirs(pool, function_id: str):
    """Host folders of the environments attached to a function's store."""
    svc = pool._service
    with svc._lock:
        ids = sorted(svc._stores[function_id].environments)
    return (svc.directory(env_id) for env_id in ids)


def test_the_jail_cannot_write_into_the_services_folder(pool, make_spec):
    result = pool.invoke(
        make_spec("""
import os, socket
def lambda_handler(event, context):
    tried = {}
    def attempt(name, action):
        try:
            action()
            tried[name] = "done"
        except OSError as exc:
            tried[name] = exc.errno
    attempt("create", lambda: open("/var/lab/x", "wb").close())
    attempt("mkdir", lambda: os.mkdir("/var/lab/d"))
    attempt("unlink", lambda: os.unlink("/var/lab/kv.sock"))
    attempt("rename", lambda: os.rename("/var/lab/kv.sock", "/var/lab/y"))
    attempt("chmod", lambda: os.chmod("/var/lab/kv.sock", 0o777))
    attempt("chmod folder", lambda: os.chmod("/var/lab", 0o777))
    attempt("bind", lambda: socket.socket(socket.AF_UNIX).bind("/var/lab/z.sock"))
    attempt("symlink", lambda: os.symlink("/tmp", "/var/lab/t"))
    return {"tried": tried, "listing": os.listdir("/var/lab")}
""")
    )
    body = result.json()
    assert body["tried"] == dict.fromkeys(body["tried"], 30), body  # EROFS, every one
    assert body["listing"] == ["kv.sock"]


def test_the_hosts_abstract_sockets_and_redis_stay_unreachable(pool, make_spec):
    name = f"\0lambdalab-test-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(name)
    listener.listen(1)
    try:
        result = pool.invoke(
            make_spec("""
import socket
def lambda_handler(event, context):
    tried = {}
    for label, family, address in (("abstract", socket.AF_UNIX, "\\0" + event["name"]),
                                   ("redis", socket.AF_INET, ("127.0.0.1", 6379)),
                                   ("redis unix", socket.AF_UNIX, "/run/redis/redis-server.sock"),
                                   ("redis unix (var)", socket.AF_UNIX, "/var/run/redis/redis-server.sock")):
        s = socket.socket(family)
        s.settimeout(2)
        try:
            s.connect(address)
            tried[label] = "connected"
        except OSError as exc:
            tried[label] = exc.errno
        s.close()
    return tried
"""),
            {"name": name[1:]},
        )
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody came
    finally:
        listener.close()
    tried = result.json()
    assert tried["abstract"] == 111 and tried["redis"] == 111  # ECONNREFUSED: the jail's own namespaces
    assert tried["redis unix"] == tried["redis unix (var)"] == 2  # ENOENT


def test_a_flood_of_connections_is_refused_past_the_bound_and_others_are_still_served(pool, make_spec):
    flood = make_spec(
        """
import os, socket
held = []
def lambda_handler(event, context):
    replies = []
    for _ in range(40):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(os.environ["LAB_SERVICE_SOCKET"])
        try:
            s.sendall(b"PING\\n")
        except OSError:
            pass  # refused, and hung up already: its answer is still there to read
        replies.append(s.makefile("rb").readline().decode().strip())
        held.append(s)  # kept open, and frozen with the environment
    return replies
""",
        function_id="service-flood",
    )
    flooded = pool.invoke(flood)
    assert flooded.status == "success", flooded.payload
    replies = flooded.json()
    assert replies.count("PONG") == service.MAX_CONNECTIONS
    assert replies.count(f"ERR too many connections ({service.MAX_CONNECTIONS} open)") == 40 - 16
    other = make_spec(ASK, function_id="service-bystander")
    assert pool.invoke(other, {"commands": ["PING", "INCR n"]}).json() == ["PONG", "1"]
    stats = pool.service_stats("service-flood")
    assert stats["connections_open"] == 16 and stats["connections_refused"] == 24


def test_a_huge_line_garbage_or_a_slow_reader_is_answered_and_cut_off(make_pool, make_spec):
    recorder = Recorder()
    pool = make_pool(on_event=recorder, stem_cells=0)
    spec = make_spec(
        """
import os, socket
def connect():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(os.environ["LAB_SERVICE_SOCKET"])
    return s, s.makefile("rb")
def lambda_handler(event, context):
    out = {}
    s, r = connect()
    s.sendall(b"\\xff\\x00\\x7f garbage\\r\\n\\n" + b"set k " + b"v" * 5000 + b"\\nSET k2 " + b"v" * 4000 + b"\\n")
    out["garbage"] = [r.readline().decode(errors="replace").strip() for _ in range(4)]
    s.sendall(b"x" * 100_000)
    out["huge"] = r.readline().decode().strip()
    try:
        out["huge then"] = r.readline().decode()
    except OSError as exc:  # ECONNRESET: it hung up with the rest of the line unread
        out["huge then"] = exc.errno
    try:
        s.sendall(b"PING\\n")
        out["write after"] = "written"
    except OSError as exc:  # as in Lambda: an exception, not the runtime killed by SIGPIPE
        out["write after"] = type(exc).__name__
    s.close()
    s, r = connect()
    try:
        for _ in range(200):
            s.sendall(b"GET k2\\n" * 10)  # never reading the 4 KB replies
        out["slow"] = "not cut off"
    except OSError as exc:
        out["slow"] = exc.errno
    s.close()
    s, r = connect()
    s.sendall(b"PING\\n")
    out["after"] = r.readline().decode().strip()
    return out
""",
        timeout_s=20,
    )
    result = pool.invoke(spec)
    assert result.status == "success", result.payload
    out = result.json()
    assert out["garbage"][0].startswith("ERR unknown command")
    assert out["garbage"][1] == "ERR empty command"
    assert out["garbage"][2] == "ERR value over 4096 bytes" and out["garbage"][3] == "OK"
    assert out["huge"] == "ERR line over 8192 bytes" and out["huge then"] in ("", 104)  # and hung up
    assert out["write after"] in ("BrokenPipeError", "ConnectionResetError")
    assert out["slow"] in (32, 104)  # EPIPE or ECONNRESET: cut off
    assert out["after"] == "PONG"
    reasons = {e["reason"] for e in recorder.of("service.disconnect")}
    assert reasons == {"line_too_long", "slow_reader"}


def test_a_pool_without_the_service_mounts_and_sets_nothing(make_pool, make_spec):
    pool = make_pool(service=False, stem_cells=0)
    result = pool.invoke(
        make_spec("""
import os
def lambda_handler(event, context):
    return [os.environ.get("LAB_SERVICE_SOCKET"), os.path.exists("/var/lab")]
""")
    )
    assert result.json() == [None, False]
    assert pool.service_stats("anything") is None


# -- the service alone, from the host ------------------------------------------------------


def test_the_store_keeps_its_bounds():
    store = Store("f")
    assert store.execute(b"PING") == b"PONG"
    assert store.execute(b"get missing") == b"NONE"
    assert store.execute(b"INCR n") == b"1" and store.execute(b"INCR n") == b"2"
    assert store.execute(b"SET word hello") == b"OK"
    assert store.execute(b"INCR word") == b"ERR value is not an integer"
    assert store.execute(b"SET big 9223372036854775807") == b"OK"
    assert store.execute(b"INCR big") == b"ERR increment would overflow"
    assert store.execute(b"DEL word") == b"1" and store.execute(b"DEL word") == b"0"
    assert store.execute(b"GET " + b"k" * 129) == b"ERR key over 128 bytes"
    assert store.execute(b"SET") == b"ERR usage: SET key value"
    for n in range(service.MAX_KEYS - 2):
        assert store.execute(b"SET key%d %d" % (n, n)) == b"OK"
    assert store.execute(b"SET one-too-many x").startswith(b"ERR too many keys")
    store = Store("g")
    stored = 0
    while (reply := store.execute(b"SET v%d " % stored + b"x" * 4000)) == b"OK":
        stored += 1
    assert reply.startswith(b"ERR store full") and stored == service.MAX_STORE_BYTES // 4003
    assert json.loads(store.execute(b"STATS"))["bytes"] <= service.MAX_STORE_BYTES


@pytest.fixture
def lab_service(tmp_path, monkeypatch):
    monkeypatch.setattr(service, "SWEEP_EVERY_S", 0.05)
    events = Recorder()
    svc = LabService(tmp_path, f"{os.getpid()}-test", events, max_functions=2)
    svc.events = events
    yield svc
    svc.close()


def connect(svc: LabService, env_id: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(str(svc.directory(env_id) / service.SOCKET_NAME))
    return s


def test_idle_connections_are_closed_by_the_service(lab_service, monkeypatch):
    monkeypatch.setattr(service, "IDLE_CLOSE_S", 0.2)
    assert lab_service.attach("e1", function_id="f", key="k", name="fn", uid=None)
    s = connect(lab_service, "e1")
    s.sendall(b"PING\n")
    replies = s.makefile("rb")
    assert replies.readline() == b"PONG\n"
    assert replies.readline() == b"ERR idle connection closed\n" and replies.readline() == b""
    closed = lab_service.events.wait_count(1, "service.disconnect")
    assert closed[0]["reason"] == "idle" and closed[0]["environment"] == "e1"


def test_a_functions_store_goes_a_while_after_its_last_environment(lab_service, monkeypatch):
    monkeypatch.setattr(service, "STORE_KEEP_S", 0.1)
    assert lab_service.attach("e1", function_id="f", key="k", name="fn", uid=None)
    lab_service.detach("e1")
    assert not lab_service.directory("e1").exists()
    deadline = time.monotonic() + 5
    while lab_service.stats("f") is not None:
        assert time.monotonic() < deadline, "the store stayed"
        time.sleep(0.05)


def test_a_full_service_makes_room_from_unused_stores_only(lab_service):
    assert lab_service.attach("e1", function_id="f1", key="k1", name="fn", uid=None)
    assert lab_service.attach("e2", function_id="f2", key="k2", name="fn", uid=None)
    assert not lab_service.attach("e3", function_id="f3", key="k3", name="fn", uid=None)  # both in use
    assert not (lab_service.directory("e3") / service.SOCKET_NAME).exists()
    lab_service.detach("e1")
    assert lab_service.attach("e3", function_id="f3", key="k3", name="fn", uid=None)
    assert lab_service.stats("f1") is None and lab_service.stats("f2") is not None


def test_a_detached_environments_connections_are_closed(lab_service):
    assert lab_service.attach("e1", function_id="f", key="k", name="fn", uid=None)
    s = connect(lab_service, "e1")
    s.sendall(b"PING\n")
    assert s.makefile("rb").readline() == b"PONG\n"
    lab_service.detach("e1")
    assert s.recv(10) == b""
    deadline = time.monotonic() + 5
    while lab_service.stats("f")["connections_open"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
