"""The lab page and the JSON API it is a client of (docs/api.md). Thin: parse, check, call a service."""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sandbox import isolation

from . import account, placement, selectors, services, stream, tuning
from .http import api, client_address, error, json_body, only, too_many
from .models import Invocation

_session_key = account.session_key


def _owner_tag(request: HttpRequest) -> str:
    user_id = request.user.pk if request.user.is_authenticated else None
    return services.owner_tag(user_id, None if user_id else _session_key(request))


def _function_or_404(request, function_id):
    function = selectors.function_for(
        user=request.user, session_key=request.session.session_key, function_id=function_id
    )
    if function is None:
        raise _NotFound()
    return function


class _NotFound(services.LabError):
    status = 404

    def __init__(self, message: str = "Function not found"):
        super().__init__(message, code="ResourceNotFoundException")


# -- the page ---------------------------------------------------------------------------------


@require_GET
@ensure_csrf_cookie
def lab_page(request: HttpRequest, function_id=None) -> HttpResponse:
    """The lab. Without an id: the visitor's most recent function, made on the first visit."""
    session_key = _session_key(request)
    account.remember_anonymous_owner(request, session_key)
    mine = selectors.functions_of(user=request.user, session_key=session_key)
    if function_id is None:
        function = mine.select_related("latest").first()
        if function is None:
            try:
                function = services.function_create(
                    owner=request.user, session_key=session_key, address=client_address(request)
                )
            except services.Throttled as exc:
                return too_many(request, exc)
    else:
        function = selectors.function_for(user=request.user, session_key=session_key, function_id=function_id)
        if function is None:
            return render(request, "lab/not_found.html", status=404)
    return render(
        request,
        "lab/page.html",
        {
            "function": function,
            "boot": {
                "function": selectors.function_dict(function),
                "functions": [{"id": str(f.pk), "name": f.name} for f in mine[:50]],
                "invocations": selectors.invocations_of(function=function, limit=200),
                "environments": stream.environments(str(function.pk)),
                "seq": stream.last_seq(str(function.pk)),
                "limits": {
                    "max_burst": settings.LAB_MAX_BURST,
                    "provisioned_concurrency": [0, settings.LAB_MAX_PROVISIONED],
                    **{k: v for k, v in services.LIMITS.items()},
                },
                "isolation": _isolation(),
                "tuning": _tuning_boot(function),
            },
        },
    )


@functools.lru_cache(maxsize=1)
def _isolation() -> dict:
    report = isolation.probe(isolation.disabled_from_env())
    return {
        "level": report.level,
        "weak": [
            {"name": f.name, "level": f.level, "detail": f.detail}
            for f in report.features
            if f.level != "strong"
        ],
        "notes": list(report.notes),
    }


# -- functions ------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@ensure_csrf_cookie  # a script's first GET gets the token its writes need
@api
def functions(request: HttpRequest) -> JsonResponse:
    session_key = _session_key(request)
    if request.method == "POST":
        data = json_body(request)
        function = services.function_create(
            owner=request.user,
            session_key=session_key,
            address=client_address(request),
            **only(data, CREATABLE),
        )
        return JsonResponse(selectors.function_dict(function), status=201)
    mine = selectors.functions_of(user=request.user, session_key=session_key).select_related("latest")
    return JsonResponse({"functions": [selectors.function_dict(f) for f in mine[:200]]})


CREATABLE = (
    "name",
    "code",
    "handler",
    "memory_mb",
    "timeout_s",
    "tmp_mb",
    "environment",
    "event",
    "idle_timeout_s",
    "reserved_concurrency",
    "provisioned_concurrency",
    "always_cold",
)


@require_http_methods(["GET", "PATCH", "DELETE"])
@api
def function_detail(request: HttpRequest, function_id) -> JsonResponse:
    function = _function_or_404(request, function_id)
    if request.method == "DELETE":
        services.function_delete(function=function)
        return JsonResponse({}, status=204)
    if request.method == "PATCH":
        update = services.function_update(function=function, **only(json_body(request), CREATABLE))
        return JsonResponse(
            {
                **selectors.function_dict(update.function),
                "new_revision": update.new_revision,
                "changed": update.changed,
            }
        )
    return JsonResponse({**selectors.function_dict(function), "seq": stream.last_seq(str(function.pk))})


@require_POST
@api
def function_invoke(request: HttpRequest, function_id) -> JsonResponse:
    function = _function_or_404(request, function_id)
    data = only(json_body(request), ("mode", "count", "event"))
    asked = services.invocation_request(
        function=function,
        mode=data.get("mode", "once"),
        count=data.get("count", 1),
        event=data.get("event"),
        owner_tag=_owner_tag(request),
        address=client_address(request),
    )
    return JsonResponse(
        {"batch": asked.batch, "request_ids": asked.request_ids, "revision": asked.revision}, status=202
    )


@require_GET
@api
def function_invocations(request: HttpRequest, function_id) -> JsonResponse:
    function = _function_or_404(request, function_id)
    try:
        limit = max(1, min(1000, int(request.GET.get("limit", "100"))))
    except ValueError:
        raise services.LabError("limit must be a number", field="limit") from None
    return JsonResponse({"invocations": selectors.invocations_of(function=function, limit=limit)})


@require_http_methods(["GET", "POST"])
@api
def function_environments(request: HttpRequest, function_id) -> JsonResponse:
    function = _function_or_404(request, function_id)
    if request.method == "POST":  # shut them down now
        workers = services.environments_shutdown(function=function)
        return JsonResponse({"workers": workers}, status=202)
    return JsonResponse({"environments": stream.environments(str(function.pk))})


class _Pending(Exception):
    """Asked for, not ended: its worker writes its row when it ends."""


@require_POST
@api
def environment_control(request: HttpRequest, function_id, environment_id: str) -> JsonResponse:
    function = _function_or_404(request, function_id)
    data = only(json_body(request), ("action", "seconds"))
    worker = services.environment_control(
        function=function,
        environment_id=environment_id,
        action=data.get("action", ""),
        seconds=data.get("seconds", 0),
    )
    return JsonResponse({"worker": worker}, status=202)


@require_GET
@api
def environment_state(request: HttpRequest, function_id, environment_id: str) -> JsonResponse:
    """The State inspector: a frozen environment's names and /tmp, without running its code."""
    function = _function_or_404(request, function_id)
    return JsonResponse(services.environment_inspect(function=function, environment_id=environment_id))


def _invocation_or_404(request, request_id) -> Invocation:
    # Pending first, then the table: a worker writes the row before it stops being pending, so a
    # call that is in neither place when looked at in this order does not exist.
    function_id = placement.pending(str(request_id))
    try:
        row = Invocation.objects.select_related("version", "function").get(pk=request_id)
    except (Invocation.DoesNotExist, ValueError, ValidationError):
        if function_id is not None and _function_or_404(request, function_id):
            raise _Pending() from None
        raise _NotFound("Invocation not found") from None
    if not row.function.can_be_driven_by(request.user, request.session.session_key):
        raise _NotFound("Invocation not found")
    return row


@require_GET
@api
def invocation_detail(request: HttpRequest, request_id) -> JsonResponse:
    try:
        row = _invocation_or_404(request, request_id)
    except _Pending:
        return JsonResponse({"request_id": str(request_id), "status": "queued"})
    return JsonResponse(selectors.invocation_dict(row, full=True))


@require_GET
@api
def invocation_response(request: HttpRequest, request_id) -> HttpResponse:
    try:
        row = _invocation_or_404(request, request_id)
    except _Pending:
        return error("The invocation has not ended yet", status=409, code="ResourceConflictException")
    return HttpResponse(bytes(row.response), content_type="application/json")


# -- power tuning ----------------------------------------------------------------------------


def _tuning_boot(function) -> dict:
    return {
        "last": tuning.tuning_latest(function=function),
        "sizes": list(tuning.DEFAULT_SIZES),
        "count": tuning.DEFAULT_COUNT,
        "max_count": tuning.MAX_COUNT,
        "max_sizes": tuning.MAX_SIZES,
        "max_memory_mb": tuning.max_memory_mb(),
    }


@require_POST
@api
def function_tunings(request: HttpRequest, function_id) -> JsonResponse:
    function = _function_or_404(request, function_id)
    data = only(json_body(request), ("sizes", "count", "event"))
    state = tuning.tuning_request(
        function=function,
        sizes=data.get("sizes", list(tuning.DEFAULT_SIZES)),
        count=data.get("count", tuning.DEFAULT_COUNT),
        event=data.get("event"),
        owner_tag=_owner_tag(request),
        address=client_address(request),
    )
    return JsonResponse(state, status=202)


@require_GET
@api
def function_tuning(request: HttpRequest, function_id, tune_id: str) -> JsonResponse:
    function = _function_or_404(request, function_id)
    state = tuning.tuning_state(function=function, tune_id=tune_id)
    if state is None:
        raise _NotFound("Tuning not found")
    return JsonResponse(state)


@require_GET
def isolation_report(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_isolation())
