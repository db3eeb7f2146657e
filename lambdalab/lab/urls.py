from django.urls import path

from . import views

app_name = "lab"

urlpatterns = [
    path("", views.lab_page, name="page"),
    path("f/<uuid:function_id>/", views.lab_page, name="function-page"),
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
    path("api/invocations/<uuid:request_id>", views.invocation_detail, name="invocation"),
    path("api/invocations/<uuid:request_id>/response", views.invocation_response, name="invocation-response"),
    path("api/isolation", views.isolation_report, name="isolation"),
]
