from django.apps import AppConfig


class SharesConfig(AppConfig):
    """Shared links: an immutable snapshot of a function (and its recorded run), named by its content."""

    name = "lambdalab.shares"
    label = "shares"
    default_auto_field = "django.db.models.BigAutoField"
