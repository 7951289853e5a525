"""What people and models write for an item: drafts, revisions, autosaved work in progress."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Stage(models.TextChoices):
    """The work queues; a claim is always for one stage."""

    ANNOTATE = "annotate", _("Annotate")
    EXPERT = "expert", _("Expert review")
    DOMAIN = "domain", _("Domain review")
    SPOT_CHECK = "spot_check", _("Spot check")


class Draft(models.Model):
    """A model's suggestion for an item; rank 0 is the most confident of its candidates."""

    item = models.ForeignKey("annotation.Item", on_delete=models.CASCADE, related_name="drafts")
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="drafts"
    )
    text = models.TextField()
    confidence = models.FloatField()
    rank = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item_id", "rank", "pk"]

    def __str__(self) -> str:
        return f"draft {self.rank} of item {self.item_id} ({self.confidence:.2f})"


class Revision(models.Model):
    """Every text a person writes or edits; the item points at its current one.

    `text` is the reply (the final assistant turn). `turn_edits` holds, where the project lets people edit
    earlier assistant turns, every such turn whose text differs from the item's: {turn index: text},
    cumulative (a revision carries its parent's edits forward), so one revision stands for a whole
    conversation.
    """

    item = models.ForeignKey("annotation.Item", on_delete=models.CASCADE, related_name="revisions")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="revisions")
    stage = models.CharField(max_length=20, choices=Stage.choices)
    text = models.TextField()
    turn_edits = models.JSONField(default=dict, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    draft = models.ForeignKey(Draft, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item_id", "created_at", "pk"]
        indexes = [models.Index(fields=["item", "author"], name="revision_item_author")]

    def __str__(self) -> str:
        return f"revision {self.pk} of item {self.item_id} by {self.author_id}"


class Autosave(models.Model):
    """Unsubmitted text of the person holding the item, so a reload loses nothing."""

    item = models.ForeignKey("annotation.Item", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    text = models.TextField()
    turn_edits = models.JSONField(default=dict, blank=True)
    draft = models.ForeignKey(Draft, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "user"], name="autosave_item_user")]

    def __str__(self) -> str:
        return f"autosave of item {self.item_id} by {self.user_id}"


class Skip(models.Model):
    """Someone passed on an item: it stays in the queue for others but is not offered to them again."""

    item = models.ForeignKey("annotation.Item", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "item"], name="skip_user_item")]

    def __str__(self) -> str:
        return f"item {self.item_id} skipped by {self.user_id}"
