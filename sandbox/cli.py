"""``python -m sandbox``: invoke a handler the way Lambda would, or check this host's isolation."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import service
from .pool import EnvironmentPool, PoolError
from .runtime import contract
from .spec import FunctionSpec

PROBE = r"""
import json, os, socket, stat

def lambda_handler(event, context):
    facts = {}
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((event["host"], event["port"]))
        facts["host loopback (Redis port) unreachable"] = False
    except OSError:
        facts["host loopback (Redis port) unreachable"] = True
    finally:
        s.close()
    facts["project tree invisible"] = not os.path.exists(event["project"])
    facts["host home invisible"] = not os.path.exists("/root") and not os.path.exists("/home")
    closed = []
    for name in ("mem", "environ", "fd/0"):
        try:
            open(f"/proc/1/{name}", "rb").close()
            closed.append(False)
        except PermissionError:
            closed.append(True)
    facts["the agent (pid 1) is closed to user code: its mem, environ and descriptors"] = all(closed)
    allowed = set(os.environ) <= set(event["allowed"])
    facts["only Lambda variables set (and the lab service's LAB_SERVICE_SOCKET)"] = allowed
    with open("/proc/self/uid_map") as f:
        inside, outside, count = (int(x) for x in f.read().split())
    facts["runs unprivileged (uid 993 in the jail maps to a host uid other than root)"] = (
        inside == 993 and outside != 0 and count == 1
    )
    writable = []
    for folder in ("/", "/dev", "/usr/local", "/var/task", "/var/runtime", "/opt", "/etc"):
        try:
            open(os.path.join(folder, ".probe"), "wb").close()
            writable.append(folder)
        except OSError:
            pass
    facts["only /tmp is writable"] = not writable
    families = []
    for family in (40, 16, 17):  # AF_VSOCK, AF_NETLINK, AF_PACKET
        try:
            socket.socket(family, socket.SOCK_DGRAM).close()
            families.append(family)
        except OSError:
            pass
    facts["only Unix and IP sockets (no vsock, netlink, packet)"] = not families
    try:
        os.kill(event["host_pid"], 0)
        facts["cannot signal host processes"] = False
    except ProcessLookupError:
        facts["cannot signal host processes"] = True
    except PermissionError:
        facts["cannot signal host processes"] = True
    inherited = []
    from _lambdalab_runtime import bootstrap

    state = bootstrap._state  # made in the jail: the State inspector's socket to the agent, /proc/self/task
    own = {state.sock.fileno(), state.tasks_fd} if state is not None else set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd < 3 or fd in own:
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue  # listdir's own descriptor, closed by now
        if stat.S_ISSOCK(mode):
            s = socket.socket(fileno=os.dup(fd))
            try:
                peer = s.getpeername()
            except OSError:
                peer = None
            s.close()
            if peer in ((event["api_host"], event["api_port"]), event["api_unix"], event["api_unix"].encode()):
                continue  # the runtime's own connection to the Runtime API
        inherited.append(fd)
    facts["no host descriptors inherited"] = not inherited
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(event["host_abstract"])
        facts["the host's abstract Unix sockets unreachable"] = False
    except OSError:
        facts["the host's abstract Unix sockets unreachable"] = True
    finally:
        s.close()
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(os.environ["LAB_SERVICE_SOCKET"])
        s.sendall(b"PING\n")
        answered = s.makefile("rb").readline() == b"PONG\n"
    except (OSError, KeyError):
        answered = False
    finally:
        s.close()
    try:
        open("/var/lab/.probe", "wb").close()
        sealed = False
    except OSError:
        sealed = True
    facts["the lab service: one socket in /var/lab, read-only, and it answers"] = (
        answered and sealed and os.listdir("/var/lab") == ["kv.sock"]
    )
    return facts
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    inv = sub.add_parser("invoke", help="run a handler in real jailed environments")
    inv.add_argument("path", help="a .py file or a code folder")
    inv.add_argument(
        "--handler",
        help="module.function (default: lambda_function.lambda_handler, "
        "or for a file its lambda_handler/handler)",
    )
    inv.add_argument("--memory", type=int, default=128, help="MB, 128-10240 (default 128)")
    inv.add_argument("--timeout", type=int, default=3, help="seconds, 1-900 (default 3)")
    inv.add_argument("--tmp", type=int, default=512, help="/tmp size in MB, 512-10240 (default 512)")
    inv.add_argument(
        "--idle-timeout", type=float, default=600.0, help="seconds before an idle environment shuts down"
    )
    inv.add_argument("--runtime", default="python3.11", help="python3.11 (default) or provided")
    inv.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a function variable")
    events = inv.add_mutually_exclusive_group()
    events.add_argument("--event", help="the event as JSON (default {})")
    events.add_argument("--event-file", help="a file holding the event JSON")
    inv.add_argument("--count", type=int, default=1, help="invocations in all (default 1)")
    inv.add_argument("--concurrency", type=int, default=1, help="invocations at once (default 1)")
    inv.add_argument("--json", action="store_true", help="print one JSON lifecycle event per line")
    chk = sub.add_parser("check", help="print each isolation feature and the level reached")
    chk.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return check(args)
    return invoke(args)


def _bad(message: str) -> int:
    print(f"python -m sandbox: error: {message}", file=sys.stderr)
    return 2


def invoke(args) -> int:
    if args.count < 1:
        return _bad("--count must be at least 1")
    if not 1 <= args.concurrency <= 1000:
        return _bad("--concurrency must be between 1 and 1000")
    try:
        if args.event_file:
            event = json.loads(Path(args.event_file).read_text())
        else:
            event = json.loads(args.event) if args.event is not None else {}
    except (OSError, ValueError) as exc:
        return _bad(f"event: {exc}")
    variables = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep:
            return _bad(f"--env {item!r}: expected NAME=VALUE")
        variables[name] = value
    settings = dict(
        memory_mb=args.memory,
        timeout_s=args.timeout,
        tmp_mb=args.tmp,
        idle_timeout_s=args.idle_timeout,
        runtime=args.runtime,
        environment=variables,
    )
    if args.handler:
        settings["handler"] = args.handler
    if not Path(args.path).exists():
        return _bad(f"{args.path}: no such file or folder")
    try:
        spec = FunctionSpec.from_path(args.path, **settings)
    except ValueError as exc:
        return _bad(str(exc))

    out_lock = threading.Lock()
    tag = args.concurrency > 1

    def on_event(event: dict) -> None:
        if args.json:
            line = json.dumps(event)
        elif event["type"] == "log":
            text = event["line"].replace("\r", "\n")
            line = f"[{event['environment'][:8]}] {text}" if tag else text
        else:
            return
        with out_lock:
            print(line, flush=True)

    def summary(n: int, result) -> None:
        if args.json:
            return
        kind = "cold" if result.cold else "warm"
        payload = result.payload.decode("utf-8", "replace")
        if len(payload) > 2000:
            payload = payload[:2000] + f"... ({len(result.payload)} bytes)"
        with out_lock:
            print(
                f"# {n}: {result.status}{' ' + result.error_type if result.error_type else ''}, {kind}, "
                f"environment {result.environment_id[:8]}, {result.duration_ms:.2f} ms, "
                f"billed {result.billed_duration_ms} ms, max memory {result.max_memory_used_mb} MB",
                flush=True,
            )
            print(f"  -> {payload}", flush=True)

    try:
        with EnvironmentPool(on_event=on_event, max_environments=max(256, args.concurrency)) as pool:
            if args.concurrency == 1:
                for n in range(1, args.count + 1):
                    summary(n, pool.invoke(spec, event))
            else:
                with ThreadPoolExecutor(args.concurrency) as ex:
                    futures = [ex.submit(pool.invoke, spec, event) for _ in range(args.count)]
                    for n, fut in enumerate(futures, 1):
                        summary(n, fut.result())
    except PoolError as exc:
        print(f"python -m sandbox: {exc}", file=sys.stderr)
        return 1
    return 0


def check(args) -> int:
    import os

    from .isolation import disabled_from_env, probe

    try:
        report = probe(disabled_from_env())
    except ValueError as exc:
        return _bad(str(exc))
    verified: dict[str, bool] = {}
    if not report.blocking:
        # a socket in the host's abstract namespace, which no jail may reach
        abstract_name = f"\0lambdalab-check-{os.getpid()}"
        host_abstract = socket.socket(socket.AF_UNIX)
        host_abstract.bind(abstract_name)
        host_abstract.listen(1)
        probe_event = {
            "host": "127.0.0.1",
            "port": 6379,
            "project": str(Path(__file__).resolve().parent.parent),
            "allowed": [*contract.LAMBDA_VARIABLES, service.SOCKET_VARIABLE],
            "host_abstract": abstract_name,
            "host_pid": os.getpid(),
            "api_host": contract.API_HOST,
            "api_port": contract.API_PORT,
            "api_unix": contract.API_UNIX,
        }
        try:
            with EnvironmentPool() as pool:
                result = pool.invoke(FunctionSpec(source=PROBE, timeout_s=10), probe_event)
            if result.status == "success":
                verified = result.json()
            else:
                verified = {f"probe ran ({result.error_type})": False}
        except PoolError as exc:
            verified = {f"probe ran ({exc})": False}
        finally:
            host_abstract.close()
    ok = report.level == "strong" and all(verified.values())
    if args.json:
        print(
            json.dumps(
                {
                    "level": report.level,
                    "features": [f.__dict__ for f in report.features],
                    "verified": verified,
                    "differences_from_lambda": report.notes,
                }
            )
        )
    else:
        width = max(len(f.name) for f in report.features)
        for f in report.features:
            print(f"{f.name:<{width}}  {f.level:<8} {f.detail}")
        if verified:
            print("\nverified from inside a jail:")
            for name, passed in verified.items():
                print(f"  {'ok  ' if passed else 'FAIL'}  {name}")
        if report.notes:
            print("\nknown differences from Lambda, and what still leaks between tenants:")
            for note in report.notes:
                print(f"  -  {note}")
        print(f"\nisolation: {report.level}" + ("" if ok else " (below strong: see above)"))
    return 0 if ok else 1
