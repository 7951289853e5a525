"""Request and response shapes of the model-side API."""

from datetime import datetime

from rest_framework import serializers

from core.serializers import StrictSerializer

from .models import HandoverTicket, ModelVersion
from .selectors import ticket_answer, ticket_status


class AskSerializer(StrictSerializer):
    # No max_length here: an over-long question is a 413, decided by the service.
    question = serializers.CharField(trim_whitespace=True)


class AskResponseSerializer(serializers.Serializer):
    answer = serializers.CharField()
    confidence = serializers.FloatField(allow_null=True)
    model_version = serializers.IntegerField(allow_null=True)
    handed_over = serializers.BooleanField()
    ticket = serializers.IntegerField(required=False)


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
            "status",
            "created_at",
            "deployed_at",
        ]
        read_only_fields = ["id", "project", "status", "created_at", "deployed_at"]


class ModelVersionCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    base_model = serializers.CharField(max_length=500, required=False, allow_blank=True)
    adapter_path = serializers.CharField(max_length=500, required=False, allow_blank=True)
    prompt_template = serializers.CharField(required=False)
    generation = serializers.DictField(required=False)
