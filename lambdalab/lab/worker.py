"""What a Celery worker process holds: one EnvironmentPool, its event publisher, its heartbeat.

Celery runs the threads pool (tasks must reach the jails this process owns),
so every task of the process shares ``runtime()``. ``start(worker)`` is called
once the worker knows its name (``celeryd_after_setup``): it adds the
worker's own queue, builds the pool (stem cells warm up at once) and starts
the heartbeat and the janitor that clears workers that died.
"""

from __future__ import annotations

import logging
import os
import threading

from django.conf import settings

from sandbox import EnvironmentPool

from . import placement
from .stream import Publisher

log = logging.getLogger(__name__)
EXPIRE_EVERY_S = 600  # how often anonymous functions past their retention are deleted


class Runtime:
    """This worker's pool and the bookkeeping that ties engine events to lab functions."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.publisher = Publisher(worker)
        # The engine knows versions by key; events go to the lab function's stream.
        self._versions: dict[str, tuple[str, str]] = {}  # key -> (function id, revision)
        self._revisions: dict[tuple, tuple] = {}  # (revision id, idle) -> (FunctionVersion, FunctionSpec)
        self._versions_lock = threading.Lock()
        self.pool = EnvironmentPool(
            on_event=self._on_event,
            max_environments=settings.LAMBDALAB_MAX_ENVIRONMENTS,
            stem_cells=settings.LAMBDALAB_STEM_CELLS,
            memory_budget_mb=memory_budget_mb(),
        )
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="lambdalab-heartbeat", daemon=True)
        self._beat.start()

    def revision(self, version_id: int, idle_timeout_s: float):
        """A revision and its engine spec (with this idle eviction), from this worker's cache
        (revisions never change), else the database; None if it is gone (deleted with its function)."""
        from .models import FunctionVersion

        with self._versions_lock:
            found = self._revisions.get((version_id, idle_timeout_s))
        if found is not None:
            return found
        version = FunctionVersion.objects.select_related("function").filter(pk=version_id).first()
        if version is None:
            return None
        spec = version.spec(idle_timeout_s=idle_timeout_s)
        with self._versions_lock:
            if len(self._revisions) > 4096:
                self._revisions.clear()
            self._revisions[(version_id, idle_timeout_s)] = (version, spec)
            self._versions[spec.key] = (str(version.function_id), str(version.number))
        return version, spec

    def register_spec(self, spec, *, function_id: str, revision: str) -> None:
        """Publish the events of another spec's environments to a lab function's stream, under
        ``revision`` (a power tuning's sizes: the revision at another memory size)."""
        with self._versions_lock:
            self._versions[spec.key] = (function_id, revision)

    def known_versions(self) -> dict[str, tuple[str, str]]:
        with self._versions_lock:
            return dict(self._versions)

    def _on_event(self, event: dict) -> None:
        ids = self._versions.get(event["function"])
        if ids is None:
            return  # not a lab function (nothing else runs here)
        event["function_id"], event["revision"] = ids
        self.publisher.submit(event)

    def _heartbeat(self) -> None:
        from . import rds
        from .services import functions_expire, reap_dead_workers

        while not self._stop.is_set():
            try:
                placement.heartbeat(self.worker)
                reap_dead_workers(self.publisher)
                # retention: one worker of all, once in a while
                if rds.client().set(rds.key("expiring"), self.worker, nx=True, ex=EXPIRE_EVERY_S):
                    functions_expire()
            except Exception:  # noqa: BLE001 - Redis or the database away a moment: try again
                log.exception("heartbeat or janitor failed")
            self._stop.wait(placement.HEARTBEAT_S)

    def close(self) -> None:
        self._stop.set()
        self.pool.close()
        self.publisher.flush()


def worker_argv(python: str, name: str, *, threads: int, loglevel: str = "INFO") -> list[str]:
    """The command of a lab worker (the Procfile's, with a name and a thread count): the tests
    and the benchmark start theirs with it."""
    return [
        python,
        "-m",
        "celery",
        "-A",
        "lambdalab",
        "worker",
        "-P",
        "threads",
        "-c",
        str(threads),
        "-n",
        name,
        "--without-mingle",
        "--without-gossip",
        "--loglevel",
        loglevel,
    ]


def memory_budget_mb() -> int:
    """The worker's share of the host's RAM for Memory Size promises (LAMBDALAB_MEMORY_BUDGET_MB
    to set it; else the host's RAM over the workers it expects, less a reserve)."""
    if settings.LAMBDALAB_MEMORY_BUDGET_MB:
        return settings.LAMBDALAB_MEMORY_BUDGET_MB
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    usable = max(1024, total_mb - settings.LAMBDALAB_HOST_RESERVE_MB)
    return max(1024, usable // max(1, settings.LAMBDALAB_WORKERS_PER_HOST))


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def start(worker: str) -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(worker)
    return _runtime


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("this process is not a lab worker (worker.start was not called)")
    return _runtime


def stop() -> None:
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.close()
            _runtime = None
