from django.urls import path

from . import account, views

app_name = "lab"

urlpatterns = [
    path("", views.lab_page, name="page"),
    path("f/<uuid:function_id>/", views.lab_page, name="function-page"),
    path("functions/", account.function_list, name="function-list"),
    path("functions/new", account.function_new, name="function-new"),
    path("functions/<uuid:function_id>/rename", account.function_rename, name="function-rename"),
    path("functions/<uuid:function_id>/delete", account.function_delete, name="function-delete"),
    path("accounts/signup/", account.signup, name="signup"),
    path("api/functions", views.functions, name="functions"),
    path("api/functions/<uuid:function_id>", views.function_detail, name="function"),
    path("api/functions/<uuid:function_id>/invoke", views.function_invoke, name="function-invoke"),
    path(
        "api/functions/<uuid:function_id>/invocations",
        views.function_invocations,
        name="function-invocations",
    ),
    path(
        "api/functions/<uuid:function_id>/environments",
        views.function_environments,
        name="function-environments",
    ),
    path(
        "api/functions/<uuid:function_id>/environments/<str:environment_id>",
        views.environment_control,
        name="environment-control",
    ),
    path("api/functions/<uuid:function_id>/tunings", views.function_tunings, name="function-tunings"),
    path(
        "api/functions/<uuid:function_id>/tunings/<str:tune_id>",
        views.function_tuning,
        name="function-tuning",
    ),
    path(
        "api/functions/<uuid:function_id>/environments/<str:environment_id>/state",
        views.environment_state,
        name="environment-state",
    ),
    path("api/invocations/<uuid:request_id>", views.invocation_detail, name="invocation"),
    path("api/invocations/<uuid:request_id>/response", views.invocation_response, name="invocation-response"),
    path("api/isolation", views.isolation_report, name="isolation"),
]
