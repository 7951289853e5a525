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


class Backend(models.TextChoices):
    """Where a version generates: in the worker process, or on an OpenAI-compatible server."""

    LOCAL = "local", _("In-process (transformers)")
    OPENAI = "openai", _("OpenAI-compatible server")


class ModelVersion(models.Model):
    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="model_versions")
    name = models.CharField(max_length=200)
    # For an `openai` version: the same weights as a local directory, to train from it (may be blank).
    base_model = models.CharField(
        max_length=500, blank=True, help_text=_("A local Hugging Face model directory.")
    )
    adapter_path = models.CharField(max_length=500, blank=True)
    prompt_template = models.TextField(default="{input}")
    generation = models.JSONField(default=dict, blank=True)
    backend = models.CharField(max_length=10, choices=Backend.choices, default=Backend.LOCAL)
    # The `openai` backend (training/backends.py): the server's root URL, the model name requests ask for
    # (a LoRA version: the adapter's name on the server), the API key, and how to talk to it
    # (`backends.BackendOptions`). The key is write-only: never in API answers, audit data or messages.
    server_url = models.CharField(max_length=500, blank=True)
    server_model = models.CharField(max_length=200, blank=True)
    server_api_key = models.CharField(max_length=500, blank=True)
    server_options = models.JSONField(default=dict, blank=True)
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


class AskAnswer(models.Model):
    """An `ask` the deployed model answered itself (source "model"): the log of answered traffic.

    A sampled share (`Project.answered_review_rate`) also becomes a production item whose draft is this
    answer; once people approve the item, the pair is an outcome for calibration (training/calibration.py).
    """

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="ask_answers")
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="ask_answers"
    )
    question = models.TextField()
    answer = models.TextField()
    confidence = models.FloatField()  # the model's raw confidence, before any calibration
    item = models.ForeignKey(
        "annotation.Item", null=True, blank=True, on_delete=models.SET_NULL, related_name="ask_answers"
    )
    # The sampled answer as a response for raters (Project.answered_review_ratings); its ratings are an
    # outcome until the item is approved.
    response = models.ForeignKey(
        "review.Response", null=True, blank=True, on_delete=models.SET_NULL, related_name="ask_answers"
    )
    # How long the ask took in the service up to this answer (model included); null before canaries.
    latency_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # the outcomes of a version: only the sampled answers have an item
            models.Index(
                fields=["model_version", "item"],
                name="askanswer_sampled",
                condition=models.Q(item__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"answer {self.pk} by version {self.model_version_id}"


class QuestionEmbedding(models.Model):
    """The embedding of an answered single-question item's question, for the semantic answer cache
    (training/semantic_cache.py). Valid while the item still asks the question it was computed from
    (`question_key`) and is answered; a lookup checks both, so a stale row answers nothing."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey("annotation.Item", on_delete=models.CASCADE, related_name="question_embeddings")
    model = models.CharField(max_length=500)  # the embedding model directory (Project.semantic_cache_model)
    question_key = models.CharField(max_length=64)
    vector = models.BinaryField()  # float32, unit length
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "model"], name="questionembedding_item_model")]
        indexes = [models.Index(fields=["project", "model", "id"], name="questionembedding_scan")]

    def __str__(self) -> str:
        return f"embedding of item {self.item_id}"


class CanaryState(models.TextChoices):
    RUNNING = "running", _("Running")
    PROMOTED = "promoted", _("Promoted")
    ROLLED_BACK = "rolled_back", _("Rolled back")
    CANCELLED = "cancelled", _("Cancelled")


class Canary(models.Model):
    """A candidate version answering a share of a project's `ask` traffic beside the deployed baseline,
    until its outcomes show it is not worse (promoted) or clearly worse (rolled back); training/canary.py."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="canaries")
    candidate = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="canaries")
    baseline = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="canary_baselines")
    share = models.FloatField()  # of callers (sticky per caller), in (0, 1)
    min_outcomes = models.PositiveIntegerField()
    state = models.CharField(max_length=20, choices=CanaryState.choices, default=CanaryState.RUNNING)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # The arms and the interval the decision was taken on, and why (`canary.canary_report`).
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=models.Q(state="running"), name="one_running_canary_per_project"
            )
        ]

    def __str__(self) -> str:
        return f"canary {self.pk}: version {self.candidate_id} vs {self.baseline_id} ({self.state})"


# --- the fine-tuning loop: snapshots, runs, human evaluation -------------------------------------------


class DatasetSnapshot(models.Model):
    """A frozen list of approved samples (redacted texts kept), with a content hash and a stable split.

    The texts are stored, not referenced: a later edit of an item (a spot check) never changes what a
    run trained on. The files beside the run are written from these rows.
    """

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="snapshots")
    content_hash = models.CharField(max_length=64)
    eval_fraction = models.FloatField()
    n_train = models.PositiveIntegerField(default=0)
    n_eval = models.PositiveIntegerField(default=0)
    n_golden = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"snapshot {self.pk} of project {self.project_id} ({self.n_train}+{self.n_eval})"


class SnapshotSplit(models.TextChoices):
    TRAIN = "train", _("Train")
    EVAL = "eval", _("Evaluation")
    GOLDEN = "golden", _("Golden set")


class SnapshotSample(models.Model):
    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.CASCADE, related_name="samples")
    item = models.ForeignKey("annotation.Item", on_delete=models.CASCADE, related_name="snapshot_samples")
    split = models.CharField(max_length=10, choices=SnapshotSplit.choices)
    # The conversation as approved (earlier-turn edits applied, redacted): the turns before the reply,
    # the reply in `output` and its turn's other keys (its tool calls) in `reply_extra`; `input` repeats
    # the last user turn.
    input = models.TextField()
    system = models.TextField(blank=True)
    messages = models.JSONField(default=list)
    tools = models.JSONField(default=list, blank=True)
    output = models.TextField()
    reply_extra = models.JSONField(default=dict, blank=True)
    sample_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["snapshot_id", "item_id"]
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "item"], name="snapshot_sample_unique_item")
        ]
        # The trigger asks "approved items in no snapshot" on every approval.
        indexes = [models.Index(fields=["item"], name="snapshot_sample_item")]

    def __str__(self) -> str:
        return f"item {self.item_id} in snapshot {self.snapshot_id} ({self.split})"


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Training")
    EVALUATING = "evaluating", _("Evaluating")
    HUMAN_EVAL = "human_eval", _("Awaiting human evaluation")
    AWAITING_DECISION = "awaiting_decision", _("Awaiting the admin's decision")
    PROMOTED = "promoted", _("Promoted")
    REJECTED = "rejected", _("Rejected")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


# While a run is in one of these, no other run of the project starts (the trigger and launches check it
# under the project's row lock). A run awaiting the admin's decision no longer blocks the next one.
ACTIVE_RUN_STATES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.EVALUATING, RunStatus.HUMAN_EVAL)
FINISHED_RUN_STATES = (RunStatus.PROMOTED, RunStatus.REJECTED, RunStatus.FAILED, RunStatus.CANCELLED)


class TrainingRun(models.Model):
    """One fine-tuning run: its snapshot, method and hyper-parameters, progress, evaluation and outcome.

    Progress lives here, not in a worker's memory: a worker writes it (throttled) with a heartbeat, the
    watchdog reads the heartbeat, and a resumed attempt continues from the last checkpoint on disk.
    """

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="training_runs")
    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.PROTECT, related_name="runs")
    trigger = models.CharField(max_length=20, default="manual")  # threshold | manual
    method = models.CharField(max_length=10, default="lora")
    base_model = models.CharField(max_length=500)
    hyperparameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    status_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    # progress
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    learning_rate = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    eta_s = models.FloatField(null=True, blank=True)
    loss_curve = models.JSONField(default=list, blank=True)
    resumed_from = models.JSONField(default=list, blank=True)  # checkpoint directories, one per resume
    output_dir = models.CharField(max_length=500, blank=True)
    trained_model_dir = models.CharField(max_length=500, blank=True)
    # evaluation
    candidate = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="candidate_runs"
    )
    baseline = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="baseline_runs"
    )
    metrics = models.JSONField(default=dict, blank=True)  # {"candidate": {...}, "baseline": {...}}
    gate = models.JSONField(default=dict, blank=True)  # {"passed", "reasons", "rouge_l_floor", ...}
    sample_outputs = models.JSONField(default=list, blank=True)  # per eval item: input, reference, both

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["status", "heartbeat_at"],
                condition=models.Q(status__in=["running", "evaluating"]),
                name="training_run_watchdog",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of project {self.project_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_RUN_STATES


class HumanEvalMode(models.TextChoices):
    """How people judge a run's candidate (`Project.human_eval_mode`, copied onto the round when it opens)."""

    RUBRIC = "rubric", _("Rubric scores")
    PAIRWISE = "pairwise", _("Pairwise: candidate against deployed, blind")
    BOTH = "both", _("Rubric scores and pairwise")


class HumanEvalRound(models.Model):
    """A blind comparison: K eval prompts, candidate and baseline outputs as review Responses to rate
    (rubric), as review Pairs to judge side by side (pairwise), or both."""

    run = models.OneToOneField(TrainingRun, on_delete=models.CASCADE, related_name="human_eval")
    size = models.PositiveIntegerField()
    mode = models.CharField(max_length=10, choices=HumanEvalMode.choices, default=HumanEvalMode.RUBRIC)
    created_at = models.DateTimeField(auto_now_add=True)
    concluded_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"human evaluation of run {self.run_id}"


class HumanEvalPair(models.Model):
    round = models.ForeignKey(HumanEvalRound, on_delete=models.CASCADE, related_name="pairs")
    item = models.ForeignKey("annotation.Item", null=True, on_delete=models.SET_NULL, related_name="+")
    candidate_response = models.ForeignKey("review.Response", on_delete=models.CASCADE, related_name="+")
    baseline_response = models.ForeignKey("review.Response", on_delete=models.CASCADE, related_name="+")
    # The two responses as a compare task (pairwise and both rounds); null in a rubric round.
    pair = models.ForeignKey(
        "review.Pair", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["round_id", "pk"]

    def __str__(self) -> str:
        return f"pair of item {self.item_id} in round {self.round_id}"


# --- model judges (training/judging/) ------------------------------------------------------------------


class ModelJudge(models.Model):
    """A model version that scores a project's review responses on its rubric (and, with `judge_pairs`,
    picks in its compare pairs): a judge identity, kept apart from people. Its judgements are
    JudgeRating / JudgePick rows, never review Ratings, so no human figure counts them.

    Pre-scoring (off by default): a response the judge scores at `prescore_min_confidence` or more and
    at a normalised score of `prescore_min_score` or more is closed for human rating; the uncertain and
    the low-scored go to people."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="model_judges")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="judges")
    prompt_template = models.TextField()
    enabled = models.BooleanField(default=True)
    judge_pairs = models.BooleanField(default=False)
    prescore = models.BooleanField(default=False)
    prescore_min_confidence = models.FloatField(default=0.8)
    prescore_min_score = models.FloatField(default=0.75)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "pk"]
        constraints = [
            # Two judges closing responses by their own thresholds would make "who decided" unclear.
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(prescore=True, enabled=True),
                name="one_prescoring_judge_per_project",
            )
        ]

    def __str__(self) -> str:
        return f"judge {self.pk} ({self.model_version_id}) of project {self.project_id}"


class JudgeRating(models.Model):
    """A judge's scores of one response: per dimension the expected score over the scale's tokens, the
    weighted score on the rubric's scale, the normalised score (0-1), the confidence (the least sure
    dimension's), the rubric version; or, when no judgement could be made, `error` with the reason."""

    judge = models.ForeignKey(ModelJudge, on_delete=models.CASCADE, related_name="ratings")
    response = models.ForeignKey("review.Response", on_delete=models.CASCADE, related_name="judge_ratings")
    rubric = models.ForeignKey("review.Rubric", null=True, on_delete=models.SET_NULL, related_name="+")
    scores = models.JSONField(default=dict, blank=True)  # {dimension key: expected score}
    # {dimension key: {"confidence", "probabilities", "mass"}}: what each score was read from
    details = models.JSONField(default=dict, blank=True)
    weighted_score = models.FloatField(null=True, blank=True)
    normalised_score = models.FloatField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["judge_id", "response_id"]
        constraints = [
            models.UniqueConstraint(fields=["judge", "response"], name="judgerating_judge_response")
        ]

    def __str__(self) -> str:
        return f"judge {self.judge_id} on response {self.response_id}"


class JudgePick(models.Model):
    """A judge's pick in a compare pair: the probability that the pair's first response (response_a)
    is the better, both orders averaged; the choice a | b | tie in the pair's stored order."""

    judge = models.ForeignKey(ModelJudge, on_delete=models.CASCADE, related_name="picks")
    pair = models.ForeignKey("review.Pair", on_delete=models.CASCADE, related_name="judge_picks")
    choice = models.CharField(max_length=3, blank=True)
    p_first = models.FloatField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    position_bias = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["judge_id", "pair_id"]
        constraints = [models.UniqueConstraint(fields=["judge", "pair"], name="judgepick_judge_pair")]

    def __str__(self) -> str:
        return f"judge {self.judge_id} on pair {self.pair_id}"
