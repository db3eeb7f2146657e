"""Shared links in a real browser: share a run from the lab page, open the link as someone else,
replay it, and run it yourself."""

from __future__ import annotations

import re

import pytest

from . import test_lab_page as lab_page
from .conftest import shot

pytestmark = pytest.mark.slow


def share_from_the_lab(page, title: str) -> str:
    """Share through the dialog, as a student does; the link it gives."""
    page.get_by_role("button", name="Share", exact=True).click()
    dialog = page.get_by_role("dialog", name="Share this function")
    dialog.get_by_label("Title").fill(title)
    assert dialog.get_by_label("Include the recorded run").is_checked()
    dialog.get_by_role("button", name="Create link").click()
    link = dialog.get_by_label("Link")
    page.wait_for_function("document.getElementById('share-url').value.includes('/s/')", timeout=15_000)
    return link.input_value()


def open_as_someone_else(browser, lab_server, url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=lab_server)
    viewer = context.new_page()
    viewer.errors = []
    viewer.on("pageerror", lambda exc: viewer.errors.append(str(exc)))
    viewer.goto(url)
    viewer.wait_for_function("window.lambdalab && window.lambdalab.ready === true", timeout=30_000)
    return viewer


def test_a_shared_run_replays_for_someone_else_who_then_runs_it_themselves(page, browser, lab_server):
    lab_page.set_code(page, lab_page.COUNTING)
    lab_page.invoke(page, 2)
    author_function = page.evaluate("window.lambdalab.functionId")
    url = share_from_the_lab(page, "Cold, then warm")
    assert re.fullmatch(rf"{re.escape(lab_server)}/s/[A-Za-z0-9_-]{{11}}", url)
    # the same content again: the same link
    page.get_by_role("button", name="Close").click()
    assert share_from_the_lab(page, "Cold, then warm") == url
    shot(page, "9-share-dialog")
    assert page.get_by_text("This content was shared before: the same link.").is_visible()

    viewer = open_as_someone_else(browser, lab_server, url)
    assert viewer.get_by_role("heading", name="Cold, then warm").is_visible()
    signals = viewer.evaluate("window.lambdalab")
    assert (signals["lanes"], signals["invocations"], signals["ended"]) == (1, 2, 2)
    assert viewer.locator(".tl-lanes .lane").count() == 1
    assert viewer.locator(".tl-lanes .sp-invoke").count() == 2
    grid = viewer.get_by_role("grid", name="Invocations, newest first")
    assert grid.get_by_role("gridcell", name=re.compile(r"\bcold\b")).count() == 1
    assert grid.get_by_role("gridcell", name=re.compile(r"\bwarm\b")).count() == 1
    assert viewer.get_by_label("Function logs").get_by_text("call 2").is_visible()  # the newest call's log

    # the code is read-only: typing changes nothing
    code = viewer.locator("#code-view .cm-content")
    before = code.inner_text()
    code.click()
    viewer.keyboard.type("oops")
    assert code.inner_text() == before and "INSTANCE_ID" in before

    # Replay: the run starts empty and plays to its end, in time order
    viewer.get_by_role("button", name="▶ Replay").click()
    viewer.wait_for_function("window.lambdalab.playing && window.lambdalab.ended < 2", timeout=5_000)
    viewer.wait_for_function("window.lambdalab.replays >= 1", timeout=30_000)
    signals = viewer.evaluate("window.lambdalab")
    assert signals["applied"] == signals["total"] and (signals["lanes"], signals["ended"]) == (1, 2)
    shot(viewer, "10-shared-link")

    viewer.get_by_role("button", name="Run it yourself").click()
    viewer.wait_for_url(re.compile(r"/f/[0-9a-f-]{36}/$"), timeout=15_000)
    viewer.wait_for_function("window.lambdalab && window.lambdalab.ready === true", timeout=30_000)
    forked = viewer.evaluate("window.lambdalab.functionId")
    assert forked != author_function
    assert "INSTANCE_ID" in viewer.locator("#code-editor .cm-content").inner_text()
    assert viewer.get_by_label("Function name").input_value() == "Cold, then warm"
    before = viewer.evaluate("window.lambdalab.ended")
    viewer.get_by_role("button", name="Invoke", exact=True).click()
    viewer.wait_for_function(f"window.lambdalab.ended >= {before + 1}", timeout=60_000)
    assert viewer.evaluate("window.lambdalab.calls()")[0]["cold"] is True  # their own environment
    assert not viewer.errors, viewer.errors
    viewer.context.close()


def test_what_a_shared_run_printed_or_returned_is_shown_as_text_never_run(page, browser, lab_server):
    payload = "<img src=x onerror=window.__xss=1><script>window.__xss=2</script>"
    lab_page.set_code(
        page, f"def lambda_handler(event, context):\n    print({payload!r})\n    return {payload!r}\n"
    )
    lab_page.invoke(page)
    url = share_from_the_lab(page, '<script>window.__xss=3</script>"><img src=x onerror=window.__xss=4>')
    viewer = open_as_someone_else(browser, lab_server, url)
    viewer.get_by_role("grid", name="Invocations, newest first").get_by_role("gridcell").first.click()
    viewer.get_by_label("Function logs").wait_for()
    assert viewer.evaluate("window.__xss") is None
    assert viewer.locator("img[src=x]").count() == 0
    assert viewer.get_by_label("Function logs").get_by_text("<img src=x onerror=window.__xss=1>").is_visible()
    assert viewer.get_by_role("heading", name="<script>window.__xss=3</script>").is_visible()
    assert not viewer.errors, viewer.errors
    viewer.context.close()
