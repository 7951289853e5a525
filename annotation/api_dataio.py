"""REST endpoints for imports and exports: authenticate, validate, call one service or selector."""

import json

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from core.serializers import StrictSerializer

from . import exporting, importing, selectors
from .dataio.exporters import EXPORT_FORMATS
from .dataio.parsers import FORMATS
from .models import ImportJob, ItemStatus
from .permissions import check_project_admin

# Multipart framing around the file; a body this much over the file limit cannot be a valid upload.
MULTIPART_SLACK = 1024 * 1024


class ImportJobSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    counts = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    errors_truncated = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = ["id", "project", "filename", "format", "mapping", "skip_invalid", "redact", "status",
                  "counts", "progress", "errors", "errors_total", "errors_truncated", "message", "created_by",
                  "created_at", "started_at", "heartbeat_at", "finished_at"]  # fmt: skip
        read_only_fields = fields

    def get_counts(self, job: ImportJob) -> dict[str, int]:
        return {"read": job.rows_read, "imported": job.rows_imported, "duplicates": job.rows_duplicate,
                "invalid": job.rows_invalid, "flagged": job.rows_flagged}  # fmt: skip

    def get_progress(self, job: ImportJob) -> dict[str, int]:
        return {"bytes_read": job.bytes_read, "bytes_total": job.bytes_total, "percent": job.percent}

    def get_errors_truncated(self, job: ImportJob) -> bool:
        return job.errors_total > len(job.errors)


class ImportCreateSerializer(StrictSerializer):
    # An empty file gets the parser's line-numbered "file is empty" like every other bad file.
    file = serializers.FileField(allow_empty_file=True)
    format = serializers.ChoiceField(choices=["", *FORMATS], required=False, default="", allow_blank=True)
    # A JSON object sent as a multipart text part: {"input": "question", "external_id": "id", ...}.
    mapping = serializers.JSONField(binary=True, required=False, allow_null=True, default=None)
    skip_invalid = serializers.BooleanField(required=False, default=False)
    # Left out: the project's redact_on_import setting.
    redact = serializers.BooleanField(required=False, allow_null=True, default=None)


class ProjectImportsApi(GenericAPIView):
    serializer_class = ImportJobSerializer

    def get(self, request, project_id: int):
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        check_project_admin(user=request.user, project=project)
        jobs = importing.import_jobs_recent(project=project, limit=100)
        return Response(ImportJobSerializer(jobs, many=True).data)

    @extend_schema(
        request={"multipart/form-data": ImportCreateSerializer}, responses={202: ImportJobSerializer}
    )
    def post(self, request, project_id: int):
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        check_project_admin(user=request.user, project=project)
        # Refuse an oversized body from its header, before reading (and spooling) any of it.
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > MULTIPART_SLACK:
            importing.check_file_size(size=declared - MULTIPART_SLACK)
        serializer = ImportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        job = importing.import_job_create(
            project=project,
            actor=request.user,
            filename=upload.name,
            file=upload,
            fmt=data["format"],
            mapping=data["mapping"],
            skip_invalid=data["skip_invalid"],
            redact=data["redact"],
        )
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportDetailApi(GenericAPIView):
    serializer_class = ImportJobSerializer

    def get(self, request, job_id: int):
        job = importing.import_job_get_for_user(user=request.user, job_id=job_id)
        return Response(ImportJobSerializer(job).data)


class ExportQuerySerializer(StrictSerializer):
    format = serializers.ChoiceField(choices=EXPORT_FORMATS)
    status = serializers.ChoiceField(choices=ItemStatus.values, required=False, default=ItemStatus.APPROVED)
    metadata = serializers.BooleanField(required=False, default=False)
    part = serializers.ChoiceField(choices=["data", "dataset_info"], required=False, default="data")


class ProjectExportApi(GenericAPIView):
    """The export file, streamed from a temporary file once every sample validated.

    Headers: `X-Dataset-Info` (the dataset_info.json content for the file, compact JSON), `X-Record-Count`,
    and `Link: <...&part=dataset_info>; rel="describedby"`, which answers that JSON as a document.
    """

    serializer_class = ExportQuerySerializer

    def perform_content_negotiation(self, request, force=False):
        # ?format= names the export, not a DRF renderer.
        return JSONRenderer(), "application/json"

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(EXPORT_FORMATS), required=True),
            OpenApiParameter("status", str, enum=list(ItemStatus.values)),
            OpenApiParameter("metadata", bool),
            OpenApiParameter("part", str, enum=["data", "dataset_info"]),
        ],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def get(self, request, project_id: int):
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        check_project_admin(user=request.user, project=project)
        query = ExportQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if params["part"] == "dataset_info":
            info = exporting.export_dataset_info(project=project, fmt=params["format"])
            if info is None:
                return Response({}, status=status.HTTP_200_OK)
            return Response(info)
        export = exporting.export_to_tempfile(
            project=project, actor=request.user, fmt=params["format"], status=params["status"],
            metadata=params["metadata"],
        )  # fmt: skip
        response = FileResponse(
            export.file, as_attachment=True, filename=export.file_name, content_type=export.content_type
        )
        response["X-Record-Count"] = str(export.records)
        if export.dataset_info is not None:
            response["X-Dataset-Info"] = json.dumps(export.dataset_info, separators=(",", ":"))
            link = reverse("api-project-export", args=[project.pk])
            response["Link"] = f'<{link}?format={params["format"]}&part=dataset_info>; rel="describedby"'
        return response
