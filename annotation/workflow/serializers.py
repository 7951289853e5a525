"""API shapes of the work queue: tasks, submissions, the item list and its history."""

from rest_framework import serializers

from annotation.models import Draft, Item, Revision, Stage
from core.serializers import StrictSerializer


class DraftSerializer(serializers.ModelSerializer):
    model_version = serializers.CharField(source="model_version.name", default=None, read_only=True)

    class Meta:
        model = Draft
        fields = ["id", "text", "confidence", "rank", "model_version"]


class RevisionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True)

    class Meta:
        model = Revision
        fields = ["id", "text", "turn_edits", "author", "stage", "draft", "created_at"]


class ItemSerializer(serializers.ModelSerializer):
    answer = serializers.CharField(source="current_revision.text", default=None, read_only=True)

    class Meta:
        model = Item
        fields = [
            "id",
            "project",
            "input",
            "system",
            "messages",
            "tools",
            "reference_output",
            "reference_extra",
            "metadata",
            "external_id",
            "source",
            "status",
            "priority",
            "version",
            "needs_expert",
            "low_confidence",
            "answer",
            "lease_stage",
            "lease_expires_at",
            "approved_at",
            "created_at",
            "updated_at",
        ]


class TaskSerializer(serializers.Serializer):
    """What `tasks/next` answers: the item, its drafts, the answer so far, and why it came back."""

    item = ItemSerializer()
    drafts = DraftSerializer(many=True)
    revision = RevisionSerializer(allow_null=True)
    autosave = serializers.SerializerMethodField()
    rejection = serializers.SerializerMethodField()
    guidelines = serializers.CharField()
    compliance_flags = serializers.ListField(child=serializers.CharField())

    def get_autosave(self, task) -> dict | None:
        autosave = task["autosave"]
        return (
            {
                "text": autosave.text,
                "turn_edits": autosave.turn_edits,
                "draft": autosave.draft_id,
                "updated_at": autosave.updated_at,
            }
            if autosave
            else None
        )

    def get_rejection(self, task) -> dict | None:
        decision = task["rejection"]
        if decision is None:
            return None
        return {
            "comment": decision.comment,
            "reviewer": decision.reviewer.username if decision.reviewer else None,
            "stage": decision.stage,
            "at": decision.created_at,
        }


RATE_STAGE = "rate"  # responses to score on the rubric (review.rating), not items
# pairs to judge side by side, and sets of responses to rank (review.preference)
PREFERENCE_STAGES = ("compare", "rank")


class ClaimSerializer(StrictSerializer):
    stage = serializers.ChoiceField(choices=[*Stage.values, RATE_STAGE, *PREFERENCE_STAGES])


def turns_field():
    """{turn index: text} for earlier assistant turns; the service checks the indexes and the texts
    (blank texts pass here so that the error can name the turn)."""
    return serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=100_000),
        required=False,
        help_text="Edits of earlier assistant turns, {turn index in messages: text}; only where the "
        "project's edit_all_assistant_turns is on.",
    )


class SubmitSerializer(StrictSerializer):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=100_000)
    version = serializers.IntegerField(min_value=1)
    draft_id = serializers.IntegerField(required=False, allow_null=True)
    turns = turns_field()


class FlagSerializer(StrictSerializer):
    version = serializers.IntegerField(min_value=1)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5_000, default="")


class AutosaveSerializer(StrictSerializer):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=100_000)
    draft_id = serializers.IntegerField(required=False, allow_null=True)
    turns = turns_field()


class TurnChangeSerializer(serializers.Serializer):
    """One turn a revision changed: its place, its role, and the diff against the text it was based on."""

    index = serializers.IntegerField(help_text="0-based index in the conversation (messages, then the reply)")
    number = serializers.IntegerField(help_text="1-based turn number, as people count turns")
    role = serializers.CharField()
    reply = serializers.BooleanField(help_text="the turn under work (the final assistant turn)")
    diff = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))


class HistoryEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    actor = serializers.CharField(allow_null=True)
    action = serializers.CharField()
    to = serializers.CharField()
    data = serializers.JSONField()
    revision = serializers.JSONField(required=False)
    diff = serializers.ListField(child=serializers.ListField(child=serializers.CharField()), required=False)
    turns = TurnChangeSerializer(many=True, required=False)
    comment = serializers.CharField(required=False)

    def to_representation(self, entry):
        data = super().to_representation(entry)
        data["from"] = entry["from"]
        return data
