from django.apps import AppConfig


class LabConfig(AppConfig):
    """The live lab: functions, their revisions, invocations, and the workers that run them."""

    name = "lambdalab.lab"
    label = "lab"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import account  # noqa: F401 - connects the login signal that adopts anonymous functions
