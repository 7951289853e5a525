"""API shape of review decisions."""

from rest_framework import serializers

from annotation.workflow.serializers import turns_field
from core.serializers import StrictSerializer
from review.models import Decision


class ReviewSerializer(StrictSerializer):
    decision = serializers.ChoiceField(choices=Decision.choices)
    version = serializers.IntegerField(min_value=1)
    text = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=100_000, default=""
    )
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5_000, default="")
    turns = turns_field()  # with "edit": edits of earlier assistant turns, where the project allows them
