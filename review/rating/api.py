"""REST endpoints of rubric scoring: rubric, responses, ratings, the rate queue, agreement, scores, export."""

import csv

from django.contrib.auth import get_user_model
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.models import Role
from annotation.permissions import check_project_role
from annotation.selectors import project_get_for_user
from core.errors import ApplicationError
from core.serializers import StrictSerializer
from review.models import MeasurementLevel, ResponseOrigin
from review.models import Response as ScoredResponse
from review.rating import selectors as rating_selectors
from review.rating import services as rating
from review.rating.selectors import RatingFilters

# --- serializers ---------------------------------------------------------------------------------------


class DimensionSerializer(StrictSerializer):
    key = serializers.SlugField(max_length=50)
    label = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    label_zh = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    weight = serializers.FloatField()
    scale_min = serializers.IntegerField(required=False, default=1)
    scale_max = serializers.IntegerField(required=False, default=5)
    level = serializers.ChoiceField(choices=MeasurementLevel.choices, required=False, default="ordinal")


class RubricWriteSerializer(StrictSerializer):
    dimensions = DimensionSerializer(many=True, allow_empty=False)
    blind = serializers.BooleanField(required=False)


def rubric_data(rubric) -> dict:
    return {
        "version": rubric.version,
        "blind": rubric.blind,
        "created_at": rubric.created_at,
        "dimensions": [
            {
                "key": d.key,
                "label": d.label,
                "label_zh": d.label_zh,
                "description": d.description,
                "weight": d.weight,
                "scale_min": d.scale_min,
                "scale_max": d.scale_max,
                "level": d.level,
            }
            for d in rubric.dimensions.all()
        ],
    }


class ResponseCreateSerializer(StrictSerializer):
    # The conversation answered: `messages` (+ `system`), or a single user turn given as `input`.
    input = serializers.CharField(
        max_length=100_000, trim_whitespace=False, required=False, allow_blank=True, default=""
    )
    system = serializers.CharField(
        max_length=100_000, trim_whitespace=False, required=False, allow_blank=True, default=""
    )
    messages = serializers.ListField(
        child=serializers.JSONField(),
        required=False,
        max_length=1_000,
        help_text="the turns before the response",
    )
    text = serializers.CharField(max_length=100_000, trim_whitespace=False)
    origin = serializers.ChoiceField(choices=ResponseOrigin.choices)
    model = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    model_version = serializers.IntegerField(required=False, min_value=1)
    item = serializers.IntegerField(required=False, min_value=1)


class RatingCreateSerializer(StrictSerializer):
    # Any JSON: scores_validate reports a non-object, every missing, unknown and out-of-scale dimension.
    scores = serializers.JSONField()


class RatingTaskSerializer(serializers.Serializer):
    """A response claimed from the `rate` queue, as its rater may see it (blind hides origin and model)."""

    id = serializers.IntegerField()
    project = serializers.IntegerField()
    input = serializers.CharField()
    system = serializers.CharField(allow_blank=True)
    messages = serializers.ListField(child=serializers.DictField())
    text = serializers.CharField()
    blind = serializers.BooleanField()
    origin = serializers.CharField(required=False)
    model = serializers.CharField(required=False)
    rubric = serializers.DictField()
    lease_expires_at = serializers.DateTimeField(allow_null=True)


def response_data(*, response, user) -> dict:
    """A response as `user` may see it (rating_selectors.response_view), with the conversation it answers."""
    view = rating_selectors.response_view(response=response, user=user)
    return {**view, "system": response.system, "messages": response.messages}


def rating_task_next(*, project, user) -> dict | None:
    """The work queue's "rate" stage (`tasks/next`, filled in as a hook point of core.hooks): the next
    response to score, as rating_task_data renders it, or None when there is none."""
    response = rating.rating_claim_next(project=project, user=user)
    return None if response is None else rating_task_data(response=response, user=user)


def rating_task_data(*, response, user) -> dict:
    """What `POST /api/projects/{id}/tasks/next/ {"stage": "rate"}` answers with (RatingTaskSerializer)."""
    from review.models import RatingAssignment

    view = rating_selectors.response_view(response=response, user=user)
    assignment = RatingAssignment.objects.filter(response=response, rater=user).first()
    data = {key: view[key] for key in ("id", "project", "input", "text", "blind") if key in view}
    data.update(system=response.system, messages=response.messages)
    if not view["blind"]:
        data.update(origin=view.get("origin", ""), model=view.get("model", ""))
    data["rubric"] = rubric_data(rating.rubric_current(project=response.project))
    data["lease_expires_at"] = assignment.expires_at if assignment else None
    return RatingTaskSerializer(data).data


class ReportQuerySerializer(StrictSerializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    origin = serializers.CharField(required=False, allow_blank=True, default="")
    model = serializers.CharField(required=False, allow_blank=True, default="")
    rater = serializers.CharField(required=False, allow_blank=True, default="")
    bootstrap = serializers.IntegerField(required=False, min_value=0, max_value=10_000, default=1000)
    seed = serializers.IntegerField(required=False, min_value=0, default=0)
    by = serializers.ChoiceField(choices=["origin", "model"], required=False, default="model")


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def report_query(params: dict, project) -> tuple[RatingFilters, dict]:
    """Filters from the query string: since/until (ISO), origin, model, rater (usernames or ids, commas)."""
    serializer = ReportQuerySerializer(data={key: value for key, value in params.items() if value != ""})
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    origins = _split(data["origin"])
    unknown = [o for o in origins if o not in ResponseOrigin.values]
    if unknown:
        raise ApplicationError(
            f"origin: {', '.join(unknown)} is not one of {', '.join(ResponseOrigin.values)}"
        )
    raters = []
    users = get_user_model().objects.filter(memberships__project=project).distinct()
    for token in _split(data["rater"]):
        found = users.filter(pk=int(token)) if token.isdigit() else users.filter(username=token)
        user_id = found.values_list("pk", flat=True).first()
        if user_id is None:
            raise ApplicationError(f"rater: {token!r} is not a member of this project")
        raters.append(user_id)
    filters = RatingFilters(
        since=data.get("since"),
        until=data.get("until"),
        origins=origins,
        models=_split(data["model"]),
        raters=tuple(raters),
    )
    return filters, data


# --- views -----------------------------------------------------------------------------------------------


class RubricApi(APIView):
    @extend_schema(responses=OpenApiResponse(description="The current rubric version"))
    def get(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        return ApiResponse(rubric_data(rating.rubric_current(project=project)))

    @extend_schema(request=RubricWriteSerializer, responses=OpenApiResponse(description="The rubric"))
    def put(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        serializer = RubricWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        specs = [rating.DimensionSpec(**d) for d in serializer.validated_data["dimensions"]]
        rubric = rating.rubric_update(
            project=project,
            actor=request.user,
            dimensions=specs,
            blind=serializer.validated_data.get("blind"),
        )
        return ApiResponse(rubric_data(rubric))


class ProjectResponsesApi(APIView):
    @extend_schema(
        request=ResponseCreateSerializer, responses={201: OpenApiResponse(description="The response")}
    )
    def post(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        serializer = ResponseCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        version_id, item_id = data.pop("model_version", None), data.pop("item", None)
        version = item = None
        if version_id is not None:
            # The model versions are training's, a layer above: reached through the relation, not imported.
            versions = ScoredResponse._meta.get_field("model_version").related_model.objects
            version = versions.filter(pk=version_id, project=project).first()
            if version is None:
                raise ApplicationError("model_version: no such model version in this project")
        if item_id is not None:
            from annotation.models import Item

            item = Item.objects.filter(pk=item_id, project=project).first()
            if item is None:
                raise ApplicationError("item: no such item in this project")
        response = rating.response_create(
            project=project, actor=request.user, model_version=version, item=item, **data
        )
        return ApiResponse(
            response_data(response=response, user=request.user), status=status.HTTP_201_CREATED
        )


class ResponseDetailApi(APIView):
    @extend_schema(responses=OpenApiResponse(description="The response, blind for raters in blind mode"))
    def get(self, request, response_id: int):
        response = rating_selectors.response_get_for_user(user=request.user, response_id=response_id)
        return ApiResponse(response_data(response=response, user=request.user))


class ResponseRatingsApi(APIView):
    @extend_schema(request=RatingCreateSerializer, responses={201: OpenApiResponse(description="The rating")})
    def post(self, request, response_id: int):
        serializer = RatingCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = rating.rating_submit(
            response_id=response_id, rater=request.user, scores=serializer.validated_data["scores"]
        )
        return ApiResponse(
            {
                "id": created.pk,
                "response": created.response_id,
                "rater": request.user.username,
                "rubric_version": created.rubric.version,
                "scores": created.scores,
                "weighted_score": created.weighted_score,
                "created_at": created.created_at,
            },
            status=status.HTTP_201_CREATED,
        )


class RatingNextApi(APIView):
    """The `rate` queue on its own route, until tasks/next routes stage "rate" here."""

    @extend_schema(
        request=None,
        responses={200: RatingTaskSerializer, 204: OpenApiResponse(description="Nothing to rate")},
    )
    def post(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        response = rating.rating_claim_next(project=project, user=request.user)
        if response is None:
            return ApiResponse(status=status.HTTP_204_NO_CONTENT)
        return ApiResponse(rating_task_data(response=response, user=request.user))


class AgreementApi(APIView):
    @extend_schema(
        parameters=[ReportQuerySerializer], responses=OpenApiResponse(description="Agreement report")
    )
    def get(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        check_project_role(user=request.user, project=project, roles={Role.ADMIN})
        filters, data = report_query(request.query_params.dict(), project)
        report = rating_selectors.agreement_report(
            project=project, filters=filters, bootstrap=data["bootstrap"], seed=data["seed"]
        )
        return ApiResponse(report)


class ScoresApi(APIView):
    @extend_schema(parameters=[ReportQuerySerializer], responses=OpenApiResponse(description="Score groups"))
    def get(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        check_project_role(user=request.user, project=project, roles={Role.ADMIN})
        filters, data = report_query(request.query_params.dict(), project)
        groups = rating_selectors.score_comparison(project=project, filters=filters, by=data["by"])
        return ApiResponse({"by": data["by"], "filters": filters.as_dict(), "groups": groups})


class _Echo:
    def write(self, value):
        return value


class RatingsExportApi(APIView):
    @extend_schema(parameters=[ReportQuerySerializer], responses={(200, "text/csv"): bytes})
    def get(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        check_project_role(user=request.user, project=project, roles={Role.ADMIN})
        filters, _data = report_query(request.query_params.dict(), project)
        writer = csv.writer(_Echo())
        rows = rating_selectors.ratings_export_rows(project=project, filters=filters)
        response = StreamingHttpResponse((writer.writerow(row) for row in rows), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-ratings.csv"'
        return response
