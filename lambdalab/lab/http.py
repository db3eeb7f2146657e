"""The JSON API's conventions, for every app's views: a body that is a JSON object, only the fields
a call knows, a LabError answered as ``{"error": {type, field, message}}``, who asks and from where,
and the page a bound refuses."""

from __future__ import annotations

import functools
import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from . import services


def error(
    message: str, *, status: int = 400, field: str | None = None, code: str = "InvalidParameterValueException"
) -> JsonResponse:
    return JsonResponse({"error": {"type": code, "field": field, "message": message}}, status=status)


def api(view):
    """JSON in and out; a LabError is a JSON error with the field and the reason."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except services.LabError as exc:
            return error(exc.message, status=exc.status, field=exc.field, code=exc.code)

    return wrapper


def json_body(request: HttpRequest) -> dict:
    """The request's JSON object ({} if none); else an InvalidRequestContentException."""
    if not request.body:
        return {}
    try:
        data = json.loads(request.body)
    except ValueError as exc:
        raise services.LabError(
            f"The request body is not JSON: {exc}", code="InvalidRequestContentException"
        ) from None
    if not isinstance(data, dict):
        raise services.LabError(
            "The request body must be a JSON object", code="InvalidRequestContentException"
        )
    return data


def only(data: dict, allowed: tuple[str, ...]) -> dict:
    """``data``, if every field in it is one of ``allowed``; else the first unknown one is named."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise services.LabError(f"Unknown field: {unknown[0]}", field=unknown[0])
    return data


def client_address(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "unknown")


def too_many(request: HttpRequest, exc: services.LabError) -> HttpResponse:
    """A page (not JSON) refused for a bound: what and when to try again."""
    return render(request, "lab/too_many.html", {"message": exc.message}, status=429)
