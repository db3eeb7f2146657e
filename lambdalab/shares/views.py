"""Shared links: made through the JSON API, opened read-only at /s/<id>, forked by a POST.
Thin: parse, check, call a service (docs/api.md)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from lambdalab.lab import account
from lambdalab.lab import http as lab_http
from lambdalab.lab import services as lab_services
from lambdalab.lab.http import api, json_body, only  # the lab's JSON conventions, errors included
from lambdalab.lab.models import Function

from . import selectors, services
from .models import Share

SHAREABLE = ("title", "include_run", "include_env_values", "invocations")


def _owner_tag(request: HttpRequest) -> str:
    user_id = request.user.pk if request.user.is_authenticated else None
    return lab_services.owner_tag(user_id, None if user_id else account.session_key(request))


def _share_or_error(share_id: str) -> Share:
    share = selectors.share_get(share_id)
    if share is None:
        raise lab_services.NotFound("Shared link not found", code="ResourceNotFoundException")
    if share.taken_down:
        raise services.Gone(share.taken_down_reason)
    return share


@require_POST
@api
def function_share(request: HttpRequest, function_id) -> JsonResponse:
    """Only the function's owner shares it; anyone else gets the lab's 404."""
    function = Function.objects.select_related("latest").filter(pk=function_id).first()
    if function is None or not function.can_be_driven_by(request.user, request.session.session_key):
        raise lab_services.NotFound("Function not found", code="ResourceNotFoundException")
    data = only(json_body(request), SHAREABLE)
    share, created = services.share_create(
        function=function,
        owner_tag=_owner_tag(request),
        address=request.META.get("REMOTE_ADDR", "unknown"),
        user=request.user,
        title=data.get("title"),
        include_run=data.get("include_run", False),
        include_env_values=data.get("include_env_values", False),
        invocation_ids=data.get("invocations"),
    )
    return JsonResponse(
        {"id": share.id, "url": request.build_absolute_uri(share.url_path), "created": created},
        status=201 if created else 200,
    )


@require_GET
@api
def share_detail(request: HttpRequest, share_id: str) -> JsonResponse:
    share = _share_or_error(share_id)
    return JsonResponse(selectors.share_dict(share, url=request.build_absolute_uri(share.url_path)))


@require_GET
def share_page(request: HttpRequest, share_id: str) -> HttpResponse:
    share = selectors.share_get(share_id)
    if share is None:
        return render(request, "shares/not_found.html", status=404)
    if share.taken_down:
        return render(request, "shares/gone.html", {"share": share}, status=410)
    url = request.build_absolute_uri(share.url_path)
    content = share.content
    return render(
        request,
        "shares/page.html",
        {
            "share": share,
            "content": content,
            "url": url,
            "description": selectors.description(share),
            "summary": selectors.run_summary(share) if content.get("run") else None,
            "environment": sorted(content["environment"].items()),
            "code_file": content["handler"].rsplit(".", 1)[0].replace(".", "/") + ".py",
            "boot": selectors.share_dict(share, url=url),
        },
    )


@require_POST
def share_fork(request: HttpRequest, share_id: str) -> HttpResponse:
    """Run it yourself: a copy in the viewer's own functions (their account, or this browser)."""
    share = selectors.share_get(share_id)
    if share is None:
        return render(request, "shares/not_found.html", status=404)
    if share.taken_down:
        return render(request, "shares/gone.html", {"share": share}, status=410)
    key = account.session_key(request)
    try:
        function = services.share_fork(
            share=share, owner=request.user, session_key=key, address=lab_http.client_address(request)
        )
    except lab_services.Throttled as exc:
        return lab_http.too_many(request, exc)
    account.remember_anonymous_owner(request, key)
    return redirect("lab:function-page", function.pk)
