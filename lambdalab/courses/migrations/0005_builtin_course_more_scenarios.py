"""The built-in course brought up to date: the scenarios added since 0002 (connection reuse, a
background thread, a slow Init, provisioned concurrency, billing, the emulator)."""

from django.db import migrations


def load(apps, schema_editor):
    from lambdalab.courses import builtin

    builtin.load(apps.get_model("courses", "Course"), apps.get_model("courses", "Scenario"))


class Migration(migrations.Migration):
    dependencies = [("courses", "0004_attempt_preview")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
