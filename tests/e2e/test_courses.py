"""A student's run of a predict-then-run scenario, in a real browser."""

from __future__ import annotations

import pytest

from lambdalab.courses import builtin
from lambdalab.courses.models import Course, Scenario

from .conftest import shot

pytestmark = pytest.mark.slow


@pytest.fixture
def student(browser, lab_server, transactional_db):
    builtin.load(Course, Scenario)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=lab_server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def test_a_student_predicts_then_runs_and_sees_the_prediction_beside_what_happened(student):
    page = student
    page.goto(f"/courses/{builtin.SLUG}/")
    page.get_by_role("link", name="Warm starts reuse the environment").click()
    run = page.get_by_role("button", name="Run the scenario")
    assert run.is_disabled()  # predict first
    page.get_by_label("Your prediction").fill("1")
    page.get_by_role("button", name="Lock in my prediction").click()
    page.wait_for_load_state()
    assert page.get_by_text("Your prediction is locked in: 1").is_visible()
    assert page.get_by_label("Your prediction").is_disabled()
    page.get_by_role("button", name="Run the scenario").click()
    page.wait_for_function("window.scenario.state.status === 'done'", timeout=60_000)
    assert page.get_by_text("Every check passed").is_visible()
    assert page.get_by_text("not this time").is_visible()  # 1 was the emulator's answer
    assert page.get_by_text("All three calls ran in the same environment").is_visible()
    shot(page, "6-scenario-predicted-and-run")
    # the course page shows the progress
    page.goto(f"/courses/{builtin.SLUG}/")
    assert page.get_by_text("✓ passed").count() == 1


def test_a_locked_setting_shows_as_locked_in_the_lab(student):
    page = student
    page.goto(f"/courses/{builtin.SLUG}/timeout-and-reset/")
    page.get_by_role("link", name="Open your function in the lab").click()
    page.wait_for_function("window.lambdalab && window.lambdalab.ready === true", timeout=30_000)
    timeout = page.get_by_label("Timeout (s)")
    assert timeout.is_disabled() and timeout.input_value() == "1"
    assert page.get_by_text("set by the course scenario").first.is_visible()
    shot(page, "7-locked-setting")
