"""The student's pages: a course with their progress, a scenario with predict-then-run."""

from __future__ import annotations

import markdown
import nh3
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lambdalab.lab.account import remember_anonymous_owner
from lambdalab.lab.account import session_key as _session_key
from lambdalab.lab.http import client_address, too_many
from lambdalab.lab.services import LabError, Throttled

from . import dashboard, services
from .models import Attempt, Course, Enrollment, Scenario


def _mine(request: HttpRequest):
    if request.user.is_authenticated:
        return Attempt.objects.filter(user=request.user)
    return Attempt.objects.filter(user=None, session_key=_session_key(request))


def rendered(text: str) -> str:
    """Markdown to HTML, then sanitised: whatever an instructor wrote, no script gets through."""
    return nh3.clean(markdown.markdown(text, extensions=["fenced_code"]))


@require_GET
def course_page(request: HttpRequest, slug: str) -> HttpResponse:
    course = get_object_or_404(Course, slug=slug)
    scenarios = list(course.scenarios.all())
    done = {a.scenario_id for a in _mine(request).filter(scenario__course=course, passed=True)}
    return render(request, "courses/course.html", {"course": course, "scenarios": scenarios, "done": done})


def _scenario(slug: str, scenario_slug: str) -> Scenario:
    return get_object_or_404(Scenario.objects.select_related("course"), course__slug=slug, slug=scenario_slug)


@require_GET
@ensure_csrf_cookie
def scenario_page(request: HttpRequest, slug: str, scenario_slug: str) -> HttpResponse:
    scenario = _scenario(slug, scenario_slug)
    chosen = request.GET.get("attempt", "")
    attempt = None
    if chosen.isdigit():  # one of the visitor's own attempts (an instructor's preview)
        attempt = _mine(request).filter(scenario=scenario, pk=int(chosen)).first()
    if attempt is None:
        try:
            attempt = services.attempt_open(
                scenario=scenario,
                user=request.user,
                session_key=_session_key(request),
                address=client_address(request),
            )
        except Throttled as exc:
            return too_many(request, exc)
    remember_anonymous_owner(request, request.session.session_key)
    past = _mine(request).filter(scenario=scenario, preview=False).exclude(pk=attempt.pk)[:5]
    return render(
        request,
        "courses/scenario.html",
        {
            "scenario": scenario,
            "instructions": rendered(scenario.instructions),
            "attempt": attempt,
            "state": services.attempt_dict(attempt),
            "past": [services.attempt_dict(a) for a in past],
        },
    )


def _attempt(request: HttpRequest, attempt_id: int) -> Attempt:
    attempt = _mine(request).select_related("scenario").filter(pk=attempt_id).first()
    if attempt is None:
        raise Http404("No such attempt")
    return attempt


@require_POST
def attempt_predict(request: HttpRequest, attempt_id: int) -> HttpResponse:
    attempt = _attempt(request, attempt_id)
    try:
        services.attempt_predict(attempt=attempt, answer=request.POST.get("prediction"))
    except LabError as exc:
        return JsonResponse({"error": {"field": exc.field, "message": exc.message}}, status=400)
    return redirect("courses:scenario", attempt.scenario.course.slug, attempt.scenario.slug)


@require_POST
def attempt_run(request: HttpRequest, attempt_id: int) -> HttpResponse:
    attempt = _attempt(request, attempt_id)
    try:
        services.attempt_run(attempt=attempt)
    except LabError as exc:
        return JsonResponse({"error": {"field": exc.field, "message": exc.message}}, status=400)
    return JsonResponse(services.attempt_dict(attempt), status=202)


@require_GET
def attempt_detail(request: HttpRequest, attempt_id: int) -> JsonResponse:
    return JsonResponse(services.attempt_dict(_attempt(request, attempt_id)))


@require_POST
def attempt_again(request: HttpRequest, attempt_id: int) -> HttpResponse:
    """A new attempt at the same scenario (a new function from the starter code)."""
    attempt = _attempt(request, attempt_id)
    if attempt.status == Attempt.Status.OPEN:
        Attempt.objects.filter(pk=attempt.pk).update(status=Attempt.Status.FAILED, error="abandoned")
    return redirect("courses:scenario", attempt.scenario.course.slug, attempt.scenario.slug)


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest) -> HttpResponse:
    """Join a course with its class code: an account, or this browser."""
    error = None
    if request.method == "POST":
        code = request.POST.get("code", "").strip()
        name = request.POST.get("name", "").strip()[:64]
        course = Course.objects.filter(class_code=code).first()
        if course is None:
            error = "No course has that class code"
        elif not name and not request.user.is_authenticated:
            error = "Give the name your instructor will see"
        else:
            owner = (
                {"user": request.user}
                if request.user.is_authenticated
                else {"session_key": _session_key(request)}
            )
            Enrollment.objects.get_or_create(
                course=course, **owner, defaults={"name": name or request.user.get_username()}
            )
            return redirect("courses:course", course.slug)
    return render(request, "courses/join.html", {"error": error}, status=400 if error else 200)


@require_GET
@staff_member_required
def course_dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    if not request.user.has_perm("courses.view_course"):
        raise Http404("No such course")
    course = get_object_or_404(Course, slug=slug)
    return render(request, "courses/dashboard.html", {"course": course, **dashboard.figures(course)})
