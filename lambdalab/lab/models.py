"""Functions, their immutable revisions, and invocations (with their REPORT figures and logs)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from sandbox import FunctionSpec

# What a revision is made of: the settings Lambda restarts an environment for. The event and the
# idle eviction are the function's, not a revision's.
REVISION_FIELDS = ("code", "handler", "memory_mb", "timeout_s", "tmp_mb", "environment")


class Function(models.Model):
    """A handler someone is working on: owned by a user, or by an anonymous browser session."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="functions"
    )
    session_key = models.CharField(max_length=40, blank=True, db_index=True)
    name = models.CharField(max_length=64)
    event = models.TextField(default="{}")
    idle_timeout_s = models.FloatField(default=600.0)
    # Lambda's reserved concurrency: at most this many calls at once (0: none run); beyond it a
    # call is throttled and never runs. None: unreserved. Not a revision (no restart).
    reserved_concurrency = models.PositiveIntegerField(null=True, blank=True)
    # Lambda's provisioned concurrency: this many environments of the latest revision initialised
    # ahead (initialization type provisioned-concurrency), never idled out; calls within it are warm.
    provisioned_concurrency = models.PositiveIntegerField(default=0)
    # A local emulator's model instead of Lambda's (serverless-offline --reloadHandler): every call
    # in a new environment, discarded after it.
    always_cold = models.BooleanField(default=False)
    # Settings the owner may not change (a course scenario's), refused by the server too.
    locked = models.JSONField(default=list, blank=True)
    latest = models.ForeignKey("FunctionVersion", null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated"]
        indexes = [models.Index(fields=["owner", "-updated"])]

    def __str__(self) -> str:
        return self.name

    def can_be_driven_by(self, user, session_key: str | None) -> bool:
        if self.owner_id is not None:
            return user.is_authenticated and user.pk == self.owner_id
        return bool(session_key) and session_key == self.session_key


class FunctionVersion(models.Model):
    """One immutable revision: code and the settings Lambda would restart an environment for."""

    function = models.ForeignKey(Function, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    code = models.TextField()
    handler = models.CharField(max_length=128, default="lambda_function.lambda_handler")
    memory_mb = models.PositiveIntegerField(default=128)
    timeout_s = models.PositiveIntegerField(default=3)
    tmp_mb = models.PositiveIntegerField(default=512)
    environment = models.JSONField(default=dict, blank=True)
    # The name Lambda's variables and log group carry, fixed with the revision: renaming the
    # function is not a restart (nor part of the engine's key) until the next revision.
    lambda_name = models.CharField(max_length=64, default="lambdalab-function")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["function", "number"], name="one_number_per_revision")]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.function.name} r{self.number}"

    def settings_tuple(self) -> tuple:
        return tuple(getattr(self, name) for name in REVISION_FIELDS)

    def spec(self, *, idle_timeout_s: float) -> FunctionSpec:
        """The engine's view of this revision: its identity (function and revision) is in the key."""
        return FunctionSpec(
            source=self.code,
            handler=self.handler,
            memory_mb=self.memory_mb,
            timeout_s=self.timeout_s,
            tmp_mb=self.tmp_mb,
            environment=dict(self.environment),
            idle_timeout_s=idle_timeout_s,
            function_name=self.lambda_name,
            function_id=str(self.function_id),
            revision=str(self.number),
        )


def lambda_name(name: str) -> str:
    """A display name as a Lambda function name: letters, digits, '-' and '_', at most 64."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in name)[:64]
    return cleaned or "lambdalab-function"


class Invocation(models.Model):
    """One call: created when it is asked for, written once more when it ends."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        SUCCESS = "success"
        ERROR = "error"
        TIMEOUT = "timeout"
        FAILURE = "failure"  # the environment was lost, or the worker died: Sandbox.Failure
        REFUSED = "refused"  # the worker had no room (Lambda's 429)
        THROTTLED = "throttled"  # over the function's reserved concurrency: never ran (Lambda's 429)

    request_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    function = models.ForeignKey(Function, on_delete=models.CASCADE, related_name="invocations")
    version = models.ForeignKey(FunctionVersion, on_delete=models.CASCADE, related_name="invocations")
    batch = models.UUIDField(null=True, blank=True, db_index=True)
    mode = models.CharField(max_length=8, default="once")  # once | series | burst
    position = models.PositiveIntegerField(default=1)  # within its batch
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.QUEUED)
    cold = models.BooleanField(null=True)
    init_reason = models.CharField(max_length=32, blank=True)
    init_reason_text = models.CharField(max_length=200, blank=True)
    environment_id = models.CharField(max_length=32, blank=True)
    error_type = models.CharField(max_length=128, blank=True)
    duration_ms = models.FloatField(null=True)
    billed_duration_ms = models.PositiveIntegerField(null=True)
    max_memory_used_mb = models.PositiveIntegerField(null=True)
    init_duration_ms = models.FloatField(null=True)
    response = models.BinaryField(default=b"")
    report = models.TextField(blank=True)
    logs = models.TextField(blank=True)
    log_truncated = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    ended = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["function", "-created"])]

    def __str__(self) -> str:
        return str(self.request_id)
