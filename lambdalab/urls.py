from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("lambdalab.courses.urls")),
    path("", include("lambdalab.shares.urls")),
    path("", include("lambdalab.lab.urls")),
]
