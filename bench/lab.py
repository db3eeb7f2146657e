"""The lab end to end, as a page drives it: API → Celery → environment → events back on the WebSocket.

Starts its own web server (gunicorn with uvicorn workers) and worker on a free
port, its own Redis database and SQLite file, then measures:

1. warm round trip: from the invoke request sent to its ``invoke.end``
   received on the WebSocket (p50, p95), beside an engine-only warm invoke
   (``EnvironmentPool.invoke`` in this process) measured in the same run;
2. many clients at once, each its own anonymous user with its own function,
   each invoking every ``--every`` seconds for ``--seconds``: round-trip p50
   and p95, throughput, and events lost (sequence gaps, calls without their
   ``invoke.end``): must be 0.

Figures are printed, not judged pass/fail: ``python bench/lab.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lambdalab.lab.worker import worker_argv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PY = sys.executable
REDIS_DB = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Lab:
    """A web server and a worker of our own, on a free port; stopped at the end."""

    def __init__(self, workers: int) -> None:
        self.port = free_port()
        self.db = tempfile.mktemp(prefix="lambdalab-bench-", suffix=".sqlite3")
        self.env = {
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "DATABASE_URL": f"sqlite:///{self.db}",
            "DEBUG": "False",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LAB_INVOCATIONS_PER_MINUTE": "100000",
            "LAB_MAX_LIVE_ENVIRONMENTS": "1000",
            "LAMBDALAB_STEM_CELLS": "2",
            "PYTHONPATH": str(ROOT),
        }
        import redis

        redis.Redis(db=REDIS_DB).flushdb()
        subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        self.logs = [open(f"/tmp/lambdalab-bench-{n}.log", "w") for n in ("web", "worker")]  # noqa: SIM115
        self.procs = [
            subprocess.Popen(
                [
                    PY,
                    "-m",
                    "gunicorn",
                    "lambdalab.asgi:application",
                    "-k",
                    "uvicorn_worker.UvicornWorker",
                    "-w",
                    str(workers),
                    "-b",
                    f"127.0.0.1:{self.port}",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=self.logs[0],
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ),
            subprocess.Popen(
                worker_argv(PY, "bench@%h", threads=64, loglevel="WARNING"),
                cwd=ROOT,
                env=self.env,
                stdout=self.logs[1],
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ),
        ]
        r = redis.Redis(db=REDIS_DB)
        deadline = time.monotonic() + 60
        while not r.keys("ll:w:*") or not self._answers():
            if time.monotonic() > deadline:
                raise RuntimeError("the lab did not start: see /tmp/lambdalab-bench-*.log")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", "/api/isolation")
            return c.getresponse().status == 200
        except OSError:
            return False

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for f in self.logs:
            f.close()
        for suffix in ("", "-wal", "-shm"):
            Path(self.db + suffix).unlink(missing_ok=True)


class Client:
    """One anonymous visitor: a session, a function, the API over keep-alive HTTP, the WebSocket."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}
        self.ended: dict[str, float] = {}  # request id -> when its invoke.end came
        self.last_seq = 0
        self.gaps = 0
        self.waiters: dict[str, asyncio.Future] = {}
        self.answered: list[float] = []  # seconds the invoke request took to be answered (202)
        self.asked: dict[int, asyncio.Future] = {}  # invoke messages sent on the socket, by ref
        self.refs = 0

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {
            "Content-Type": "application/json",
            "Host": f"127.0.0.1:{self.port}",
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "Origin": f"http://127.0.0.1:{self.port}",
            "Referer": f"http://127.0.0.1:{self.port}/",
        }
        if "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        self.http.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = self.http.getresponse()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        data = response.read()
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else {}

    def setup(self, code: str | None = None) -> None:
        self.request("GET", "/api/functions")  # the session and the CSRF cookie
        self.function = self.request(
            "POST", "/api/functions", {"name": "bench", **({"code": code} if code else {})}
        )

    async def follow(self) -> None:
        url = f"ws://127.0.0.1:{self.port}/ws/functions/{self.function['id']}/events?after=0"
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "Origin": f"http://127.0.0.1:{self.port}",
        }
        self.ws = await websockets.connect(url, additional_headers=headers, max_size=2**24)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            now = time.perf_counter()
            data = json.loads(message)
            for event in data.get("events", []):
                if event["seq"] != self.last_seq + 1:
                    self.gaps += 1
                self.last_seq = event["seq"]
                if event["type"] == "invoke.end":
                    rid = event["request_id"]
                    self.ended[rid] = now
                    waiter = self.waiters.pop(rid, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(now)
            if data["type"] in ("invoked", "error"):
                waiter = self.asked.pop(data["ref"], None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(data)

    async def invoke(self, via: str = "socket") -> float:
        """One call: the seconds from its request sent to its invoke.end received."""
        t0 = time.perf_counter()
        if via == "socket":
            self.refs += 1
            asked = self.asked[self.refs] = asyncio.get_running_loop().create_future()
            await self.ws.send(json.dumps({"action": "invoke", "ref": self.refs}))
            answer = await asyncio.wait_for(asked, 30)
            if answer["type"] == "error":
                raise RuntimeError(answer["error"]["message"])
        else:
            path = f"/api/functions/{self.function['id']}/invoke"
            answer = await asyncio.to_thread(self.request, "POST", path, {})
        self.answered.append(time.perf_counter() - t0)
        rid = answer["request_ids"][0]
        if rid in self.ended:
            return self.ended[rid] - t0
        waiter = asyncio.get_running_loop().create_future()
        self.waiters[rid] = waiter
        return await asyncio.wait_for(waiter, 60) - t0

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


def engine_warm(n: int) -> list[float]:
    """The engine alone, in this process: the same handler, back to back."""
    import django

    from sandbox import EnvironmentPool, FunctionSpec

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lambdalab.settings")
    django.setup()
    from lambdalab.lab.services import STARTER_CODE

    spec = FunctionSpec(source=STARTER_CODE)
    with EnvironmentPool(stem_cells=0) as pool:
        for _ in range(20):
            pool.invoke(spec)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            pool.invoke(spec)
            times.append(time.perf_counter() - t0)
    return times


async def round_trips(lab: Lab, n: int, via: str) -> tuple[list[float], list[float]]:
    """Warm round trips, and how long the invoke request itself took to be answered."""
    client = Client(lab.port)
    await asyncio.to_thread(client.setup)
    await client.follow()
    for _ in range(20):  # cold start, then warm
        await client.invoke(via)
    client.answered.clear()
    times = [await client.invoke(via) for _ in range(n)]
    await client.close()
    return times, client.answered


async def many(lab: Lab, clients: int, every: float, seconds: float) -> dict:
    people = [Client(lab.port) for _ in range(clients)]
    await asyncio.gather(*(asyncio.to_thread(p.setup) for p in people))
    await asyncio.gather(*(p.follow() for p in people))
    times: list[float] = []
    failures: list[str] = []
    end = time.perf_counter() + seconds

    async def run(person: Client, offset: float) -> None:
        await asyncio.sleep(offset)
        while time.perf_counter() < end:
            started = time.perf_counter()
            try:
                times.append(await person.invoke())
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))

    t0 = time.perf_counter()
    await asyncio.gather(*(run(p, i * every / clients) for i, p in enumerate(people)))
    wall = time.perf_counter() - t0
    await asyncio.sleep(1)  # the last events in flight
    lost = sum(p.gaps for p in people)
    missing = sum(1 for p in people for rid in p.waiters)
    for p in people:
        await p.close()
    return {"times": times, "wall": wall, "lost": lost, "missing_end": missing, "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--every", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.calls, args.clients, args.seconds = 100, 10, 10.0
    lab = Lab(args.web_workers)
    try:
        trips, answered = asyncio.run(round_trips(lab, args.calls, "socket"))
        api_trips, api_answered = asyncio.run(round_trips(lab, args.calls, "api"))
        engine = engine_warm(args.calls)
        crowd = asyncio.run(many(lab, args.clients, args.every, args.seconds))
    finally:
        lab.stop()
    eng = [t * 1000 for t in engine]
    runs = (
        ("invoked on the WebSocket, as the page does", trips, answered),
        ("invoked through the JSON API (HTTP POST)", api_trips, api_answered),
    )
    for label, got, asked in runs:
        ms, ask = [t * 1000 for t in got], [t * 1000 for t in asked]
        print(f"\n== warm round trip, {label} (n={len(ms)}): request sent -> invoke.end received ==")
        print(
            f"p50 {pct(ms, 50):.2f} ms   p95 {pct(ms, 95):.2f} ms   p99 {pct(ms, 99):.2f} ms   "
            f"mean {statistics.mean(ms):.2f} ms      (targets: p50 <= 5 ms, p95 <= 10 ms)"
        )
        print(
            f"   of which the request answered (ids back): p50 {pct(ask, 50):.2f} ms, p95 {pct(ask, 95):.2f} ms"
        )
    print(f"\nengine alone, same run: p50 {pct(eng, 50):.3f} ms   p95 {pct(eng, 95):.3f} ms")
    t = [x * 1000 for x in crowd["times"]]
    print(
        f"\n== {args.clients} clients, each its own user, each invoking every {args.every:g} s "
        f"for {args.seconds:g} s =="
    )
    if t:
        print(
            f"calls {len(t)} in {crowd['wall']:.1f} s ({len(t) / crowd['wall']:.0f}/s)   "
            f"p50 {pct(t, 50):.2f} ms   p95 {pct(t, 95):.2f} ms   p99 {pct(t, 99):.2f} ms"
        )
    print(
        f"events lost (sequence gaps): {crowd['lost']}   calls without their invoke.end: {crowd['missing_end']}   "
        f"failed requests: {len(crowd['failures'])}{' first: ' + crowd['failures'][0] if crowd['failures'] else ''}"
    )


if __name__ == "__main__":
    main()
