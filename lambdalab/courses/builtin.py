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
                "starter_code": data["code"],
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
