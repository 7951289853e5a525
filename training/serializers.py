"""Request and response shapes of the model-side API."""

from datetime import datetime

from rest_framework import serializers

from core.serializers import StrictSerializer

from . import versus
from .engine.config import METHODS
from .models import Backend, HandoverTicket, ModelVersion, TrainingRun
from .selectors import ticket_answer, ticket_status

ASK_METADATA_MAX_KEYS = 20


class AskSerializer(StrictSerializer):
    # No max_length here: an over-long question is a 413, decided by the service.
    question = serializers.CharField(trim_whitespace=True)
    # Kept on the item a hand-over or a review sample makes; picks a per-value threshold (calibration).
    metadata = serializers.DictField(required=False, default=dict)

    def validate_metadata(self, value: dict) -> dict:
        if len(value) > ASK_METADATA_MAX_KEYS:
            raise serializers.ValidationError(f"At most {ASK_METADATA_MAX_KEYS} keys; got {len(value)}.")
        for key, item in value.items():
            if item is not None and (not isinstance(item, str | int | float | bool) or len(str(item)) > 200):
                raise serializers.ValidationError(
                    f"{key}: a value must be text, a number or true/false (200 characters at most)."
                )
        return value


class AskResponseSerializer(serializers.Serializer):
    answer = serializers.CharField()
    confidence = serializers.FloatField(allow_null=True)
    model_version = serializers.IntegerField(allow_null=True)
    handed_over = serializers.BooleanField()
    # Who answered: the model, the answer cache (an approved answer to the same question), or people
    # (handed over: the answer is the fallback message, and the ticket follows people's answer).
    source = serializers.ChoiceField(choices=["model", "cache", "people"])
    ticket = serializers.IntegerField(required=False)
    item = serializers.IntegerField(required=False, help_text="The approved item a cached answer comes from.")
    raw_confidence = serializers.FloatField(
        required=False, help_text="The model's own confidence, when `confidence` is the calibrated one."
    )
    agreement = serializers.FloatField(
        required=False, help_text="Voting: how far the model's sampled answers agreed (mean ROUGE-L)."
    )
    similarity = serializers.FloatField(
        required=False,
        help_text="A semantic cache answer: the cosine similarity of the question to the approved one.",
    )
    arm = serializers.ChoiceField(
        choices=["canary", "baseline"], required=False, help_text="The caller's arm while a canary runs."
    )


class TicketSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    answer = serializers.SerializerMethodField()
    answered_at = serializers.SerializerMethodField()

    class Meta:
        model = HandoverTicket
        fields = [
            "id",
            "project",
            "item",
            "question",
            "status",
            "answer",
            "answered_at",
            "model_version",
            "model_answer",
            "confidence",
            "created_at",
        ]

    def get_status(self, ticket) -> str:
        return ticket_status(ticket)

    def get_answer(self, ticket) -> str | None:
        return ticket_answer(ticket)

    def get_answered_at(self, ticket) -> datetime | None:
        return ticket.item.approved_at if ticket_answer(ticket) is not None else None


class ModelVersionSerializer(serializers.ModelSerializer):
    # The API key is write-only: an answer says whether one is set, never what it is.
    server_api_key_set = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "project",
            "name",
            "base_model",
            "adapter_path",
            "prompt_template",
            "generation",
            "backend",
            "server_url",
            "server_model",
            "server_api_key_set",
            "server_options",
            "status",
            "created_at",
            "deployed_at",
        ]
        read_only_fields = fields

    def get_server_api_key_set(self, version) -> bool:
        return bool(version.server_api_key)


class ModelVersionCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    base_model = serializers.CharField(max_length=500, required=False, allow_blank=True)
    adapter_path = serializers.CharField(max_length=500, required=False, allow_blank=True)
    prompt_template = serializers.CharField(required=False)
    generation = serializers.DictField(required=False)
    backend = serializers.ChoiceField(choices=Backend.choices, required=False)
    server_url = serializers.CharField(max_length=500, required=False, allow_blank=True)
    server_model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    server_api_key = serializers.CharField(
        max_length=500, required=False, allow_blank=True, write_only=True, trim_whitespace=True
    )
    server_options = serializers.DictField(required=False)


class TrainingRunCreateSerializer(StrictSerializer):
    method = serializers.ChoiceField(choices=METHODS, default="lora")
    hyperparameters = serializers.DictField(required=False)
    base_model = serializers.CharField(max_length=500, required=False, allow_blank=True)


class VersionsCompareSerializer(StrictSerializer):
    version_a = serializers.IntegerField()
    version_b = serializers.IntegerField()
    n = serializers.IntegerField(min_value=1, max_value=versus.MAX_PROMPTS, default=20)
    prompts = serializers.ChoiceField(choices=versus.PROMPT_SOURCES, default="approved")


class TrainingRunSerializer(serializers.ModelSerializer):
    snapshot = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    human_eval = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "project",
            "status",
            "status_reason",
            "trigger",
            "method",
            "base_model",
            "hyperparameters",
            "snapshot",
            "progress",
            "loss_curve",
            "attempts",
            "resumed_from",
            "cancel_requested",
            "candidate",
            "baseline",
            "metrics",
            "gate",
            "sample_outputs",
            "human_eval",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
        ]

    def get_snapshot(self, run) -> dict:
        s = run.snapshot
        return {
            "id": s.pk,
            "content_hash": s.content_hash,
            "n_train": s.n_train,
            "n_eval": s.n_eval,
            "n_golden": s.n_golden,
            "eval_fraction": s.eval_fraction,
        }

    def get_progress(self, run) -> dict:
        return {
            "step": run.step,
            "total_steps": run.total_steps,
            "loss": run.loss,
            "learning_rate": run.learning_rate,
            "tokens_per_s": run.tokens_per_s,
            "eta_s": run.eta_s,
        }

    def get_human_eval(self, run) -> dict | None:
        round_ = getattr(run, "human_eval", None)
        if round_ is None:
            return None
        return {
            "size": round_.size,
            "mode": round_.mode,
            "created_at": round_.created_at,
            "concluded_at": round_.concluded_at,
            "result": round_.result or None,
        }


class TrainingRunListSerializer(TrainingRunSerializer):
    class Meta(TrainingRunSerializer.Meta):
        fields = [
            "id",
            "project",
            "status",
            "status_reason",
            "trigger",
            "method",
            "snapshot",
            "progress",
            "candidate",
            "created_at",
            "finished_at",
        ]
