"""Model versions: a base model plus an optional adapter, which drafts answers for a project."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ModelVersionStatus(models.TextChoices):
    CANDIDATE = "candidate", _("Candidate")
    EVALUATED = "evaluated", _("Evaluated")
    DEPLOYED = "deployed", _("Deployed")
    RETIRED = "retired", _("Retired")
    REJECTED = "rejected", _("Rejected")


class ModelVersion(models.Model):
    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="model_versions")
    name = models.CharField(max_length=200)
    base_model = models.CharField(max_length=500, help_text=_("A local Hugging Face model directory."))
    adapter_path = models.CharField(max_length=500, blank=True)
    prompt_template = models.TextField(default="{input}")
    generation = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=20, choices=ModelVersionStatus.choices, default=ModelVersionStatus.CANDIDATE
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deployed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project_id", "-created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(status="deployed"),
                name="one_deployed_version_per_project",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class TicketStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ANSWERED = "answered", _("Answered")


class HandoverTicket(models.Model):
    """A production question the model was not sure enough to answer; people answer it as an item.

    The ticket does not copy the answer: it is answered when its item is approved, and the answer is the
    item's current revision at that moment (so a later re-review that changes the text is reflected).
    """

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="tickets")
    item = models.ForeignKey("annotation.Item", on_delete=models.PROTECT, related_name="tickets")
    question = models.TextField()
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    # The model's best answer and its confidence when it was asked; null when no model was deployed.
    model_answer = models.TextField(blank=True)
    confidence = models.FloatField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"ticket {self.pk} for item {self.item_id}"
