"""REST endpoint of exports: authenticate, validate, call one service."""

import json

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from annotation import selectors
from annotation.dataio.exporters import EXPORT_FORMATS
from annotation.exporting import services as exporting
from annotation.models import ItemStatus
from annotation.permissions import check_project_admin
from core.serializers import StrictSerializer

# Multipart framing around the file; a body this much over the file limit cannot be a valid upload.
MULTIPART_SLACK = 1024 * 1024


class ExportQuerySerializer(StrictSerializer):
    format = serializers.ChoiceField(choices=EXPORT_FORMATS)
    status = serializers.ChoiceField(choices=ItemStatus.values, required=False, default=ItemStatus.APPROVED)
    metadata = serializers.BooleanField(required=False, default=False)
    part = serializers.ChoiceField(choices=["data", "dataset_info"], required=False, default="data")


class ProjectExportApi(GenericAPIView):
    """The export file, streamed from a temporary file once every sample validated.

    `?metadata.<key>=<value>` exports only the items whose metadata holds that value (several combine);
    an empty value filters nothing, as an empty field of the export page's form means "any".

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
            OpenApiParameter("metadata.<key>", str, description="only items whose metadata <key> is this"),
        ],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def get(self, request, project_id: int):
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        check_project_admin(user=request.user, project=project)
        given = request.query_params.dict()
        matched = selectors.metadata_filters(given)
        filters = {key: value for key, value in matched.items() if value != ""}
        prefix = selectors.METADATA_PARAM
        rest = {k: v for k, v in given.items() if not (k.startswith(prefix) and k[len(prefix) :] in matched)}
        query = ExportQuerySerializer(data=rest)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if params["part"] == "dataset_info":
            info = exporting.export_dataset_info(project=project, fmt=params["format"])
            if info is None:
                return Response({}, status=status.HTTP_200_OK)
            return Response(info)
        export = exporting.export_to_tempfile(
            project=project, actor=request.user, fmt=params["format"], status=params["status"],
            metadata=params["metadata"], filters=filters,
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
