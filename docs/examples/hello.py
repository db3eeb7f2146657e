"""A first handler: module-level code runs once per environment (Init); the handler per call."""

import os
import time
import uuid

INSTANCE = uuid.uuid4().hex[:8]  # one per execution environment
STARTED = time.time()
calls = 0


def lambda_handler(event, context):
    global calls
    calls += 1
    print(f"instance {INSTANCE}: call {calls}, event {event}")
    return {
        "instance": INSTANCE,
        "calls": calls,
        "age_s": round(time.time() - STARTED, 3),
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "tmp_files": os.listdir("/tmp"),
    }
