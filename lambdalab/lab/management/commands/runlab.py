"""``python manage.py runlab``: the web server and a worker, as the Procfile names them, until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

ROOT = settings.BASE_DIR


def procfile() -> dict[str, str]:
    """The process model, from the Procfile (one place says what runs)."""
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


class Command(BaseCommand):
    help = "Run the lab: the web server (gunicorn + uvicorn) and a Celery worker, until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.getenv("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.getenv("PORT", "8000")))

    def handle(self, *args, host: str, port: int, **options):
        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            raise CommandError(f"no Redis at {settings.REDIS_URL} ({exc}): `make run` starts one") from None
        env = {**os.environ, "PORT": str(port), "HOST": host, "PYTHON": sys.executable}
        children = {}
        for name, command in procfile().items():
            children[name] = subprocess.Popen(command, shell=True, cwd=ROOT, env=env, start_new_session=True)
        url = f"http://{host if host not in ('0.0.0.0', '::') else '127.0.0.1'}:{port}/"
        self.stdout.write(self.style.SUCCESS(f"LambdaLab is starting: open {url}  (Ctrl-C stops it)"))
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with {child.returncode}: stopping the rest")
                        stopping = True
                time.sleep(0.2)
        finally:
            for child in children.values():
                if child.poll() is None:
                    os.killpg(child.pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            for child in children.values():
                try:
                    child.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
            self.stdout.write("stopped")
