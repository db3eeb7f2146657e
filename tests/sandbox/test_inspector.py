"""The State inspector: a frozen environment's names and /tmp, seen without running its code."""

from __future__ import annotations

import json
import os
import threading
import time
import types

import pytest

from sandbox import EnvironmentBusy, EnvironmentNotFound
from sandbox.inspector import list_tmp, parse_state
from sandbox.runtime import contract, snapshot

STATEFUL = """
import json, os
GREETING = "hello"
COUNT = 0
LIMITS = [128, 3.5, None, True]
SETTINGS = {"region": "us-east-1", "retries": 3}
EMPTY = ()

class Cache:
    pass

CACHE = Cache()

def helper():
    pass

def lambda_handler(event, context):
    global COUNT, LAST_EVENT
    COUNT += 1
    LAST_EVENT = event.get("name")
    return COUNT
"""


def by_name(state: dict) -> dict:
    return {entry["name"]: (entry["type"], entry["text"]) for entry in state["names"]}


def test_globals_from_init_and_from_the_handler_are_described(pool, make_spec):
    spec = make_spec(STATEFUL)
    before = time.time() * 1000
    first = pool.invoke(spec, {"name": "ada"})
    state = pool.inspect(first.environment_id)
    names = by_name(state)
    assert names["GREETING"] == ("str", "'hello'")
    assert names["COUNT"] == ("int", "1")
    assert names["LAST_EVENT"] == ("str", "'ada'")  # set by the handler, not by Init
    assert names["LIMITS"] == ("list", "[128, 3.5, None, True] (4 items)")
    assert names["SETTINGS"] == ("dict", "{'region': 'us-east-1', 'retries': 3} (2 items)")
    assert names["EMPTY"] == ("tuple", "() (0 items)")
    assert names["json"] == ("module", "<module 'json'>")
    assert names["Cache"] == ("type", "<class 'Cache'>")
    assert names["CACHE"] == ("Cache", "<Cache object>")
    assert names["helper"] == ("function", "<function helper>")
    assert not any(name.startswith("__") for name in names)  # dunders left out
    assert [entry["name"] for entry in state["names"]][:2] == ["json", "os"]  # the module's own order
    assert state["after"] == first.request_id and state["state"] == "frozen"
    assert state["threads"] == 1 and state["names_left_out"] == 0
    assert before <= state["taken_at"] <= state["listed_at"]
    second = pool.invoke(spec, {"name": "grace"})
    assert second.environment_id == first.environment_id and second.json() == 2  # inspecting changed nothing
    names = by_name(pool.inspect(first.environment_id))
    assert names["COUNT"] == ("int", "2") and names["LAST_EVENT"] == ("str", "'grace'")


def test_a_provisioned_environment_is_described_after_its_init(make_pool, make_spec):
    pool = make_pool(stem_cells=0)
    [env_id] = pool.provision(make_spec(STATEFUL), 1)
    state = pool.inspect(env_id)
    assert state["after"] == "" and state["invocations"] == 0
    names = by_name(state)
    assert names["COUNT"] == ("int", "0") and "LAST_EVENT" not in names


# Each of these would leave a trace if our runtime ran it: a line in /tmp/called, or the count in
# a global. None may: describing a value must not run the function's code.
HOSTILE = """
import os

RAN = []

def trace(what):
    RAN.append(what)
    with open("/tmp/called", "a") as f:
        f.write(what + "\\n")

class Meta(type):
    def __repr__(cls):
        trace("metaclass __repr__")
        return "Meta"
    def __getattribute__(cls, name):
        trace("metaclass __getattribute__ " + name)
        return super().__getattribute__(name)
    def __hash__(cls):
        trace("metaclass __hash__")
        return 1
    def __eq__(cls, other):
        trace("metaclass __eq__")
        return False

class Sneaky(metaclass=Meta):
    def __repr__(self):
        trace("__repr__")
        return "sneaky"
    def __str__(self):
        trace("__str__")
        return "sneaky"
    def __getattr__(self, name):
        trace("__getattr__ " + name)
        raise AttributeError(name)
    def __getattribute__(self, name):
        trace("__getattribute__ " + name)
        return object.__getattribute__(self, name)
    def __len__(self):
        trace("__len__")
        return 1
    def __hash__(self):
        trace("__hash__")
        return 1
    def __eq__(self, other):
        trace("__eq__")
        return True
    @property
    def __class__(self):
        trace("__class__")
        return int

class Counting(list):
    def __len__(self):
        trace("list __len__")
        return 0
    def __iter__(self):
        trace("list __iter__")
        return iter(())
    def __repr__(self):
        trace("list __repr__")
        return "[]"

class Text(str):
    def __repr__(self):
        trace("str __repr__")
        return "text"
    def __getitem__(self, i):
        trace("str __getitem__")
        return "x"
    def __hash__(self):
        trace("str __hash__")
        return 1
    def __eq__(self, other):
        trace("str __eq__")
        return False
    def __format__(self, spec):
        trace("str __format__")
        return "x"

class Module(type(os)):
    def __getattribute__(self, name):
        trace("module __getattribute__ " + name)
        return super().__getattribute__(name)

Nameless = Meta("Nameless", (), {})
Nameless.__name__ = Text("Nameless")  # a type's name may be a str subclass

SNEAKY = Sneaky()
IN_A_LIST = [Sneaky(), Sneaky()]
IN_A_DICT = {Sneaky(): Sneaky()}
IN_A_SET = {Sneaky()}
COUNTING = Counting([1, 2, 3])
TEXT = Text("hello")
MODULE = Module("fake")
NAMELESS = Nameless()
globals()[Text("TEXT_KEY")] = 1  # a key that is a str subclass, with its own __eq__ and __hash__
RAN.clear()  # building the dict and the set above hashed their keys: that was the module's own doing
os.remove("/tmp/called")

def lambda_handler(event, context):
    return {"ran": RAN, "called_file": os.path.exists("/tmp/called")}
"""


def test_describing_runs_none_of_the_functions_code(pool, make_spec):
    spec = make_spec(HOSTILE)
    first = pool.invoke(spec)
    assert first.status == "success", first.payload
    assert first.json() == {"ran": [], "called_file": False}  # nothing ran during Init's description
    state = pool.inspect(first.environment_id)
    names = by_name(state)
    assert names["SNEAKY"] == ("Sneaky", "<Sneaky object>")  # type(x), not x.__class__ (int)
    assert names["Sneaky"] == ("Meta", "<class 'Sneaky'>")  # the type's own qualname, not Meta's property
    assert names["IN_A_LIST"][1] == "[<Sneaky object>, <Sneaky object>] (2 items)"
    assert names["IN_A_DICT"][1] == "{<Sneaky object>: <Sneaky object>} (1 item)"
    assert names["IN_A_SET"][1] == "{<Sneaky object>} (1 item)"
    assert names["COUNTING"] == ("Counting", "<Counting object>")  # not an exact list: not walked
    assert names["TEXT"] == ("Text", "<Text object>")
    assert names["MODULE"] == ("Module", "<module 'fake'>")
    assert names["NAMELESS"] == ("Nameless", "<Nameless object>")
    assert names["TEXT_KEY"] == ("int", "1")
    assert "/tmp/called" not in [entry["path"] for entry in state["tmp"]]
    second = pool.invoke(spec)
    assert second.json() == {"ran": [], "called_file": False}  # nor after the first call's


def test_long_strings_huge_containers_and_many_names_are_bounded(pool, make_spec):
    spec = make_spec(
        "BIG_TEXT = 'x' * 1_000_000\n"
        "BIG_LIST = list(range(1_000_000))\n"
        "HUGE_INT = 10 ** 5000\n"
        "NESTED = [[[[1]]]]\n"
        "BYTES = bytes(range(256)) * 10\n"
        "UNICODE = '\\u00e9\\u4e2d\\U0001f600' * 100\n"
        + "".join(f"NAME_{i:03} = {i}\n" for i in range(100))
        + "globals()['L' * 500] = 1\n"
        "def lambda_handler(event, context):\n    return 'ok'\n"
    )
    state = pool.inspect(pool.invoke(spec).environment_id)
    names = by_name(state)
    assert len(state["names"]) <= contract.STATE_MAX_NAMES
    assert state["names_left_out"] == 6 + 100 + 1 + 1 - len(state["names"])
    assert all(len(entry["text"]) <= contract.STATE_MAX_TEXT for entry in state["names"])
    assert names["BIG_TEXT"][1].startswith("'xxxx") and names["BIG_TEXT"][1].endswith("(1,000,000 chars)")
    assert names["BIG_LIST"][1] == "[0, 1, 2, 3, …] (1,000,000 items)"
    assert names["HUGE_INT"][1] == "<int of 16,610 bits>"
    assert names["NESTED"][1] == "[<list>] (1 item)"
    assert names["BYTES"][0] == "bytes" and "(2,560 bytes)" in names["BYTES"][1]
    assert names["UNICODE"][1].startswith("'é中😀")


def test_tmp_is_listed_without_following_links(pool, make_spec):
    spec = make_spec(
        """
import os
def lambda_handler(event, context):
    os.makedirs("/tmp/cache/a/b/c/d/e", exist_ok=True)
    with open("/tmp/cache/model.bin", "wb") as f:
        f.write(b"x" * 12345)
    open("/tmp/cache/a/b/c/d/deep.txt", "w").close()
    os.symlink("/etc/passwd", "/tmp/passwd")
    os.symlink("/etc", "/tmp/etc")
    os.symlink("/var/task/lambda_function.py", "/tmp/cache/code.py")
    os.mkfifo("/tmp/pipe")
    return "ok"
"""
    )
    state = pool.inspect(pool.invoke(spec).environment_id)
    tmp = {entry["path"]: entry for entry in state["tmp"]}
    assert tmp["/tmp/cache/model.bin"]["kind"] == "file" and tmp["/tmp/cache/model.bin"]["size"] == 12345
    assert tmp["/tmp/cache"]["kind"] == "dir"
    assert tmp["/tmp/passwd"] == {**tmp["/tmp/passwd"], "kind": "link", "target": "/etc/passwd", "size": None}
    assert tmp["/tmp/etc"]["kind"] == "link" and not any(p.startswith("/tmp/etc/") for p in tmp)
    assert tmp["/tmp/cache/code.py"]["target"] == "/var/task/lambda_function.py"
    assert tmp["/tmp/pipe"]["kind"] == "other"
    assert "/tmp/cache/a/b/c" in tmp and "/tmp/cache/a/b/c/d" not in tmp  # four levels deep at most
    assert state["tmp_truncated"] and state["tmp_error"] is None
    assert all(isinstance(entry["mtime"], int) for entry in state["tmp"])
    assert [entry["path"] for entry in state["tmp"]][:3] == ["/tmp/cache", "/tmp/cache/a", "/tmp/cache/a/b"]


def test_a_tmp_of_many_files_is_listed_up_to_its_bound(pool, make_spec):
    spec = make_spec(
        "import os\n"
        "def lambda_handler(event, context):\n"
        "    for i in range(300):\n"
        "        open(f'/tmp/f{i:03}', 'w').close()\n"
        "    return 'ok'\n"
    )
    state = pool.inspect(pool.invoke(spec).environment_id)
    assert len(state["tmp"]) == 200 and state["tmp_truncated"]
    assert state["tmp"][0]["path"] == "/tmp/f000" and state["tmp"][-1]["path"] == "/tmp/f199"


def test_the_listing_never_leaves_its_root(tmp_path):
    root = tmp_path / "tmp"
    (root / "a").mkdir(parents=True)
    (root / "a" / "inside").write_text("x")
    (root / "out").symlink_to(tmp_path)
    (tmp_path / "secret").write_text("not yours")
    (root / ("\udcff" + "n" * 200)).write_text("")  # a name that is not UTF-8, and long
    entries, truncated = list_tmp(str(root))
    assert [e["path"] for e in entries] == [
        "/tmp/a",
        "/tmp/a/inside",
        "/tmp/out",
        "/tmp/\ufffd" + "n" * 98 + "…",
    ]
    assert not truncated
    assert entries[2]["kind"] == "link" and entries[2]["target"] == str(tmp_path)
    root_link = tmp_path / "link-to-root"
    root_link.symlink_to(root)
    with pytest.raises(OSError):
        list_tmp(str(root_link))  # the root itself is opened with O_NOFOLLOW


def test_a_tmpfs_tmp_is_listed_through_the_jails_root(make_pool, make_spec):
    pool = make_pool(stem_cells=0, disable={"scratch"})
    spec = make_spec("def lambda_handler(event, context):\n    open('/tmp/note', 'w').write('hi')\n")
    state = pool.inspect(pool.invoke(spec).environment_id)
    assert state["tmp_error"] is None
    assert [(e["path"], e["size"]) for e in state["tmp"]] == [("/tmp/note", 2)]


def test_inspecting_an_unknown_or_busy_environment_is_refused(pool, make_spec):
    with pytest.raises(EnvironmentNotFound):
        pool.inspect("0" * 32)
    spec = make_spec(
        "import time\ndef lambda_handler(event, context):\n    time.sleep(event.get('sleep', 0))\n"
    )
    env_id = pool.invoke(spec).environment_id
    call = threading.Thread(target=pool.invoke, args=(spec, {"sleep": 1.5}))
    call.start()
    try:
        deadline = time.monotonic() + 5
        while next(e for e in pool.environments() if e["id"] == env_id)["state"] != "busy":
            assert time.monotonic() < deadline
            time.sleep(0.01)  # polling the pool's own view until the call has taken it
        with pytest.raises(EnvironmentBusy):
            pool.inspect(env_id)
    finally:
        call.join(10)
    assert pool.inspect(env_id)["state"] == "frozen"


def test_a_reset_or_timeout_leaves_no_module_to_describe(pool, make_spec):
    spec = make_spec(
        "import time\nX = 1\ndef lambda_handler(event, context):\n    time.sleep(event.get('sleep', 0))\n",
        timeout_s=1,
    )
    env_id = pool.invoke(spec).environment_id
    assert pool.reset_environment(env_id)
    state = pool.inspect(env_id)
    assert state["names"] is None and not state["runtime_ready"] and "reset" in state["note"]
    assert pool.invoke(spec).environment_id == env_id
    assert "X" in by_name(pool.inspect(env_id))
    assert pool.invoke(spec, {"sleep": 5}).status == "timeout"
    assert pool.inspect(env_id)["names"] is None


# What a function may send instead of our description: it shares the runtime's process, so it can
# patch our module or write to our socket. The host must only ever show a note for it.
FORGER = """
import os, socket, stat
import _lambdalab_runtime.snapshot as ours

GARBAGE = {
    "not json": b"not json at all",
    "deep": b"[" * 4000 + b"]" * 4000,
    "deep object": b'{"names": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    "wrong shape": b'{"names": {"a": 1}}',
    "wrong types": b'{"names": [["a", 1, "x"], ["ok", "int", "1"], "x", [1, 2, 3]], "threads": -5,'
                   b' "left_out": 1e300, "after": ["x"]}',
    "huge": b"x" * 100_000,
    "empty": b"",
    "invalid utf-8": b'{"names": [["\\xff\\xfe", "int", "1"]]}',
    "lone surrogate": b'{"names": [["\\\\ud800", "int", "1"]], "threads": 3}',
}

def our_socket():
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                sock = socket.socket(fileno=os.dup(fd))
                if sock.type == socket.SOCK_DGRAM:
                    return sock
                sock.detach()
        except OSError:
            pass

def lambda_handler(event, context):
    data = GARBAGE[event["kind"]]
    if event.get("patch"):
        ours.take = lambda *args: data  # our runtime now sends this itself
    else:
        ours.take = lambda *args: b""  # sends nothing valid: the garbage below is the last word
        our_socket().send(data)
    return "sent"
"""


@pytest.mark.parametrize(
    "kind",
    [
        "not json",
        "deep",
        "deep object",
        "wrong shape",
        "wrong types",
        "huge",
        "empty",
        "invalid utf-8",
        "lone surrogate",
    ],
)
@pytest.mark.parametrize("patch", [False, True])
def test_a_forged_description_cannot_break_the_host(pool, make_spec, kind, patch):
    spec = make_spec(FORGER)
    result = pool.invoke(spec, {"kind": kind, "patch": patch})
    assert result.status == "success", result.payload
    state = pool.inspect(result.environment_id)
    json.dumps(state)  # what the lab sends on: plain JSON
    names = state["names"] or []
    assert all(isinstance(v, str) for entry in names for v in entry.values())
    assert state["threads"] is None or 0 <= state["threads"] <= 1 << 16
    assert isinstance(state["names_left_out"], int)
    if kind == "wrong types":
        assert names == [{"name": "ok", "type": "int", "text": "1"}] and state["threads"] is None
    elif kind == "lone surrogate":
        assert names == [{"name": "\ud800", "type": "int", "text": "1"}] and state["threads"] == 3
    else:
        assert state["names"] is None and state["note"]
    assert pool.invoke(spec, {"kind": "empty", "patch": True}).status == "success"  # still serves


def test_parse_state_keeps_only_bounded_strings_and_integers():
    long = "n" * 1000
    raw = json.dumps(
        {"names": [[long, long, long]] * 100, "threads": 2**40, "left_out": True, "after": long, "v": 1}
    ).encode()[: contract.STATE_MAX_BYTES - 2]
    assert "note" in parse_state(raw)  # cut: no longer JSON
    state = parse_state(
        json.dumps({"names": [[long, long, long]] * 2, "threads": 2**40, "left_out": True}).encode()
    )
    assert state["names"] == [{"name": "n" * 64, "type": "n" * 48, "text": "n" * 120}] * 2
    assert state["threads"] is None and state["names_left_out"] == 0 and state["after"] is None
    assert "note" in parse_state(b"x" * (contract.STATE_MAX_BYTES + 1))


# The same rules, in this process: quick to check, and each trap would raise if touched.
class Trap(type):
    def __getattribute__(cls, name):
        if name in ("__name__", "__qualname__", "__mro__", "__class__"):
            raise AssertionError(f"metaclass {name} was read")
        return super().__getattribute__(name)

    def __hash__(cls):
        raise AssertionError("a type was hashed")


class Trapped(metaclass=Trap):
    def __repr__(self):
        raise AssertionError("__repr__ ran")

    def __getattribute__(self, name):
        raise AssertionError(f"{name} was read")

    def __eq__(self, other):
        raise AssertionError("__eq__ ran")

    def __hash__(self):
        return 7


def test_describe_reads_nothing_through_the_objects_own_methods():
    module = types.ModuleType("lambda_function")
    module.__dict__.update(
        {"obj": Trapped(), "cls": Trapped, "items": [Trapped()], "mapping": {1: Trapped()}, "n": 3}
    )
    state = json.loads(snapshot.take(module, "id", None))
    assert state["names"] == [
        ["obj", "Trapped", "<Trapped object>"],
        ["cls", "Trap", "<class 'Trapped'>"],
        ["items", "list", "[<Trapped object>] (1 item)"],
        ["mapping", "dict", "{1: <Trapped object>} (1 item)"],
        ["n", "int", "3"],
    ]
    assert state["after"] == "id" and state["threads"] is None


def test_a_description_fits_its_bound_whatever_the_names(tmp_path):
    module = types.ModuleType("lambda_function")
    for i in range(contract.STATE_MAX_NAMES * 2):
        setattr(module, f"n{i}\u4e2d" * 20, "\u4e2d" * 500)  # every character escaped as \\uXXXX
    raw = snapshot.take(module, "x" * 100, os.open("/proc/self/task", os.O_RDONLY | os.O_DIRECTORY))
    assert len(raw) <= contract.STATE_MAX_BYTES
    state = json.loads(raw)
    assert len(state["names"]) + state["left_out"] == contract.STATE_MAX_NAMES * 2
    assert state["threads"] >= 1 and len(state["after"]) == 64
