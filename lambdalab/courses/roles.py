"""The Instructors group: staff who build courses, with rights on course models only (never on
other users' functions, code or invocations)."""

from __future__ import annotations

INSTRUCTORS = "Instructors"
COURSE_MODELS = ("course", "scenario")


def ensure_instructors(Group, Permission, ContentType):
    """Create the group and its rights if missing (takes the models, so a migration can use it)."""
    group, _ = Group.objects.get_or_create(name=INSTRUCTORS)
    for model in COURSE_MODELS:
        content_type, _ = ContentType.objects.get_or_create(app_label="courses", model=model)
        for action in ("add", "change", "delete", "view"):
            permission, _ = Permission.objects.get_or_create(
                content_type=content_type,
                codename=f"{action}_{model}",
                defaults={"name": f"Can {action} {model}"},
            )
            group.permissions.add(permission)
    return group
