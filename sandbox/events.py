"""The one lifecycle event schema, shared by the engine, the web app and the page.

Every event is a flat JSON object::

    {"type": "invoke.end", "time": 1763900000123, "function": "<spec key>",
     "function_name": "...", "environment": "<32 hex>", "request_id": "...", ...}

``time`` is epoch milliseconds. ``request_id`` is null outside an invocation.
"""

from __future__ import annotations

import time

TYPES = (
    "init.start",  # phase ("init" or "invoke"), initialization_type
    "init.runtime.done",  # the runtime is up; the function's own init starts
    "init.function.done",  # init finished: duration_ms
    "init.report",  # init failed or timed out: phase, status, error_type, duration_ms
    "invoke.start",
    "log",  # stream ("function" or "platform"), line
    "invoke.end",  # every InvokeResult field
    "freeze",
    "thaw",
    "reset",  # the runtime was killed and will be re-initialised: reason
    "shutdown",  # reason: idle, capacity, failure, request, close
    # the lab service (service.py), not Lambda's: connections_open, connections_opened
    "service.connect",  # the environment connected to its function's store
    "service.disconnect",  # the service hung up: reason (idle, line_too_long, slow_reader, error)
)


def make(
    type: str, *, function: str, function_name: str, environment: str, request_id: str | None = None, **fields
) -> dict:
    assert type in TYPES, type
    return {
        "type": type,
        "time": int(time.time() * 1000),
        "function": function,
        "function_name": function_name,
        "environment": environment,
        "request_id": request_id,
        **fields,
    }
