from django.urls import path, re_path

from . import views

app_name = "shares"

ID = r"(?P<share_id>[A-Za-z0-9_-]{11})"

urlpatterns = [
    path("api/functions/<uuid:function_id>/share", views.function_share, name="function-share"),
    re_path(rf"^api/shares/{ID}$", views.share_detail, name="api-share"),
    re_path(rf"^s/{ID}$", views.share_page, name="page"),
    re_path(rf"^s/{ID}/fork$", views.share_fork, name="fork"),
]
