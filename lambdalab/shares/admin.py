import json

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from .models import TAKEDOWN_FIELDS, Share


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    """Shares are immutable: staff read them, and may only take one down (or put it back)."""

    list_display = ("id", "title", "created", "has_run", "env_values", "size", "taken_down")
    list_filter = ("taken_down", "has_run", "env_values")
    search_fields = ("id", "title")
    date_hierarchy = "created"
    fields = (
        "id",
        "link",
        "title",
        "created",
        "created_by",
        "source_function",
        "size",
        "has_run",
        "env_values",
        "snapshot",
        "taken_down",
        "taken_down_reason",
        "taken_down_at",
    )
    readonly_fields = tuple(f for f in fields if f not in ("taken_down", "taken_down_reason"))

    @admin.display(description="Link")
    def link(self, share: Share) -> str:
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>', share.url_path, share.url_path
        )

    @admin.display(description="What it holds")
    def snapshot(self, share: Share) -> str:
        content = {k: v for k, v in share.content.items() if k != "run"}
        run = share.content.get("run")
        if run:
            content["run"] = f"{run.get('calls', 0)} calls, {len(run.get('events', []))} events"
        return format_html("<pre>{}</pre>", json.dumps(content, indent=2, ensure_ascii=False))

    def has_add_permission(self, request) -> bool:
        return False  # links are made from the lab page, by their content

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # take it down instead: deleting would let the same link be made again

    def save_model(self, request, obj: Share, form, change) -> None:
        obj.taken_down_at = (obj.taken_down_at or timezone.now()) if obj.taken_down else None
        obj.save(update_fields=sorted(TAKEDOWN_FIELDS))
