"""A student's side of a scenario: open it (their own function), predict, run it, see the checks."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from lambdalab.lab import services as lab
from lambdalab.lab.services import LabError

from . import plans
from .models import Attempt, Scenario

log = logging.getLogger(__name__)


def _owner(user, session_key: str) -> dict:
    return {"user": user} if user.is_authenticated else {"user": None, "session_key": session_key}


@transaction.atomic
def attempt_open(*, scenario: Scenario, user, session_key: str, address: str | None = None) -> Attempt:
    """The student's current attempt at the scenario (one with its own function), made if needed."""
    owner = _owner(user, session_key)
    attempt = Attempt.objects.filter(
        scenario=scenario, status=Attempt.Status.OPEN, preview=False, **owner
    ).first()
    if attempt is not None and attempt.function_id is not None:
        return attempt
    function = lab.function_create(
        owner=user,
        session_key=session_key,
        address=address,
        name=scenario.slug[:64],
        code=scenario.starter_code,
        event=scenario.default_event,
        locked=tuple(scenario.locked),
        **scenario.settings,
    )
    return Attempt.objects.create(scenario=scenario, function=function, **owner)


@transaction.atomic
def attempt_preview(
    *, scenario: Scenario, user, code: str = "solution", address: str | None = None
) -> Attempt:
    """An instructor's preview: a fresh attempt (never counted) on a function of their own with the
    reference solution (or the starter code), to read the page and run the checks as a student would."""
    if code not in ("solution", "starter"):
        raise LabError("Preview the solution or the starter code", field="code")
    source = (
        scenario.solution_code if code == "solution" and scenario.solution_code else scenario.starter_code
    )
    function = lab.function_create(
        owner=user,
        session_key="",
        address=address,
        name=f"preview-{scenario.slug}"[:64],
        code=source,
        event=scenario.default_event,
        locked=tuple(scenario.locked),
        **scenario.settings,
    )
    return Attempt.objects.create(scenario=scenario, function=function, user=user, preview=True)


@transaction.atomic
def scenario_clone(*, scenario: Scenario) -> Scenario:
    """A copy of the scenario at the end of its course, with a free slug, to change at will."""
    taken = set(Scenario.objects.filter(course=scenario.course_id).values_list("slug", flat=True))
    base = f"{scenario.slug[:40]}-copy"
    slug = next(s for s in (base, *(f"{base}-{n}" for n in range(2, 1000))) if s not in taken)
    last = Scenario.objects.filter(course=scenario.course_id).order_by("-order").first()
    clone = Scenario.objects.get(pk=scenario.pk)
    clone.pk = None
    clone.slug = slug
    clone.title = f"{scenario.title} (copy)"[:200]
    clone.order = (last.order if last else 0) + 1
    clone.save()
    return clone


def attempt_predict(*, attempt: Attempt, answer) -> Attempt:
    """Record the prediction: before the run, once."""
    question = attempt.scenario.question
    if not question:
        raise LabError("This scenario asks no question", field="prediction")
    if attempt.prediction is not None or attempt.status != Attempt.Status.OPEN:
        raise LabError("The prediction was made already; it cannot change", field="prediction")
    if question["kind"] == "choice" and answer not in question["choices"]:
        raise LabError("Choose one of the answers", field="prediction")
    if question["kind"] == "number":
        try:
            answer = float(answer)
        except (TypeError, ValueError):
            raise LabError("Give a number", field="prediction") from None
        if answer.is_integer():
            answer = int(answer)
    updated = Attempt.objects.filter(
        pk=attempt.pk, prediction__isnull=True, status=Attempt.Status.OPEN
    ).update(prediction=answer, predicted=timezone.now())
    if not updated:  # another request got there first
        raise LabError("The prediction was made already; it cannot change", field="prediction")
    attempt.refresh_from_db()
    return attempt


def attempt_run(*, attempt: Attempt) -> Attempt:
    """Start the scenario's plan on the student's function (on a worker); the checks follow."""
    if attempt.scenario.question and attempt.prediction is None:
        raise LabError("Answer the question before you run it", field="prediction")
    updated = Attempt.objects.filter(pk=attempt.pk, status=Attempt.Status.OPEN).update(
        status=Attempt.Status.RUNNING
    )
    if not updated:
        raise LabError("This attempt has run already: open the scenario again for a new one")
    from .tasks import run_attempt

    transaction.on_commit(lambda: run_attempt.delay(attempt.pk))
    attempt.refresh_from_db()
    return attempt


def attempt_execute(*, attempt_id: int) -> None:
    """On a worker: carry out the plan, evaluate the checks, keep the results."""
    attempt = Attempt.objects.select_related("scenario", "function").get(pk=attempt_id)
    scenario = attempt.scenario
    owner = lab.owner_tag(attempt.user_id, attempt.session_key)
    try:
        seen = plans.run(
            function=attempt.function, plan=scenario.plan, owner_tag=owner, address=f"course:{owner}"
        )
    except (plans.PlanError, LabError) as exc:
        Attempt.objects.filter(pk=attempt.pk).update(
            status=Attempt.Status.FAILED, error=str(exc)[:1000], finished=timezone.now()
        )
        return
    results = plans.evaluate(scenario.checks, seen)
    Attempt.objects.filter(pk=attempt.pk).update(
        status=Attempt.Status.DONE,
        results=[
            {"check": r.check["check"], "passed": r.passed, "explanation": r.explanation, "found": r.found}
            for r in results
        ],
        passed=all(r.passed for r in results),
        finished=timezone.now(),
    )


def attempt_dict(attempt: Attempt) -> dict:
    question = attempt.scenario.question
    data = {
        "id": attempt.pk,
        "status": attempt.status,
        "function": str(attempt.function_id) if attempt.function_id else None,
        "prediction": attempt.prediction,
        "results": attempt.results,
        "passed": attempt.passed,
        "error": attempt.error or None,
    }
    if question and attempt.status in (Attempt.Status.DONE, Attempt.Status.FAILED):
        data["answer"] = question["answer"]
        data["prediction_right"] = attempt.prediction == question["answer"] or (
            question["kind"] == "number"
            and attempt.prediction is not None
            and abs(float(attempt.prediction) - float(question["answer"])) < 1e-9
        )
        data["explain"] = question.get("explain", "")
    return data
