"""A shared link: what a function was (code, settings, event, and optionally a recorded run),
frozen under an id derived from that content. Nothing changes it afterwards, except that staff
can take it down."""

from __future__ import annotations

from django.conf import settings
from django.db import models

# The only fields a saved share may change: staff taking it down (or putting it back).
TAKEDOWN_FIELDS = frozenset({"taken_down", "taken_down_reason", "taken_down_at"})


class Share(models.Model):
    # A short salted hash of the content (see services.share_id): the same content, the same id.
    id = models.CharField(primary_key=True, max_length=16, editable=False)
    digest = models.CharField(max_length=64, editable=False)  # the whole sha256, to tell collisions
    title = models.CharField(max_length=100, editable=False)
    content = models.JSONField(editable=False)  # code, handler, settings, event, environment, run
    size = models.PositiveIntegerField(editable=False)  # bytes of the canonical JSON
    has_run = models.BooleanField(default=False, editable=False)
    env_values = models.BooleanField(default=False, editable=False)  # the author included them
    # For staff only, never shown on the share: who made it first and from which function.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source_function = models.UUIDField(null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    taken_down = models.BooleanField(default=False)
    taken_down_reason = models.CharField(
        max_length=300, blank=True, help_text="Shown on the link's page (410 Gone) instead of the share."
    )
    taken_down_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.id} · {self.title}"

    def save(self, *args, **kwargs):
        """Immutable once made: an update may only take the link down (``update_fields`` says so)."""
        if not self._state.adding:
            fields = kwargs.get("update_fields")
            if fields is None or not set(fields) <= TAKEDOWN_FIELDS:
                raise ValueError("A share is immutable: only its take-down fields may change")
        super().save(*args, **kwargs)

    @property
    def url_path(self) -> str:
        return f"/s/{self.id}"
