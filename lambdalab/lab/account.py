"""Signing up, and the function list (rename, delete): plain forms, no JavaScript needed."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import selectors, services

ANONYMOUS_OWNER = "lab_anonymous_owner"  # the session key anonymous functions were made under


def session_key(request: HttpRequest) -> str:
    """The browser session's key, made on the first visit (anonymous functions belong to it)."""
    if not request.session.session_key:
        request.session.save()
    return request.session.session_key


def remember_anonymous_owner(request: HttpRequest, session_key: str) -> None:
    """Login cycles the session key; the functions made before it are found by this one."""
    if not request.user.is_authenticated and request.session.get(ANONYMOUS_OWNER) != session_key:
        request.session[ANONYMOUS_OWNER] = session_key


@receiver(user_logged_in)
def _adopt(sender, request, user, **kwargs):
    if request is not None:
        services.functions_adopt(user=user, session_key=request.session.get(ANONYMOUS_OWNER, ""))


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        return redirect("/")
    return render(request, "registration/signup.html", {"form": form})


@require_GET
def function_list(request: HttpRequest) -> HttpResponse:
    functions = selectors.functions_of(user=request.user, session_key=request.session.session_key)
    return render(
        request,
        "lab/functions.html",
        {
            "functions": functions.select_related("latest")[:500],
            "retention_days": settings.LAB_ANONYMOUS_RETENTION_DAYS,
        },
    )


def _mine(request: HttpRequest, function_id):
    function = selectors.function_for(
        user=request.user, session_key=request.session.session_key, function_id=function_id
    )
    if function is None:
        raise Http404("Function not found")
    return function


@require_POST
def function_new(request: HttpRequest) -> HttpResponse:
    key = session_key(request)
    from .http import client_address, too_many

    try:
        function = services.function_create(
            owner=request.user, session_key=key, address=client_address(request)
        )
    except services.Throttled as exc:
        return too_many(request, exc)
    remember_anonymous_owner(request, key)
    return redirect("lab:function-page", function.pk)


@require_POST
def function_rename(request: HttpRequest, function_id) -> HttpResponse:
    try:
        services.function_update(function=_mine(request, function_id), name=request.POST.get("name", ""))
    except services.LabError:
        pass  # the list shows the name as it is
    return redirect("lab:function-list")


@require_POST
def function_delete(request: HttpRequest, function_id) -> HttpResponse:
    services.function_delete(function=_mine(request, function_id))
    return redirect("lab:function-list")
