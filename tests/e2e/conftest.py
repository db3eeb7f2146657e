"""Browser tests: Debian's Chromium driven by Playwright against a real web server process
(uvicorn: Django and the WebSocket), a real worker, real Redis and jails."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

# Playwright's sync API keeps an event loop in this thread; Django's ORM, used by fixtures here,
# must not mistake the test for async code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "tests" / "e2e" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab_server(django_db_setup, lab_worker):
    """The web server, as `make run` runs it (uvicorn here: one process), on a free port."""
    port = _free_port()
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "REDIS_URL": settings.REDIS_URL,
        "DATABASE_URL": f"sqlite:///{db['NAME']}",
        "DEBUG": "True",
    }
    log = open("/tmp/lab-test-web.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "lambdalab.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start: see /tmp/lab-test-web.log") from None
            time.sleep(0.05)  # polling the port the server is about to listen on
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module: Playwright's sync API holds an event loop in this thread
    while it runs, which tests that use asgiref's async_to_sync must not find there."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, lab_server, transactional_db):
    """A new visitor (its own cookies) on the lab page, once the page says it is live."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=lab_server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/")
    page.wait_for_function("window.lambdalab && window.lambdalab.ready === true", timeout=30_000)
    page.errors = errors
    yield page
    context.close()
    shut_down_everything()
    assert not errors, f"the page raised: {errors}"


def shut_down_everything(timeout: float = 30.0) -> None:
    """The test's environments shut down (provisioned ones too) before its tables are emptied:
    every page comes from 127.0.0.1, and live environments are bounded per address."""
    from lambdalab.lab import services, stream
    from lambdalab.lab.models import Function

    functions = list(Function.objects.all())
    for function in functions:
        Function.objects.filter(pk=function.pk).update(provisioned_concurrency=0)
        services.environments_shutdown(function=function)
    deadline = time.monotonic() + timeout
    while any(stream.environments(str(f.pk)) for f in functions):
        if time.monotonic() > deadline:
            raise AssertionError("the test's environments did not shut down")
        time.sleep(0.05)  # each worker shuts its own down and publishes their ends


def shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)
