from rest_framework import serializers

from core.serializers import StrictSerializer

from .models import Decision


class ReviewSerializer(StrictSerializer):
    decision = serializers.ChoiceField(choices=Decision.choices)
    version = serializers.IntegerField(min_value=1)
    text = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=100_000, default=""
    )
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5_000, default="")
