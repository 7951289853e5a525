"""Domain model of annotation: projects and who may do what in them, items, and the audit log."""

import string

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F
from django.utils.translation import gettext_lazy as _

from annotation.dataio.chat_logs import DEFAULT_COMPLAINT_PHRASES, DEFAULT_PERSON_PHRASES


class Role(models.TextChoices):
    ANNOTATOR = "annotator", _("Annotator")
    EXPERT = "expert", _("Expert reviewer")
    DOMAIN_REVIEWER = "domain_reviewer", _("Domain reviewer")
    ADMIN = "admin", _("Project admin")


def validate_prompt_template(template: str) -> None:
    """A template renders the model input: it must contain {input} and no other placeholder."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValidationError(_("Malformed template: %(reason)s"), params={"reason": exc}) from exc
    if "input" not in fields:
        raise ValidationError(_("The prompt template must contain the {input} placeholder."))
    # {context} is what {system} was called before items held conversations; both place the system text.
    unknown = sorted(fields - {"input", "system", "context"})
    if unknown:
        raise ValidationError(
            _("Unknown placeholders in the prompt template: %(names)s (allowed: {input}, {system})."),
            params={"names": ", ".join("{" + name + "}" for name in unknown)},
        )


def validate_metadata_thresholds(value) -> None:
    """{key: {value: threshold in [0, 1]}}: per metadata value, the confidence an answer needs."""
    if not isinstance(value, dict):
        raise ValidationError(_('Expected an object such as {"category": {"billing": 0.8}}.'))
    for key, per_value in value.items():
        if not isinstance(per_value, dict):
            raise ValidationError(
                _("%(key)s: expected an object of values and thresholds."), params={"key": key}
            )
        for name, threshold in per_value.items():
            if (
                isinstance(threshold, bool)
                or not isinstance(threshold, int | float)
                or not 0 <= threshold <= 1
            ):
                raise ValidationError(
                    _("%(key)s.%(name)s: the threshold must be a number from 0 to 1."),
                    params={"key": key, "name": name},
                )


def validate_phrases(value) -> None:
    """A list of phrases, each with text."""
    if not isinstance(value, list):
        raise ValidationError(_("Expected a list of phrases."))
    for number, phrase in enumerate(value, start=1):
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValidationError(_("Phrase %(number)s is empty or not text."), params={"number": number})


def default_log_person_phrases() -> list[str]:
    return list(DEFAULT_PERSON_PHRASES)


def default_log_complaint_phrases() -> list[str]:
    return list(DEFAULT_COMPLAINT_PHRASES)


class Project(models.Model):
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    description = models.TextField(_("description"), blank=True)
    guidelines = models.TextField(_("annotation guidelines"), blank=True)
    prompt_template = models.TextField(
        _("prompt template"), default="{input}", validators=[validate_prompt_template]
    )
    review_tiers = models.PositiveSmallIntegerField(
        _("tiers"),
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(3)],
        help_text=_("Tiers an answer passes (1–3): annotation, expert review, domain sign-off."),
    )
    ratings_per_response = models.PositiveSmallIntegerField(
        _("ratings per response"), default=3, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    ratings_max_per_response = models.PositiveSmallIntegerField(
        _("most ratings per disagreed response"),
        default=0,
        validators=[MaxValueValidator(20)],
        help_text=_(
            "Agreement-driven overlap: a response whose ratings disagree beyond the disagreement threshold "
            "(or a compare pair whose judgements are not all the same) gets extra raters up to this many. "
            "0, or the ratings per response, turns it off."
        ),
    )
    rating_disagreement_threshold = models.FloatField(
        _("rating disagreement threshold"),
        default=0.15,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_(
            "Ratings of a response disagree when the standard deviation of their weighted scores, each "
            "rescaled to 0–1 by the rubric's scales, is above this."
        ),
    )
    adjudicate_disagreements = models.BooleanField(
        _("send disagreements to adjudication"),
        default=False,
        help_text=_(
            "A reject of an answer an earlier tier approved (domain review after the expert, or a spot "
            "check) waits for an admin or domain reviewer to decide, as does a response whose ratings "
            "still disagree at its most ratings."
        ),
    )
    gold_rate = models.FloatField(
        _("share of gold tasks"),
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_(
            "Gold and attention checks: the share of claims (annotate, expert and domain review, rate, "
            "compare) that serve a gold task the person has not answered yet. 0 turns gold off."
        ),
    )
    gold_window = models.PositiveSmallIntegerField(
        _("gold tasks in the rolling accuracy"),
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(200)],
        help_text=_(
            "A person's gold accuracy is over their last this many gold tasks, once they have that many."
        ),
    )
    gold_min_accuracy = models.FloatField(
        _("lowest gold accuracy"),
        default=0.7,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("Under this rolling gold accuracy the gold action applies to the person."),
    )
    gold_action = models.CharField(
        _("when gold accuracy is too low"),
        max_length=12,
        choices=[
            ("warn", _("Warn the person")),
            ("pause", _("Pause their work in this project")),
            ("extra_review", _("Send their work to an extra review")),
        ],
        default="warn",
    )
    gold_min_similarity = models.FloatField(
        _("gold annotation similarity"),
        default=0.6,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_(
            "An answer to a gold annotation task is right when its ROUGE-L against the gold answer reaches "
            "this (a gold task may set its own)."
        ),
    )
    retrain_threshold = models.PositiveIntegerField(
        _("retrain threshold"), default=200, validators=[MinValueValidator(1)]
    )
    confidence_threshold = models.FloatField(
        _("confidence threshold"), default=0.5, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    fallback_message = models.TextField(
        _("fallback message"),
        default="Thank you for your question. A member of our team will get back to you shortly.",
    )
    spot_check_rate = models.FloatField(
        _("spot-check rate"), default=0.10, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    redact_on_import = models.BooleanField(
        _("redact personal data at import"),
        default=False,
        help_text=_("Replace card numbers, e-mail addresses, phone numbers and ID numbers when importing."),
    )
    compliance_phrases = models.JSONField(
        _("compliance phrases"),
        default=list,
        blank=True,
        help_text=_("Phrases that flag an item or revision for a reviewer's attention."),
    )
    log_person_phrases = models.JSONField(
        _("chat log phrases: asked for a person"),
        default=default_log_person_phrases,
        blank=True,
        validators=[validate_phrases],
        help_text=_("A chat log conversation whose user wrote one of these is flagged asked_for_person."),
    )
    log_complaint_phrases = models.JSONField(
        _("chat log phrases: complained"),
        default=default_log_complaint_phrases,
        blank=True,
        validators=[validate_phrases],
        help_text=_("A chat log conversation whose user wrote one of these is flagged complained."),
    )
    eval_rouge_l_floor = models.FloatField(
        _("evaluation floor (ROUGE-L)"),
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("A candidate model scoring under this ROUGE-L on the eval split is rejected."),
    )
    eval_rouge_l_tolerance = models.FloatField(
        _("evaluation tolerance (ROUGE-L)"),
        default=0.01,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("A candidate may score this much under the deployed model's ROUGE-L and still pass."),
    )
    human_eval_size = models.PositiveIntegerField(
        _("human evaluation prompts"), default=20, validators=[MinValueValidator(1)]
    )
    human_eval_min_alpha = models.FloatField(
        _("minimum agreement to promote"),
        default=0.4,
        validators=[MinValueValidator(-1.0), MaxValueValidator(1.0)],
        help_text=_("Krippendorff's alpha the human round must reach for automatic promotion."),
    )
    training_objective = models.CharField(
        _("training objective"),
        max_length=24,
        choices=[
            ("sft", _("Supervised fine-tuning on approved answers")),
            ("preference", _("Preference training (DPO) on judged pairs")),
            ("sft_then_preference", _("Supervised fine-tuning, then preference training")),
        ],
        default="sft",
        help_text=_("What a training run learns from; preference training starts from the deployed model."),
    )
    vote_min_agreement = models.FloatField(
        _("minimum agreement of the sampled answers"),
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_(
            "Voting: when the model samples several answers (draft candidates > 1), an ask whose answers "
            "agree less than this (mean ROUGE-L of the best against the others) is handed over even when "
            "confident. 0 turns voting off."
        ),
    )
    answer_cache = models.BooleanField(
        _("answer repeated questions from approved answers"),
        default=True,
        help_text=_(
            "An ask whose question matches an approved single-question item (case, spacing and the final "
            "question mark aside) is answered with its approved answer, without the model."
        ),
    )
    semantic_cache_model = models.CharField(
        _("embedding model for the semantic answer cache"),
        max_length=500,
        blank=True,
        help_text=_(
            "A local Hugging Face model directory (e.g. all-MiniLM-L6-v2). With it, an ask whose question "
            "is close in meaning to an approved single question is answered with that answer. Blank: only "
            "the exact cache."
        ),
    )
    semantic_cache_threshold = models.FloatField(
        _("similarity the semantic cache needs"),
        default=0.9,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("Cosine similarity of two questions' embeddings at or above which the cache answers."),
    )
    answered_review_rate = models.FloatField(
        _("answered traffic sampled for review"),
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_(
            "The share of questions the model answered that become items for people to review, so the "
            "confidence calibration keeps learning whether the model's answers are acceptable."
        ),
    )
    answered_review_ratings = models.BooleanField(
        _("raters also score sampled answers"),
        default=False,
        help_text=_(
            "A sampled answer also goes to the rating queue; until people approve its item, its rubric "
            "scores say whether it was acceptable (a normalised weighted score of 0.75 or more)."
        ),
    )
    answer_target_precision = models.FloatField(
        _("target share of acceptable answers"),
        default=0.9,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_(
            "The calibration page suggests the lowest confidence threshold whose answered questions are "
            "acceptable at least this often (95 % lower bound)."
        ),
    )
    metadata_thresholds = models.JSONField(
        _("confidence thresholds per metadata value"),
        default=dict,
        blank=True,
        validators=[validate_metadata_thresholds],
        help_text=_(
            'Per metadata key and value, e.g. {"category": {"billing": 0.8}}: an ask whose metadata has '
            "that value uses this threshold instead of the project's (the highest when several match)."
        ),
    )
    human_eval_mode = models.CharField(
        _("human evaluation"),
        max_length=10,
        choices=[
            ("rubric", _("Rubric scores")),
            ("pairwise", _("Pairwise: candidate against deployed, blind")),
            ("both", _("Rubric scores and pairwise")),
        ],
        default="rubric",
    )
    human_eval_min_win_rate = models.FloatField(
        _("minimum win rate to promote"),
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_(
            "A pairwise round promotes only when the candidate's win rate against the deployed model "
            "(ties count half) reaches this."
        ),
    )
    training_hyperparameters = models.JSONField(
        _("training hyper-parameters"),
        default=dict,
        blank=True,
        help_text=_(
            "Defaults for this project's runs (e.g. learning_rate, max_steps); a launch may override."
        ),  # noqa: E501
    )
    golden_item_ids = models.JSONField(
        _("golden set"),
        default=list,
        blank=True,
        help_text=_("Approved item ids always evaluated and never trained on."),
    )
    draft_candidates = models.PositiveSmallIntegerField(
        _("draft candidates"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text=_("How many model drafts to offer per item (1–5), ranked by confidence."),
    )
    edit_all_assistant_turns = models.BooleanField(
        _("edit every assistant turn"),
        default=False,
        help_text=_(
            "Let people edit the earlier assistant turns of a conversation too, not only the last one."
        ),
    )
    route_low_confidence_to_expert = models.BooleanField(
        _("route unsure drafts to experts"),
        default=False,
        help_text=_("Items whose best draft is under the confidence threshold skip annotation (3 tiers)."),
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        maximum = self.ratings_max_per_response
        if maximum and maximum < self.ratings_per_response:
            raise ValidationError(
                {
                    "ratings_max_per_response": _(
                        "It must be 0 (off) or at least the ratings per response (%(base)s)."
                    )
                    % {"base": self.ratings_per_response}
                }
            )


class Membership(models.Model):
    """A user holds a role in a project; a user may hold several roles in one project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user", "role"], name="membership_unique_role")
        ]
        ordering = ["project_id", "user_id", "role"]

    def __str__(self) -> str:
        return f"{self.user} as {self.role} in {self.project}"


class ItemStatus(models.TextChoices):
    NEW = "new", _("New")
    DRAFTED = "drafted", _("Drafted")
    ANNOTATING = "annotating", _("Annotating")
    SUBMITTED = "submitted", _("Submitted")
    EXPERT_REVIEW = "expert_review", _("Expert review")
    DOMAIN_REVIEW = "domain_review", _("Domain review")
    APPROVED = "approved", _("Approved")
    REWORK = "rework", _("Rework")
    SPOT_CHECK = "spot_check", _("Spot check")
    # Reviewers disagreed (a later tier rejected what an earlier one approved): held for an adjudicator.
    ADJUDICATION = "adjudication", _("Adjudication")


class ItemSource(models.TextChoices):
    IMPORT = "import", _("Import")
    PRODUCTION = "production", _("Production (ask)")
    MANUAL = "manual", _("Manual")
    DEMO = "demo", _("Demo")
    LOG = "log", _("Chat log")


class Item(models.Model):
    """One conversation to be answered: its turns up to the reply under work (annotation.dataio.conversation).

    Its status changes only through the transition services. `input` repeats the last user turn's text
    (what lists, search and the queue show); the turns themselves never change after import: what people
    write are revisions.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    input = models.TextField()  # the last user turn of `messages`
    system = models.TextField(blank=True)
    messages = models.JSONField(default=list)  # the turns before the reply; ends with a user or tool turn
    tools = models.JSONField(default=list, blank=True)
    reference_output = models.TextField(blank=True)  # the reply as imported
    reference_extra = models.JSONField(default=dict, blank=True)  # the imported reply turn's other keys
    metadata = models.JSONField(default=dict, blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    content_hash = models.CharField(max_length=64, db_index=True)
    # A single question's normalised hash (`conversation.question_key`), "" otherwise: the answer cache.
    question_key = models.CharField(max_length=64, blank=True, default="")
    source = models.CharField(max_length=20, choices=ItemSource.choices, default=ItemSource.IMPORT)
    status = models.CharField(max_length=20, choices=ItemStatus.choices, default=ItemStatus.NEW)
    priority = models.IntegerField(default=0)
    version = models.PositiveIntegerField(default=1)  # optimistic lock: every write carries the version
    current_revision = models.ForeignKey(
        "annotation.Revision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who submitted the answer now in review; a reject sends the item back to them as rework.
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    needs_expert = models.BooleanField(default=False)
    low_confidence = models.BooleanField(default=False)
    # A gold task (review.models.GoldTask): served only by the gold draw of a queue, never approved into
    # the data, and shown exactly as other items are.
    is_gold = models.BooleanField(default=False)
    # The lease: who holds the item, in which stage, until when. Null holder = claimable.
    leased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease_stage = models.CharField(max_length=20, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    status_before_lease = models.CharField(max_length=20, blank=True)  # restored on skip or expiry
    approved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"],
                condition=~models.Q(external_id=""),
                name="item_unique_external_id",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "status"], name="item_project_status"),
            models.Index(
                fields=["project", "question_key"],
                condition=~models.Q(question_key=""),
                name="item_question_key",
            ),
            # One partial index per work queue, on exactly its claimable condition, in claim order.
            models.Index(
                F("project"),
                F("priority").desc(),
                F("id"),
                name="item_queue_annotate",
                condition=models.Q(leased_by__isnull=True, status__in=["new", "drafted"]),
            ),
            models.Index(
                F("project"),
                F("priority").desc(),
                F("id"),
                name="item_queue_expert",
                condition=models.Q(leased_by__isnull=True, status="submitted"),
            ),
            models.Index(
                F("project"),
                F("priority").desc(),
                F("id"),
                name="item_queue_domain",
                condition=models.Q(leased_by__isnull=True, status="domain_review"),
            ),
            models.Index(
                F("project"),
                F("priority").desc(),
                F("id"),
                name="item_queue_spot_check",
                condition=models.Q(leased_by__isnull=True, status="spot_check"),
            ),
            models.Index(
                fields=["project", "annotator"],
                name="item_queue_rework",
                condition=models.Q(leased_by__isnull=True, status="rework"),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="item_lease_expiry",
                condition=models.Q(leased_by__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.input[:40]}"


class AuditEvent(models.Model):
    """Append-only record of a state change: who, what, from, to, when."""

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    from_state = models.CharField(max_length=64, blank=True)
    to_state = models.CharField(max_length=64, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id} by {self.actor_id}"
