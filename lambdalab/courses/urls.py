from django.urls import path

from . import views

app_name = "courses"

urlpatterns = [
    path("join/", views.join, name="join"),
    path("courses/<slug:slug>/", views.course_page, name="course"),
    path("courses/<slug:slug>/dashboard/", views.course_dashboard, name="dashboard"),
    path("courses/<slug:slug>/<slug:scenario_slug>/", views.scenario_page, name="scenario"),
    path("attempts/<int:attempt_id>", views.attempt_detail, name="attempt"),
    path("attempts/<int:attempt_id>/predict", views.attempt_predict, name="attempt-predict"),
    path("attempts/<int:attempt_id>/run", views.attempt_run, name="attempt-run"),
    path("attempts/<int:attempt_id>/again", views.attempt_again, name="attempt-again"),
]
