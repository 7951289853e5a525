"""REST endpoints of imports: authenticate, validate, call one service or selector."""

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from annotation import importing, selectors
from annotation.dataio.parsers import FIELDS, FORMATS
from annotation.models import ImportJob
from annotation.permissions import check_project_admin
from core.serializers import StrictSerializer

# Multipart framing around the file; a body this much over the file limit cannot be a valid upload.
MULTIPART_SLACK = 1024 * 1024


class ImportJobSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    counts = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    errors_truncated = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = ["id", "project", "filename", "format", "detected_format", "mapping", "options",
                  "skip_invalid", "redact", "status", "counts", "progress", "key_report", "format_report",
                  "errors", "errors_total",
                  "errors_truncated", "message", "created_by", "created_at", "started_at", "heartbeat_at",
                  "finished_at"]  # fmt: skip
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
    # A JSON object sent as a multipart text part: {"input": "question", "external_id": "id", ...}; a
    # field mapped to null comes from no key (its usual key then lands in metadata).
    mapping = serializers.JSONField(
        binary=True, required=False, allow_null=True, default=None,
        help_text=f"field -> source key or null; fields: {', '.join(FIELDS)}",
    )  # fmt: skip
    skip_invalid = serializers.BooleanField(required=False, default=False)
    # Left out: the project's redact_on_import setting.
    redact = serializers.BooleanField(required=False, allow_null=True, default=None)
    # chat_log only (checked by the import service, which names the field): a longer silence starts a new
    # conversation; left out, 30 minutes.
    session_gap_minutes = serializers.FloatField(required=False, allow_null=True, default=None)


def _format_options(data) -> dict:
    gap = data["session_gap_minutes"]
    return {} if gap is None else {"session_gap_minutes": gap}


def _import_upload(request, project_id: int):
    """The project and the validated import body, for the project's admins; an oversized body is refused
    from its header, before any of it is read (and spooled)."""
    project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    check_project_admin(user=request.user, project=project)
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > MULTIPART_SLACK:
        importing.check_file_size(size=declared - MULTIPART_SLACK)
    serializer = ImportCreateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return project, serializer.validated_data


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
        project, data = _import_upload(request, project_id)
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
            options=_format_options(data),
        )
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportPreviewSerializer(serializers.Serializer):
    format = serializers.CharField(help_text="what the file is read as (a schema, or csv/json/jsonl)")
    rows = serializers.ListField(
        child=serializers.DictField(),
        help_text="the first rows as items will hold them: line, external_id, system, messages, "
        "reference_output, reference_extra, tools, metadata",
    )
    keys = serializers.DictField(help_text='{source key: {"to": destination, "rows": n}}')
    errors = serializers.ListField(child=serializers.DictField())
    errors_total = serializers.IntegerField()
    records_read = serializers.IntegerField()
    records_invalid = serializers.IntegerField()
    complete = serializers.BooleanField(help_text=f"false: only the first {importing.PREVIEW_MAX_RECORDS:,} "
                                                  "records were read")  # fmt: skip
    format_report = serializers.DictField(
        help_text="chat_log: messages, duplicate_messages, sessions, conversations, split_by_gap, "
        "without_user, truncated"
    )


class ImportPreviewApi(GenericAPIView):
    """What an import of the same body would store, from the file's first records; creates nothing."""

    serializer_class = ImportPreviewSerializer

    @extend_schema(
        request={"multipart/form-data": ImportCreateSerializer}, responses={200: ImportPreviewSerializer}
    )
    def post(self, request, project_id: int):
        project, data = _import_upload(request, project_id)
        upload = data["file"]
        preview = importing.import_preview(
            project=project, actor=request.user, file=upload, filename=upload.name, fmt=data["format"],
            mapping=data["mapping"], redact=data["redact"], options=_format_options(data),
        )  # fmt: skip
        return Response(asdict(preview))


class ImportDetailApi(GenericAPIView):
    serializer_class = ImportJobSerializer

    def get(self, request, job_id: int):
        job = importing.import_job_get_for_user(user=request.user, job_id=job_id)
        return Response(ImportJobSerializer(job).data)
