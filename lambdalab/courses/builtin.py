"""The built-in course: one scenario per behaviour of the execution model, each with its checks.

Loaded by a migration (and again by ``python manage.py load_builtin_course``, which
brings an existing database up to date). A test runs every scenario's reference
solution through a real worker and asserts its checks pass, so the course cannot
drift from what the lab does.
"""

from __future__ import annotations

import json

SLUG = "lambda-execution-model"
TITLE = "The Lambda execution model, hands on"

REUSE = """import uuid

# Module-level code runs once per execution environment: during Init.
INSTANCE_ID = uuid.uuid4().hex[:8]
calls = 0


def lambda_handler(event, context):
    global calls
    calls += 1
    return {"instance": INSTANCE_ID, "calls": calls}
"""

CONCURRENT = """import time
import uuid

INSTANCE_ID = uuid.uuid4().hex[:8]
calls = 0


def lambda_handler(event, context):
    global calls
    calls += 1
    time.sleep(0.5)  # each call holds its environment: calls at once need more of them
    return {"instance": INSTANCE_ID, "calls": calls}
"""

RESET = """import os
import time
import uuid

INSTANCE_ID = uuid.uuid4().hex[:8]
calls = 0


def lambda_handler(event, context):
    global calls
    calls += 1
    with open("/tmp/visits", "a") as f:
        f.write("x")
    time.sleep(event.get("sleep", 0))
    return {"instance": INSTANCE_ID, "calls": calls, "tmp_visits": len(open("/tmp/visits").read())}
"""

OUT_OF_MEMORY = """def lambda_handler(event, context):
    data = bytearray(event.get("mb", 1) * 1024 * 1024)
    return {"allocated_mb": len(data) // (1024 * 1024)}
"""

TMP_CACHE = """import os
import time

CACHE = "/tmp/model.bin"


def lambda_handler(event, context):
    hit = os.path.exists(CACHE)
    if not hit:
        time.sleep(0.2)  # as if downloading a 5 MB model
        with open(CACHE, "wb") as f:
            f.write(os.urandom(5 * 1024 * 1024))
    return {"cache_hit": hit, "size_mb": os.path.getsize(CACHE) // (1024 * 1024)}
"""

BACKGROUND = """import threading
import time

ticks = 0  # counted by a thread started during Init
last_end = None  # (ticks, wall-clock time) when the last call ended


def _tick():
    global ticks
    while True:
        time.sleep(0.05)
        ticks += 1


threading.Thread(target=_tick, daemon=True).start()


def lambda_handler(event, context):
    global last_end
    start = (ticks, time.time())
    time.sleep(0.3)  # the thread runs while a call does
    ticks_between = seconds_between = None
    if last_end is not None:
        ticks_between = start[0] - last_end[0]
        seconds_between = round(start[1] - last_end[1], 2)
    last_end = (ticks, time.time())
    return {
        "ticks_during_call": last_end[0] - start[0],
        "ticks_between_calls": ticks_between,
        "seconds_between_calls": seconds_between,
    }
"""

SLOW_INIT = """import time

# Init writes to /tmp, then takes longer than Lambda's 10 s limit for Init.
with open("/tmp/init-runs", "a") as f:
    f.write("x")
time.sleep(10.5)
INIT_RUNS = len(open("/tmp/init-runs").read())


def lambda_handler(event, context):
    return {"init_runs": INIT_RUNS}
"""

PROVISIONED = """import os
import time
import uuid

INSTANCE_ID = uuid.uuid4().hex[:8]


def lambda_handler(event, context):
    time.sleep(1)  # each call holds its environment a second: three at once need three
    return {"instance": INSTANCE_ID, "initialization_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
"""

BILLING = """import time

time.sleep(0.3)  # Init: imports, clients, a model to load


def lambda_handler(event, context):
    time.sleep(0.05)
    return {"remaining_ms": context.get_remaining_time_in_millis()}
"""

# The lab's key-value service (a Unix socket in the jail; no network reaches a jail): a
# connection per call, as a handler often starts out...
CONNECT_PER_CALL = """import json
import os
import socket


def ask(conn, replies, line):
    conn.sendall(line.encode() + b"\\n")
    return replies.readline().decode().rstrip("\\n")


def lambda_handler(event, context):
    # a new connection on every call: the handshake's cost, every time
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(os.environ["LAB_SERVICE_SOCKET"])
        replies = conn.makefile("rb")
        calls = int(ask(conn, replies, "INCR calls"))
        stats = json.loads(ask(conn, replies, "STATS"))
    return {"calls": calls, "connections_opened": stats["connections_opened"]}
"""

# ...and the fix: one connection, made during Init, reused by every warm call.
CONNECT_IN_INIT = """import json
import os
import socket

# Init: connect once per environment; warm calls reuse the connection
conn = socket.socket(socket.AF_UNIX)
conn.connect(os.environ["LAB_SERVICE_SOCKET"])
replies = conn.makefile("rb")


def ask(line):
    conn.sendall(line.encode() + b"\\n")
    return replies.readline().decode().rstrip("\\n")


def lambda_handler(event, context):
    calls = int(ask("INCR calls"))
    stats = json.loads(ask("STATS"))
    return {"calls": calls, "connections_opened": stats["connections_opened"]}
"""


def _check(kind: str, ok: str, bad: str, **params) -> dict:
    return {"check": kind, **params, "explain_pass": ok, "explain_fail": bad}


SCENARIOS = [
    {
        "slug": "instance-reuse",
        "title": "Warm starts reuse the environment",
        "instructions": (
            "Invoke the function **three times in a row**.\n\n"
            "The first call is a **cold start**: Lambda makes an execution environment and runs your "
            "module's code (Init) once. The next calls are **warm**: the same environment, thawed, "
            "with the same globals. Watch `instance` and `calls` in each response."
        ),
        "code": REUSE,
        "question": {
            "prompt": "The handler adds 1 to a module-level counter. After three calls in a row, what does "
            "the third response say for calls?",
            "kind": "number",
            "answer": 3,
            "explain": "All three calls ran in one warm environment, so the module-level counter kept "
            "counting: 1, 2, 3. A local emulator that starts a new process per call would say 1.",
        },
        "plan": [{"do": "invoke", "mode": "series", "count": 3}],
        "checks": [
            _check(
                "cold_count",
                "Only the first call was cold.",
                "Expected exactly one cold start.",
                step=0,
                count=1,
            ),
            _check(
                "same_instance",
                "All three calls ran in the same environment: the same INSTANCE_ID.",
                "The calls did not share one environment.",
                steps=[0],
            ),
            _check(
                "response_field",
                "The module-level counter reached 3: globals survive between warm calls.",
                "The counter did not reach 3.",
                step=0,
                call=2,
                field="calls",
                equals=3,
            ),
        ],
    },
    {
        "slug": "concurrency",
        "title": "Calls at once need environments of their own",
        "instructions": (
            "Invoke the function **3 at once**. Each environment serves one call at a time, so "
            "Lambda starts a new environment for every call that finds none free. They share "
            "nothing: each has its own globals and its own `/tmp`."
        ),
        "code": CONCURRENT,
        "plan": [{"do": "invoke", "mode": "burst", "count": 3}],
        "checks": [
            _check(
                "cold_count", "All three were cold starts.", "Expected three cold starts.", step=0, count=3
            ),
            _check(
                "distinct_environments",
                "Three calls, three environments.",
                "Some calls shared an environment.",
                step=0,
            ),
            _check(
                "response_field",
                "Each environment counted only its own call.",
                "An environment saw another's call.",
                step=0,
                call=1,
                field="calls",
                equals=1,
            ),
        ],
    },
    {
        "slug": "timeout-and-reset",
        "title": "A timeout resets the runtime, not the environment",
        "instructions": (
            "The second call sleeps past the **1 s timeout**. Lambda stops it with "
            "`Sandbox.Timedout` and kills the runtime; the next call **re-initialises** in the same "
            "environment. Globals start over, but `/tmp` is kept."
        ),
        "code": RESET,
        "settings": {"timeout_s": 1},
        "locked": ["timeout_s"],
        "plan": [
            {"do": "invoke", "count": 1},
            {"do": "invoke", "count": 1, "event": {"sleep": 3}},
            {"do": "invoke", "count": 1},
        ],
        "checks": [
            _check(
                "status",
                "The second call timed out: Sandbox.Timedout.",
                "The second call did not time out.",
                step=1,
                call=0,
                status="timeout",
                error_type="Sandbox.Timedout",
            ),
            _check(
                "same_environment",
                "Every call ran in the same environment: a timeout does not replace it.",
                "The environment changed.",
                steps=[0, 1, 2],
            ),
            _check(
                "init_reason",
                "The third call ran Init again first: the runtime was reset after the timeout.",
                "The third call did not re-initialise.",
                step=2,
                call=0,
                reason="reset_timeout",
            ),
            _check(
                "response_field",
                "Globals started over: the counter is back at 1.",
                "The counter survived the reset.",
                step=2,
                call=0,
                field="calls",
                equals=1,
            ),
            _check(
                "response_field",
                "/tmp survived the reset: three visits were written.",
                "/tmp did not keep its files.",
                step=2,
                call=0,
                field="tmp_visits",
                equals=3,
            ),
        ],
    },
    {
        "slug": "idle-eviction",
        "title": "Idle environments are shut down",
        "instructions": (
            "After a call, the environment stays frozen until it has been idle for the **idle "
            "eviction** time (2 s here; minutes on Lambda). Then it is shut down, and the next call "
            "is cold again."
        ),
        "code": REUSE,
        "settings": {"idle_timeout_s": 2},
        "locked": ["idle_timeout_s"],
        "plan": [{"do": "invoke", "count": 1}, {"do": "wait_idle"}, {"do": "invoke", "count": 1}],
        "checks": [
            _check(
                "init_reason",
                "After the eviction the call was cold, and the lab says why.",
                "The call after the wait was not cold for eviction.",
                step=2,
                call=0,
                reason="evicted",
            ),
            _check(
                "response_field",
                "A new environment: the counter starts at 1 again.",
                "The counter survived the eviction.",
                step=2,
                call=0,
                field="calls",
                equals=1,
            ),
        ],
    },
    {
        "slug": "out-of-memory",
        "title": "Out of memory",
        "instructions": (
            "The function has **128 MB**. Asking for 200 MB gets it killed: `Runtime.OutOfMemory`, "
            "and the next call re-initialises. Raise the memory and it fits."
        ),
        "code": OUT_OF_MEMORY,
        "event": {"mb": 200},
        "settings": {"memory_mb": 128, "timeout_s": 10},
        "plan": [
            {"do": "invoke", "count": 1, "event": {"mb": 200}},
            {"do": "invoke", "count": 1, "event": {"mb": 1}},
        ],
        "checks": [
            _check(
                "status",
                "200 MB does not fit in 128 MB: Runtime.OutOfMemory.",
                "The call did not run out of memory.",
                step=0,
                call=0,
                status="error",
                error_type="Runtime.OutOfMemory",
            ),
            _check(
                "init_reason",
                "The next call re-initialised the runtime the OOM killer took.",
                "The next call did not re-initialise.",
                step=1,
                call=0,
                reason="reset_oom",
            ),
        ],
    },
    {
        "slug": "connection-reuse",
        "title": "Reuse connections across calls",
        "instructions": (
            "Jails have no network, so the lab gives each function a small key-value service on a "
            "Unix socket (`LAB_SERVICE_SOCKET`; a lab addition, not Lambda), which counts the "
            "connections made to it. The starter code connects **on every call**. Move the "
            "connection to module level, so **Init** makes it once and every warm call reuses it, "
            "as you would a database client or an HTTP session, then run the scenario: three calls "
            "in a row must open **one** connection."
        ),
        "starter": CONNECT_PER_CALL,
        "code": CONNECT_IN_INIT,
        "plan": [{"do": "invoke", "mode": "series", "count": 3}],
        "checks": [
            _check(
                "response_field",
                "The service saw every call: the counter reached 3.",
                "The counter did not reach 3: did every call reach the service?",
                step=0,
                call=2,
                field="calls",
                equals=3,
            ),
            _check(
                "response_field",
                "One connection for three calls: Init made it, the warm calls reused it.",
                "More than one connection for three calls: connect at module level, during Init.",
                step=0,
                call=2,
                field="connections_opened",
                equals=1,
            ),
        ],
    },
    {
        "slug": "tmp-cache",
        "title": "/tmp as a cache",
        "instructions": (
            "`/tmp` is the environment's own disk (512 MB by default), and it lives as long as the "
            "environment: cache what is costly to fetch there, and warm calls find it."
        ),
        "code": TMP_CACHE,
        "plan": [{"do": "invoke", "mode": "series", "count": 2}],
        "checks": [
            _check(
                "response_field",
                "The first call had to fetch it.",
                "The first call found a cache it could not have.",
                step=0,
                call=0,
                field="cache_hit",
                equals=False,
            ),
            _check(
                "response_field",
                "The warm call found it in /tmp.",
                "The warm call did not find the cached file.",
                step=0,
                call=1,
                field="cache_hit",
                equals=True,
            ),
        ],
    },
    {
        "slug": "background-thread",
        "title": "A background thread is frozen between calls",
        "instructions": (
            "Init starts a thread that counts **ticks** every 50 ms. Between calls Lambda **freezes** "
            "the whole environment: the thread stops with it, and resumes at the next call. The plan "
            "calls once, waits 2 s, and calls again.\n\n"
            "Work a thread starts and does not finish within the call is only carried on at the next "
            "call, if there is one; flush what must be sent before you return."
        ),
        "code": BACKGROUND,
        "question": {
            "prompt": "The thread ticks 20 times a second. How many ticks happen in the 2 s between the two "
            "calls, roughly?",
            "kind": "choice",
            "choices": ["About 40", "About 0", "It depends on the memory size"],
            "answer": "About 0",
            "explain": "Between calls the environment is frozen: no thread of it runs. A local emulator "
            "that keeps the process running would count about 40.",
        },
        "plan": [{"do": "invoke", "count": 1}, {"do": "wait", "seconds": 2}, {"do": "invoke", "count": 1}],
        "checks": [
            _check(
                "response_range",
                "The thread ran during the call: it ticked while the handler slept.",
                "The thread did not tick during the call.",
                step=2,
                call=0,
                field="ticks_during_call",
                at_least=2,
            ),
            _check(
                "response_range",
                "Two seconds passed between the calls (the wall clock does not freeze)...",
                "Less time passed between the calls than the plan waited.",
                step=2,
                call=0,
                field="seconds_between_calls",
                at_least=1.5,
            ),
            _check(
                "response_range",
                "...yet the thread hardly ticked: it was frozen with the environment.",
                "The thread kept running between calls: the environment was not frozen.",
                step=2,
                call=0,
                field="ticks_between_calls",
                at_most=3,
            ),
        ],
    },
    {
        "slug": "slow-init",
        "title": "An Init over 10 s is retried in the first call",
        "instructions": (
            "On-demand Init has **10 s**. This module sleeps 10.5 s at import. Lambda stops it "
            "(`INIT_REPORT ... Status: timeout`) and runs Init **again inside the first invoke**, "
            "bounded by the function's timeout (15 s here). The call succeeds, but Init ran twice "
            "(`/tmp` kept the count), and its time is in the call's Duration: the REPORT has no "
            "`Init Duration`."
        ),
        "code": SLOW_INIT,
        "settings": {"timeout_s": 15},
        "locked": ["timeout_s"],
        "plan": [{"do": "invoke", "count": 1}],
        "checks": [
            _check(
                "status",
                "The call succeeded: the retried Init fit in the 15 s timeout.",
                "The call did not succeed.",
                step=0,
                call=0,
                status="success",
            ),
            _check(
                "response_field",
                "Init ran twice: once in the Init phase (stopped at 10 s), once in the invoke.",
                "Init did not run twice.",
                step=0,
                call=0,
                field="init_runs",
                equals=2,
            ),
            _check(
                "report",
                "The REPORT has no Init Duration: the retried Init was part of the invoke.",
                "The REPORT shows an Init Duration.",
                step=0,
                call=0,
                lacks="Init Duration",
            ),
        ],
    },
    {
        "slug": "provisioned-concurrency",
        "title": "Provisioned concurrency: initialised ahead",
        "instructions": (
            "With **provisioned concurrency** 2, Lambda initialises two environments before any call "
            "(`AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`) and keeps them: calls within "
            "it are never cold. The plan provisions 2, then sends **3 at once**: the third spills "
            "over to an on-demand environment, a cold start."
        ),
        "code": PROVISIONED,
        "plan": [{"do": "provision", "count": 2}, {"do": "invoke", "mode": "burst", "count": 3}],
        "checks": [
            _check(
                "cold_count",
                "Two calls took the provisioned environments warm; only the third was cold.",
                "Expected exactly one cold start (the call beyond the provisioned two).",
                step=1,
                count=1,
            ),
            _check(
                "distinct_environments",
                "Three calls at once, three environments: two provisioned, one on demand.",
                "Some calls shared an environment.",
                step=1,
            ),
        ],
    },
    {
        "slug": "billing-and-init",
        "title": "What a call costs: billing and INIT",
        "instructions": (
            "Each REPORT line is a bill: **Billed Duration** is the Duration rounded up to the "
            "millisecond, charged per GB-second of **Memory Size** ($0.0000166667 per GB-s on x86, "
            "plus $0.20 per million requests). Since August 2025 the **Init** of on-demand functions "
            "is billed too: the cold call's REPORT carries `Init Duration`, the warm one's does not. "
            "Try the power-tuning chart in the lab to see cost against memory."
        ),
        "code": BILLING,
        "plan": [{"do": "invoke", "mode": "series", "count": 2}],
        "checks": [
            _check(
                "report",
                "The cold call's REPORT has an Init Duration: its Init is billed.",
                "The cold call's REPORT has no Init Duration.",
                step=0,
                call=0,
                has="Init Duration",
            ),
            _check(
                "report",
                "The warm call's REPORT has none: no Init to pay for.",
                "The warm call's REPORT shows an Init Duration.",
                step=0,
                call=1,
                lacks="Init Duration",
            ),
            _check(
                "report",
                "Memory Size is in every REPORT: the GB in GB-seconds.",
                "The REPORT has no Memory Size.",
                step=0,
                call=1,
                has="Memory Size: 128 MB",
            ),
        ],
    },
    {
        "slug": "emulator-lied",
        "title": "The local emulator lied",
        "instructions": (
            "Local emulators often start a **new process for every call** (serverless-offline's "
            "`--reloadHandler`, and SAM CLI's default). The plan runs the same handler 3 times in a "
            "row in Lambda's model, then 3 times in the lab's **always-cold** mode, as such an "
            "emulator would: every call a new environment, discarded after it. Compare `calls` and "
            "the timeline's lanes."
        ),
        "code": REUSE,
        "question": {
            "prompt": "On your laptop's emulator the third call said calls = 1. What does it say on Lambda?",
            "kind": "number",
            "answer": 3,
            "explain": "Lambda reuses the warm environment, globals and all: 1, 2, 3. The emulator threw "
            "each environment away, so a bug that depends on state left by an earlier call (a "
            "cache, a counter, a connection) never shows on the laptop.",
        },
        "plan": [
            {"do": "invoke", "mode": "series", "count": 3},
            {"do": "invoke", "mode": "series", "count": 3, "always_cold": True},
        ],
        "checks": [
            _check(
                "response_field",
                "In Lambda's model the third call counted 3: one warm environment.",
                "In Lambda's model the third call did not count 3.",
                step=0,
                call=2,
                field="calls",
                equals=3,
            ),
            _check(
                "response_field",
                "Always cold, the third call counted 1: its environment was new.",
                "Always cold, the third call did not start over at 1.",
                step=1,
                call=2,
                field="calls",
                equals=1,
            ),
            _check(
                "cold_count",
                "Always cold, all three were cold starts.",
                "Always cold, not every call was cold.",
                step=1,
                count=3,
            ),
            _check(
                "init_reason",
                "The lab says why: always-cold mode.",
                "The cold start was not for the always-cold mode.",
                step=1,
                call=0,
                reason="always_cold",
            ),
        ],
    },
]


def load(Course, Scenario) -> int:
    """Create or bring up to date the built-in course (takes the models, so a migration can use it)."""
    course, _ = Course.objects.update_or_create(slug=SLUG, defaults={"title": TITLE})
    for order, data in enumerate(SCENARIOS, start=1):
        Scenario.objects.update_or_create(
            course=course,
            slug=data["slug"],
            defaults={
                "order": order,
                "title": data["title"],
                "instructions": data["instructions"],
                "starter_code": data.get("starter", data["code"]),
                "solution_code": data["code"],
                "default_event": json.dumps(data.get("event", {})),
                "settings": data.get("settings", {}),
                "locked": data.get("locked", []),
                "plan": data["plan"],
                "checks": data["checks"],
                "question": data.get("question", {}),
            },
        )
    return len(SCENARIOS)
