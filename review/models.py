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
    # How far its raters disagree: the population standard deviation of their weighted scores, each
    # rescaled to 0–1 (review.math.overlap.scores_spread); written with every rating, null under two.
    rating_spread = models.FloatField(null=True, blank=True)

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


# --- Preferences: pairs to compare, sets to rank, judgements and rankings (issue 16) -----------------


class PairSource(models.TextChoices):
    DRAFT_VS_ANSWER = "draft_vs_answer", _("Model draft vs approved answer")
    CANDIDATES = "candidates", _("Candidates of one item")
    MODEL_VERSIONS = "model_versions", _("Two model versions")
    IMPORTED = "imported", _("Imported")
    MANUAL = "manual", _("Chosen by an admin")


class Choice(models.TextChoices):
    """A judgement in the pair's stored order (response_a, response_b), whatever order the rater saw."""

    A = "a", _("First response")
    B = "b", _("Second response")
    TIE = "tie", _("Tie")


class Strength(models.TextChoices):
    UNSAID = "", _("Not said")
    SLIGHTLY = "slightly", _("Slightly better")
    CLEARLY = "clearly", _("Clearly better")


class RankSet(models.Model):
    """2–5 responses to one conversation, to be put in order. Its C(n, 2) pairs (`Pair.rank_set`) are
    judged through rankings, never through the compare queue."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="rank_sets")
    responses = models.ManyToManyField(Response, related_name="rank_sets")
    source = models.CharField(max_length=20, choices=PairSource.choices)
    item = models.ForeignKey(
        "annotation.Item", null=True, blank=True, on_delete=models.SET_NULL, related_name="rank_sets"
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"rank set {self.pk} of project {self.project_id}"


class Pair(models.Model):
    """Two responses to the same conversation, `response_a` the one with the lower id.

    `model_a` / `model_b` are the contestants the leaderboard compares: each response's model label, or
    its origin in brackets ("(human)") when it has none; copied here so the leaderboard reads one table.
    `metadata` is the item's metadata when the pair came from an item, else the record's own keys.
    """

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="pairs")
    response_a = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    response_b = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    model_a = models.CharField(max_length=200)
    model_b = models.CharField(max_length=200)
    source = models.CharField(max_length=20, choices=PairSource.choices)
    item = models.ForeignKey(
        "annotation.Item", null=True, blank=True, on_delete=models.SET_NULL, related_name="pairs"
    )
    rank_set = models.ForeignKey(
        RankSet, null=True, blank=True, on_delete=models.CASCADE, related_name="pairs"
    )
    metadata = models.JSONField(default=dict, blank=True)
    # An imported file's own verdict ("a" or "b"); kept for reference, never counted as a judgement.
    prior = models.CharField(max_length=3, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(response_a__lt=models.F("response_b")), name="pair_a_before_b"
            ),
            models.UniqueConstraint(
                fields=["response_a", "response_b"],
                condition=models.Q(rank_set__isnull=True),
                name="pair_responses",
            ),
            models.UniqueConstraint(
                fields=["rank_set", "response_a", "response_b"], name="pair_rank_set_responses"
            ),
        ]
        indexes = [
            # The compare queue: open pairs that are not part of a rank set, oldest first.
            models.Index(
                fields=["project", "id"],
                condition=models.Q(closed_at__isnull=True, rank_set__isnull=True),
                name="pair_compare_queue",
            ),
        ]

    def __str__(self) -> str:
        return f"pair {self.pk}: response {self.response_a_id} vs {self.response_b_id}"


class PairAssignment(models.Model):
    """A rater's lease on a pair from the `compare` queue, with the order they are shown it."""

    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="assignments")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    # True: response_b is shown first (as "A"), response_a second.
    swapped = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pair", "rater"], name="pair_assignment_pair_rater")]
        indexes = [models.Index(fields=["rater", "expires_at"], name="pair_assignment_rater")]

    def __str__(self) -> str:
        return f"pair {self.pair_id} held by {self.rater_id} until {self.expires_at}"


class RankAssignment(models.Model):
    """A rater's lease on a rank set from the `rank` queue, with the order its responses are shown in."""

    rank_set = models.ForeignKey(RankSet, on_delete=models.CASCADE, related_name="assignments")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    shown = models.JSONField()  # response ids, in the order shown
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rank_set", "rater"], name="rank_assignment_set_rater")
        ]
        indexes = [models.Index(fields=["rater", "expires_at"], name="rank_assignment_rater")]

    def __str__(self) -> str:
        return f"rank set {self.rank_set_id} held by {self.rater_id} until {self.expires_at}"


class Ranking(models.Model):
    """One rater's order of a rank set's responses, best first; it also writes one Judgement per pair."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="+")
    rank_set = models.ForeignKey(RankSet, on_delete=models.CASCADE, related_name="rankings")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rankings")
    order = models.JSONField()  # response ids, best first
    shown = models.JSONField()  # response ids, in the order the rater saw them
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint(fields=["rank_set", "rater"], name="ranking_set_rater")]

    def __str__(self) -> str:
        return f"ranking of rank set {self.rank_set_id} by {self.rater_id}"


class Judgement(models.Model):
    """One rater's verdict on a pair: `choice` in the pair's stored order; `swapped` records the order
    they saw (True: response_b was shown first). A ranking writes one per pair of its set."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="+")
    pair = models.ForeignKey(Pair, on_delete=models.CASCADE, related_name="judgements")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judgements")
    choice = models.CharField(max_length=3, choices=Choice.choices)
    strength = models.CharField(max_length=10, choices=Strength.choices, blank=True)
    reason = models.TextField(blank=True)
    swapped = models.BooleanField(default=False)
    ranking = models.ForeignKey(
        Ranking, null=True, blank=True, on_delete=models.CASCADE, related_name="judgements"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pair_id", "created_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["pair", "rater"], name="judgement_pair_rater")]
        indexes = [models.Index(fields=["project", "created_at"], name="judgement_project_time")]

    def __str__(self) -> str:
        return f"judgement of pair {self.pair_id} by {self.rater_id}: {self.choice}"


# --- Adjudication of disagreements (issue 18) ----------------------------------------------------------


class AdjudicationKind(models.TextChoices):
    REVIEW = "review", _("Reviewers disagree")
    RATINGS = "ratings", _("Ratings disagree")


class AdjudicationDecision(models.TextChoices):
    APPROVE = "approve", _("Approve: the approval stands")
    REJECT = "reject", _("Reject: back to the annotator")
    SCORES = "scores", _("Final scores")


class Adjudication(models.Model):
    """A disagreement waiting for (or given) a final decision by a project admin or domain reviewer.

    review: a reject (`rejection`) of a revision an earlier tier approved (`approval`); the item waits
    in status adjudication. ratings: a response whose ratings still disagree at its most ratings.
    """

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="adjudications")
    kind = models.CharField(max_length=10, choices=AdjudicationKind.choices)
    item = models.ForeignKey(
        "annotation.Item", null=True, blank=True, on_delete=models.CASCADE, related_name="adjudications"
    )
    approval = models.ForeignKey(
        ReviewDecision, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rejection = models.ForeignKey(
        ReviewDecision, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    response = models.ForeignKey(
        Response, null=True, blank=True, on_delete=models.CASCADE, related_name="adjudications"
    )
    # What disagreed, as it was when the case opened (e.g. the spread and the threshold of ratings).
    evidence = models.JSONField(default=dict, blank=True)
    decision = models.CharField(max_length=10, choices=AdjudicationDecision.choices, blank=True)
    comment = models.TextField(blank=True)
    # The adjudicator's final scores of a response, and their weighted score.
    scores = models.JSONField(null=True, blank=True)
    weighted_score = models.FloatField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["item"],
                condition=models.Q(decided_at__isnull=True, item__isnull=False),
                name="adjudication_one_open_per_item",
            ),
            models.UniqueConstraint(
                fields=["response"],
                condition=models.Q(response__isnull=False),
                name="adjudication_one_per_response",
            ),
        ]
        indexes = [
            models.Index(
                fields=["project", "id"],
                condition=models.Q(decided_at__isnull=True),
                name="adjudication_open",
            ),
        ]

    def __str__(self) -> str:
        return f"adjudication {self.pk} ({self.kind}) of project {self.project_id}"


# --- Gold and attention checks (issue 18) --------------------------------------------------------------


class GoldKind(models.TextChoices):
    ANNOTATE = "annotate", _("Annotation: an answer close to the gold answer")
    REVIEW = "review", _("Review: the expected decision")
    RATE = "rate", _("Rating: scores within the expected ranges")
    COMPARE = "compare", _("Compare: the expected choice")


class GoldTask(models.Model):
    """A task whose right answer a project admin knows, mixed silently into a queue (review/gold/).

    One target per kind: an item (annotate, review; the item is marked `is_gold`), a response (rate) or a
    compare pair (compare). What is right: `expected_text` and `min_similarity` (annotate; null takes the
    project's), `expected_decision` approve | reject (review), `expected_scores` {dimension: [low, high]}
    and / or `expected_weighted` [low, high] (rate), `expected_choice` a | b | tie in the pair's stored
    order (compare). Retired tasks are no longer served; their attempts still count.
    """

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="gold_tasks")
    kind = models.CharField(max_length=10, choices=GoldKind.choices)
    item = models.OneToOneField(
        "annotation.Item", null=True, blank=True, on_delete=models.CASCADE, related_name="gold_task"
    )
    response = models.OneToOneField(
        Response, null=True, blank=True, on_delete=models.CASCADE, related_name="gold_task"
    )
    pair = models.OneToOneField(
        Pair, null=True, blank=True, on_delete=models.CASCADE, related_name="gold_task"
    )
    expected_text = models.TextField(blank=True)
    min_similarity = models.FloatField(null=True, blank=True)
    expected_decision = models.CharField(max_length=10, blank=True)
    expected_scores = models.JSONField(default=dict, blank=True)
    expected_weighted = models.JSONField(null=True, blank=True)
    expected_choice = models.CharField(max_length=4, blank=True)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["project", "kind"], name="gold_task_project_kind")]

    def __str__(self) -> str:
        return f"gold {self.kind} task {self.pk} of project {self.project_id}"


class GoldAttempt(models.Model):
    """One person's answer to a gold task, scored when given. Each person answers each gold task once.
    The answer lives here, not as a revision, rating or judgement, so it never reaches the data."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="+")
    gold_task = models.ForeignKey(GoldTask, on_delete=models.CASCADE, related_name="attempts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    stage = models.CharField(max_length=20)
    answer = models.JSONField(default=dict)
    correct = models.BooleanField()
    score = models.FloatField(null=True, blank=True)  # the similarity of an annotation; else null
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint(fields=["gold_task", "user"], name="gold_attempt_once")]
        indexes = [models.Index(fields=["project", "user", "-id"], name="gold_attempt_person")]

    def __str__(self) -> str:
        return f"gold attempt {self.pk} of {self.user_id}: {'right' if self.correct else 'wrong'}"


class GoldStandingState(models.TextChoices):
    OK = "ok", _("In good standing")
    WARNED = "warned", _("Warned")
    PAUSED = "paused", _("Paused")
    EXTRA_REVIEW = "extra_review", _("Work sent to an extra review")


class GoldStanding(models.Model):
    """Where a person stands in a project after their gold tasks: the rolling accuracy and what follows.

    Attempts count from `counted_since` (the last lift), so a lifted pause is not re-imposed by the same
    wrong answers. `notice_pending`: a warning to show on the person's next page.
    """

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=12, choices=GoldStandingState.choices, default=GoldStandingState.OK)
    accuracy = models.FloatField(null=True, blank=True)
    counted = models.PositiveIntegerField(default=0)
    reason = models.TextField(blank=True)
    since = models.DateTimeField(null=True, blank=True)
    notice_pending = models.BooleanField(default=False)
    counted_since = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lifted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project_id", "user_id"]
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="gold_standing_person")]

    def __str__(self) -> str:
        return f"{self.user_id} in project {self.project_id}: {self.state}"
