"""Every built-in scenario, its reference solution run through a real worker: its checks pass.
The course cannot drift from what the lab does."""

from __future__ import annotations

import secrets

import pytest

from lambdalab.courses import builtin, plans
from lambdalab.courses.models import Course, Scenario
from lambdalab.lab import services

pytestmark = pytest.mark.slow


@pytest.fixture
def course(transactional_db, lab_worker):
    builtin.load(Course, Scenario)  # transactional tests start from empty tables
    return Course.objects.get(slug=builtin.SLUG)


@pytest.mark.parametrize("slug", [s["slug"] for s in builtin.SCENARIOS])
def test_the_reference_solution_passes_its_checks(course, slug):
    scenario = course.scenarios.get(slug=slug)
    settings = dict(scenario.settings)
    function = services.function_create(
        session_key=secrets.token_hex(16),
        name=scenario.slug,
        code=scenario.solution_code,
        event=scenario.default_event,
        **settings,
    )
    seen = plans.run(
        function=function, plan=scenario.plan, owner_tag=f"t-{slug}", address=f"course-{slug}", timeout_s=120
    )
    results = plans.evaluate(scenario.checks, seen)
    failed = [f"{r.check['check']}: {r.explanation} ({r.found})" for r in results if not r.passed]
    assert not failed, failed
    assert all(r.explanation for r in results)


@pytest.mark.parametrize("slug", [s["slug"] for s in builtin.SCENARIOS if "starter" in s])
def test_the_starter_code_of_a_fix_it_scenario_fails_a_check(course, slug):
    """What the student starts from must not already pass: the checks tell it from the fix."""
    scenario = course.scenarios.get(slug=slug)
    assert scenario.starter_code != scenario.solution_code
    function = services.function_create(
        session_key=secrets.token_hex(16),
        name=f"{scenario.slug}-starter",
        code=scenario.starter_code,
        event=scenario.default_event,
        **dict(scenario.settings),
    )
    seen = plans.run(
        function=function, plan=scenario.plan, owner_tag=f"s-{slug}", address=f"starter-{slug}", timeout_s=120
    )
    failed = [r for r in plans.evaluate(scenario.checks, seen) if not r.passed]
    assert failed and all(r.explanation for r in failed)
