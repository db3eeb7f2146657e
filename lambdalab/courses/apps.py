from django.apps import AppConfig


class CoursesConfig(AppConfig):
    """Courses and their scenarios: exercises over what the lab observes, built in the admin."""

    name = "lambdalab.courses"
    label = "courses"
    default_auto_field = "django.db.models.BigAutoField"
