"""API shapes of projects and memberships; validation of input only, no business rules."""

from rest_framework import serializers

from annotation.models import Membership, Project, Role
from core.serializers import StrictModelSerializer, StrictSerializer

PROJECT_SETTINGS = [
    "name", "slug", "description", "guidelines", "prompt_template", "review_tiers", "ratings_per_response",
    "ratings_max_per_response", "rating_disagreement_threshold", "adjudicate_disagreements",
    "retrain_threshold", "confidence_threshold", "fallback_message", "spot_check_rate", "draft_candidates",
    "route_low_confidence_to_expert", "redact_on_import", "compliance_phrases", "log_person_phrases",
    "log_complaint_phrases", "eval_rouge_l_floor",
    "eval_rouge_l_tolerance", "human_eval_size", "human_eval_min_alpha", "training_hyperparameters",
    "training_objective", "human_eval_mode", "human_eval_min_win_rate", "answer_cache", "vote_min_agreement",
    "semantic_cache_model", "semantic_cache_threshold",
    "answered_review_rate", "answered_review_ratings", "answer_target_precision", "metadata_thresholds",
    "golden_item_ids", "edit_all_assistant_turns",
    "gold_rate", "gold_window", "gold_min_accuracy", "gold_action", "gold_min_similarity",
]  # fmt: skip


class ProjectSerializer(StrictModelSerializer):
    my_roles = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["id", *PROJECT_SETTINGS, "created_at", "my_roles"]
        read_only_fields = ["id", "created_at", "my_roles"]
        extra_kwargs = {"slug": {"required": False, "validators": []}}

    def get_my_roles(self, project: Project) -> list[str]:
        roles_by_project = self.context.get("roles_by_project", {})
        return sorted(roles_by_project.get(project.pk, set()))


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]
        read_only_fields = fields


class MembershipAddSerializer(StrictSerializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)
