"""A student's run of a predict-then-run scenario, in a real browser."""

from __future__ import annotations

import pytest

from lambdalab.courses import builtin
from lambdalab.courses.models import Course, Enrollment, Scenario

from .conftest import shot, shut_down_everything

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
    shut_down_everything()
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


@pytest.fixture
def instructor(browser, lab_server, transactional_db):
    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.contenttypes.models import ContentType

    from lambdalab.courses import roles

    builtin.load(Course, Scenario)
    roles.ensure_instructors(Group, Permission, ContentType)
    user = User.objects.create_user("grace", password="teach-lambda-1", is_staff=True)
    user.groups.add(Group.objects.get(name=roles.INSTRUCTORS))
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=lab_server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill("teach-lambda-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")
    yield page
    context.close()
    shut_down_everything()
    assert not errors, errors


def test_an_instructor_creates_a_scenario_with_a_locked_setting_previews_it_and_clones_it(instructor):
    page = instructor
    course = Course.objects.get(slug=builtin.SLUG)
    page.goto("/admin/courses/scenario/add/")
    page.get_by_label("Course").select_option(str(course.pk))
    page.get_by_label("Order").fill("50")
    page.get_by_label("Slug").fill("two-calls")  # first: the title then leaves it alone
    page.get_by_label("Title").fill("Two calls, one environment")
    page.get_by_label("Instructions").fill("Call it **twice**. <script>window.pwned = 1</script>")
    page.get_by_label("Starter code").fill("def lambda_handler(event, context):\n    return 'todo'\n")
    page.get_by_label("Solution code").fill(
        "import os\nn = 0\ndef lambda_handler(event, context):\n    global n\n    n += 1\n    return {'n': n}\n"
    )
    page.get_by_label("Settings").fill('{"memory_mb": 256, "timeout_s": 2}')
    page.get_by_label("Locked").fill('["memory_mb"]')
    page.get_by_label("Plan").fill('[{"do": "invoke", "count": 2, "mode": "series"}]')
    page.get_by_label("Checks").fill(
        '[{"check": "same_environment", "steps": [0], "explain_pass": "Both calls ran in one environment.",'
        ' "explain_fail": "The calls ran in different environments."},'
        ' {"check": "response_field", "step": 0, "call": 1, "field": "n", "equals": 2,'
        ' "explain_pass": "The second call saw n = 2.", "explain_fail": "n was not 2 on the second call."}]'
    )
    page.get_by_role("button", name="Save and continue editing").click()
    page.wait_for_load_state()
    errors = page.locator(".errornote, .errorlist")
    assert errors.count() == 0, errors.all_inner_texts()
    scenario = Scenario.objects.get(course=course, slug="two-calls")
    assert scenario.locked == ["memory_mb"]
    Enrollment.objects.create(course=course, user=scenario_author(), name="grace")  # she is in the class too

    # preview with the reference solution: the scenario page, as a student sees it, on a function of grace's
    page.get_by_role("button", name="Preview with the solution").click()
    page.wait_for_url(f"**/courses/{builtin.SLUG}/two-calls/?attempt=*")
    assert page.get_by_text("Preview: a function of your own with the reference solution").is_visible()
    assert page.locator(".instructions strong").inner_text() == "twice"
    assert page.evaluate("window.pwned") is None  # the script was sanitised away
    assert page.get_by_text("Set by the scenario (locked): memory_mb").is_visible()
    page.get_by_role("button", name="Run the scenario").click()
    page.wait_for_function("window.scenario.state.status === 'done'", timeout=60_000)
    assert page.get_by_text("Every check passed").is_visible()
    assert page.get_by_text("The second call saw n = 2.").is_visible()
    shot(page, "8-instructor-preview")
    preview = scenario.attempts.get()
    assert preview.preview and preview.passed
    assert preview.function.latest.memory_mb == 256 and preview.function.locked == ["memory_mb"]

    # the locked setting is refused by the server on the preview's function too
    answer = page.request.patch(
        f"/api/functions/{preview.function_id}",
        data={"memory_mb": 512},
        headers={"X-CSRFToken": next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")},
    )
    assert answer.status == 400 and "set by the course scenario" in answer.text()

    # the preview is not counted on the class dashboard
    page.goto(f"/courses/{builtin.SLUG}/dashboard/")
    row = page.locator("tr", has_text="Two calls, one environment")
    assert row.locator("td").nth(1).inner_text() == "0"

    # clone it from the change list, then reorder it before the original
    page.goto(f"/admin/courses/scenario/?course__id__exact={course.pk}")
    page.locator("tr", has_text="Two calls, one environment").locator("input.action-select").check()
    page.locator("select[name=action]").select_option("clone")
    page.get_by_role("button", name="Go").click()
    page.wait_for_load_state()
    assert page.get_by_text("Cloned: two-calls-copy").is_visible()
    clone = Scenario.objects.get(course=course, slug="two-calls-copy")
    assert (clone.plan, clone.checks, clone.locked) == (scenario.plan, scenario.checks, scenario.locked)
    assert clone.order == 51
    page.locator("tr", has_text="Two calls, one environment (copy)").locator("input[name$='-order']").fill(
        "0"
    )
    page.get_by_role("button", name="Save").click()
    page.wait_for_load_state()
    assert list(course.scenarios.values_list("slug", flat=True))[0] == "two-calls-copy"
    page.goto(f"/courses/{builtin.SLUG}/")
    assert page.locator("ol.scenarios li a").first.inner_text() == "Two calls, one environment (copy)"


def scenario_author():
    from django.contrib.auth.models import User

    return User.objects.get(username="grace")
