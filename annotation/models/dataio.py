"""Import jobs (an uploaded file on its way into items) and compliance flags raised on items."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ImportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class ImportJob(models.Model):
    """One file import. Progress and counts live here so any process can report them while it runs."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Empty for CLI imports, which read the local file in place instead of copying it into MEDIA_ROOT.
    file = models.FileField(upload_to="imports/%Y/%m/", blank=True)
    filename = models.CharField(max_length=255)
    format = models.CharField(max_length=20, blank=True)  # empty: detected from the name and content
    detected_format = models.CharField(max_length=20, blank=True)  # what the file was read as
    mapping = models.JSONField(null=True, blank=True)  # field -> source key; null: the format's default
    # The format's own options, e.g. {"session_gap_minutes": 30} for a chat log.
    options = models.JSONField(default=dict, blank=True)
    skip_invalid = models.BooleanField(default=False)
    redact = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    rows_read = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0)
    rows_duplicate = models.PositiveIntegerField(default=0)
    rows_invalid = models.PositiveIntegerField(default=0)
    rows_flagged = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # the first 100: {"line", "field", "reason"}
    errors_total = models.PositiveIntegerField(default=0)
    # Where each source key of the valid rows went: {key: {"to": "metadata.category", "rows": n}}.
    key_report = models.JSONField(default=dict, blank=True)
    # What the format counted beyond rows: a chat log's messages, duplicate messages, sessions, ...
    format_report = models.JSONField(default=dict, blank=True)
    bytes_read = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="importjob_project_recent"),
            models.Index(
                fields=["heartbeat_at"], name="importjob_running", condition=models.Q(status="running")
            ),
        ]

    def __str__(self) -> str:
        return f"import {self.pk} of {self.filename} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (ImportStatus.SUCCEEDED, ImportStatus.FAILED)

    @property
    def percent(self) -> int:
        if self.status == ImportStatus.SUCCEEDED:
            return 100
        return int(100 * self.bytes_read / self.bytes_total) if self.bytes_total else 0


class ComplianceFlag(models.Model):
    """Configured compliance phrases found in an item's text (revision null) or in one of its revisions."""

    item = models.ForeignKey("annotation.Item", on_delete=models.CASCADE, related_name="compliance_flags")
    revision = models.ForeignKey(
        "annotation.Revision", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    phrases = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item_id", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["item"], condition=models.Q(revision__isnull=True), name="complianceflag_one_per_item"
            ),
            models.UniqueConstraint(
                fields=["revision"],
                condition=models.Q(revision__isnull=False),
                name="complianceflag_one_per_revision",
            ),
        ]

    def __str__(self) -> str:
        return f"flags {self.phrases} on item {self.item_id}"
