"""Review decisions: each tier's verdict on a revision, kept for the timeline and quality figures."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Decision(models.TextChoices):
    APPROVE = "approve", _("Approve")
    EDIT = "edit", _("Edit and approve")
    REJECT = "reject", _("Reject")


class ReviewDecision(models.Model):
    item = models.ForeignKey("annotation.Item", on_delete=models.CASCADE, related_name="decisions")
    revision = models.ForeignKey("annotation.Revision", on_delete=models.PROTECT, related_name="decisions")
    stage = models.CharField(max_length=20)  # annotation.models.Stage: expert | domain | spot_check
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="decisions")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    # For an edit: the reviewer's own revision, which becomes the item's current one.
    edited_revision = models.ForeignKey(
        "annotation.Revision", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["item_id", "created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.decision} of item {self.item_id} at {self.stage} by {self.reviewer_id}"


# --- Rubric, rated responses, ratings (issue 5) ------------------------------------------------------


class MeasurementLevel(models.TextChoices):
    NOMINAL = "nominal", _("Nominal")
    ORDINAL = "ordinal", _("Ordinal")
    INTERVAL = "interval", _("Interval")
    RATIO = "ratio", _("Ratio")


class Rubric(models.Model):
    """One version of a project's rubric. The highest version is current; ratings keep the one they used."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="rubrics")
    version = models.PositiveIntegerField()
    # Blind raters see neither origin nor model of a response, nor other raters' scores.
    blind = models.BooleanField(_("blind rating"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="rubric_project_version")]

    def __str__(self) -> str:
        return f"rubric v{self.version} of project {self.project_id}"


class RubricDimension(models.Model):
    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="dimensions")
    position = models.PositiveSmallIntegerField(default=0)
    key = models.SlugField(max_length=50)
    label = models.CharField(max_length=100)
    label_zh = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    weight = models.FloatField()
    scale_min = models.IntegerField(default=1)
    scale_max = models.IntegerField(default=5)
    level = models.CharField(
        max_length=10, choices=MeasurementLevel.choices, default=MeasurementLevel.ORDINAL
    )

    class Meta:
        ordering = ["rubric_id", "position", "pk"]
        constraints = [models.UniqueConstraint(fields=["rubric", "key"], name="rubric_dimension_key")]

    def __str__(self) -> str:
        return f"{self.key} ({self.weight}) of rubric {self.rubric_id}"


class ResponseOrigin(models.TextChoices):
    DRAFT = "draft", _("Model draft")
    CANDIDATE = "candidate", _("Candidate model output")
    HUMAN = "human", _("Human answer")
    EXTERNAL = "external", _("External")


class Response(models.Model):
    """A text to be scored on the rubric: a draft, a candidate model's output, a human answer, or external.

    It answers a conversation: `system` and `messages` (the turns before it, as an item holds them);
    `input` repeats the last user turn, which is all a single-turn response has.
    """

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="responses")
    input = models.TextField()
    system = models.TextField(blank=True)
    messages = models.JSONField(default=list)
    text = models.TextField()
    origin = models.CharField(max_length=20, choices=ResponseOrigin.choices)
    # The model's name/version label as compared on the dashboard; set from model_version when there is one.
    model = models.CharField(max_length=200, blank=True)
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    item = models.ForeignKey(
        "annotation.Item", null=True, blank=True, on_delete=models.SET_NULL, related_name="responses"
    )
    # Who wrote the text (human answers); nobody rates their own.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the response is no longer wanted for rating (its human evaluation round ended).
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["project", "origin", "model"], name="response_project_origin_model"),
        ]

    def __str__(self) -> str:
        return f"response {self.pk} ({self.origin}) of project {self.project_id}"


class Rating(models.Model):
    """One rater's scores of one response on every dimension of the rubric version it was rated on."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="+")
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="ratings")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ratings")
    rubric = models.ForeignKey(Rubric, on_delete=models.PROTECT, related_name="ratings")
    scores = models.JSONField()
    weighted_score = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["response_id", "created_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["response", "rater"], name="rating_response_rater")]
        indexes = [models.Index(fields=["project", "created_at"], name="rating_project_time")]

    def __str__(self) -> str:
        return f"rating of response {self.response_id} by {self.rater_id}: {self.weighted_score:.2f}"


class RatingAssignment(models.Model):
    """A rater's short lease on a response from the `rate` queue; it holds one of the overlap's slots."""

    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="assignments")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["response", "rater"], name="rating_assignment_response_rater")
        ]
        indexes = [models.Index(fields=["rater", "expires_at"], name="rating_assignment_rater")]

    def __str__(self) -> str:
        return f"response {self.response_id} held by {self.rater_id} until {self.expires_at}"
