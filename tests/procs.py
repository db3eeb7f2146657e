"""Process checks shared by the tests."""

import os
import select
import time


def still_running(pids, timeout: float = 5.0) -> list[int]:
    """The pids still running after waiting up to ``timeout`` for each to exit.

    A killed process leaves its cgroup before it is done tearing down its
    memory, so "gone from the cgroup" and "exited" are moments apart: wait
    for the exit itself, on a pidfd.
    """
    deadline = time.monotonic() + timeout
    alive = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                alive.append(pid)
        finally:
            os.close(fd)
    return alive
