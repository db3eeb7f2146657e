"""A student's attempt: their own function with the scenario's locked settings, a prediction made
before the run and kept, the run's checks."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import AnonymousUser

from lambdalab.courses import builtin, services
from lambdalab.courses.models import Attempt, Course, Scenario
from lambdalab.lab import services as lab
from lambdalab.lab.services import LabError


@pytest.fixture
def scenarios(transactional_db):
    builtin.load(Course, Scenario)
    return {s.slug: s for s in Scenario.objects.all()}


def open_attempt(scenario) -> Attempt:
    return services.attempt_open(scenario=scenario, user=AnonymousUser(), session_key="s" * 32)


def test_a_locked_setting_is_refused_by_the_server(scenarios):
    attempt = open_attempt(scenarios["timeout-and-reset"])
    function = attempt.function
    assert function.locked == ["timeout_s"] and function.latest.timeout_s == 1
    with pytest.raises(LabError) as refused:
        lab.function_update(function=function, timeout_s=30)
    assert refused.value.field == "timeout_s" and "set by the course scenario" in refused.value.message
    assert lab.function_update(function=function, memory_mb=256).new_revision  # the rest is the student's


def test_the_prediction_comes_first_and_cannot_change(scenarios):
    attempt = open_attempt(scenarios["instance-reuse"])
    with pytest.raises(LabError, match="Answer the question"):
        services.attempt_run(attempt=attempt)
    with pytest.raises(LabError, match="Give a number"):
        services.attempt_predict(attempt=attempt, answer="three")
    services.attempt_predict(attempt=attempt, answer="1")
    with pytest.raises(LabError, match="cannot change"):
        services.attempt_predict(attempt=attempt, answer="3")
    attempt.refresh_from_db()
    assert attempt.prediction == 1.0


@pytest.mark.slow
def test_a_run_checks_what_happened_and_sets_the_prediction_beside_it(scenarios, lab_worker):
    attempt = open_attempt(scenarios["instance-reuse"])
    services.attempt_predict(attempt=attempt, answer="1")  # the emulator's answer: wrong on Lambda
    services.attempt_run(attempt=attempt)
    deadline = time.monotonic() + 60
    while attempt.status in (Attempt.Status.OPEN, Attempt.Status.RUNNING):
        assert time.monotonic() < deadline, "the run never finished"
        time.sleep(0.1)  # a worker runs the plan and writes the attempt once, at the end
        attempt.refresh_from_db()
    state = services.attempt_dict(attempt)
    assert state["status"] == "done" and state["passed"] is True
    assert all(r["passed"] for r in state["results"]) and len(state["results"]) == 3
    assert state["answer"] == 3 and state["prediction_right"] is False and "warm" in state["explain"]
    with pytest.raises(LabError, match="run already"):
        services.attempt_run(attempt=attempt)
