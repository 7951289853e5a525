"""REST endpoints of per-person quality: the table as JSON and as CSV. Members see their own row,
project admins and staff everyone's; a project they cannot see is 404."""

from __future__ import annotations

import csv

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.selectors import project_get_for_user
from core.serializers import StrictSerializer
from review.quality import selectors as quality


class QualityQuerySerializer(StrictSerializer):
    days = serializers.IntegerField(min_value=1, max_value=quality.MAX_DAYS, default=quality.DEFAULT_DAYS)


def quality_days(params: dict) -> int:
    """The window's length from the query string (400 naming `days` when it is not 1–3650)."""
    serializer = QualityQuerySerializer(data={key: value for key, value in params.items() if value != ""})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["days"]


class _Echo:
    def write(self, value):
        return value


class PersonQualityApi(APIView):
    @extend_schema(
        parameters=[QualityQuerySerializer], responses=OpenApiResponse(description="Per-person quality")
    )
    def get(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        days = quality_days(request.query_params.dict())
        return ApiResponse(quality.person_quality_for(user=request.user, project=project, days=days))


class PersonQualityCsvApi(APIView):
    @extend_schema(parameters=[QualityQuerySerializer], responses={(200, "text/csv"): bytes})
    def get(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        days = quality_days(request.query_params.dict())
        report = quality.person_quality_for(user=request.user, project=project, days=days)
        writer = csv.writer(_Echo())
        rows = (writer.writerow(row) for row in quality.csv_rows(report))
        response = StreamingHttpResponse(rows, content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-quality-{days}d.csv"'
        return response
