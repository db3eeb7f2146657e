"""The built-in course, and the Instructors group: rights on course models only."""

from django.db import migrations


def forward(apps, schema_editor):
    from lambdalab.courses import builtin, roles

    builtin.load(apps.get_model("courses", "Course"), apps.get_model("courses", "Scenario"))
    roles.ensure_instructors(
        apps.get_model("auth", "Group"),
        apps.get_model("auth", "Permission"),
        apps.get_model("contenttypes", "ContentType"),
    )


class Migration(migrations.Migration):
    dependencies = [("courses", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
