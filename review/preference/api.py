"""REST endpoints of preferences: pairs and rank sets, the compare and rank queues, judgements and
rankings, the leaderboard, agreement and the exports. Each authenticates, validates and calls one
service or selector."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation import selectors as annotation_selectors
from annotation.models import Role
from annotation.permissions import check_project_role
from annotation.selectors import project_get_for_user, project_visible_to
from core.errors import ApplicationError, NotFound
from core.serializers import StrictSerializer
from review.models import Pair, PairSource, RankAssignment, RankSet, Response, Strength
from review.preference import exporting, importing, judging, queue, services
from review.preference import selectors as preference
from review.preference.formats import PAIR_FORMATS
from review.rating.services import RATER_ROLES

# --- serializers ---------------------------------------------------------------------------------------


class PairCreateSerializer(StrictSerializer):
    response_a = serializers.IntegerField(min_value=1)
    response_b = serializers.IntegerField(min_value=1)


class RankSetCreateSerializer(StrictSerializer):
    responses = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=2, max_length=5)


class GenerateSerializer(StrictSerializer):
    source = serializers.ChoiceField(choices=[PairSource.DRAFT_VS_ANSWER, PairSource.CANDIDATES])
    items = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=10_000
    )
    # candidates only: one rank set per item (default), or one pair per two candidates
    rank = serializers.BooleanField(required=False, default=True)


class ImportSerializer(StrictSerializer):
    file = serializers.FileField(allow_empty_file=True)
    format = serializers.ChoiceField(choices=PAIR_FORMATS, required=False)


class JudgementSerializer(StrictSerializer):
    choice = serializers.ChoiceField(choices=judging.SHOWN_CHOICES, help_text="A or B as shown, or tie")
    strength = serializers.ChoiceField(choices=Strength.values, required=False, default="", allow_blank=True)
    reason = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class RankingSerializer(StrictSerializer):
    order = serializers.ListField(
        child=serializers.IntegerField(),
        min_length=2,
        max_length=5,
        help_text="the set's response ids, best first",
    )
    reason = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class ReportQuerySerializer(StrictSerializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    source = serializers.CharField(required=False, allow_blank=True, default="")
    model = serializers.CharField(required=False, allow_blank=True, default="")
    rater = serializers.CharField(required=False, allow_blank=True, default="")
    metadata_key = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    bootstrap = serializers.IntegerField(required=False, min_value=0, max_value=10_000, default=1000)
    seed = serializers.IntegerField(required=False, min_value=0, default=0)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def report_query(params: dict, project) -> tuple[preference.PreferenceFilters, dict]:
    """Filters from a query string: since/until (ISO), source, model, rater (names or ids; commas), and
    `metadata.<key>=<value>` on the pairs' metadata."""
    metadata = {k: v for k, v in annotation_selectors.metadata_filters(params).items() if v != ""}
    rest = {
        k: v for k, v in params.items() if v != "" and not k.startswith(annotation_selectors.METADATA_PARAM)
    }
    serializer = ReportQuerySerializer(data=rest)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    sources = _split(data["source"])
    unknown = [s for s in sources if s not in PairSource.values]
    if unknown:
        raise ApplicationError(f"source: {', '.join(unknown)} is not one of {', '.join(PairSource.values)}")
    raters = []
    users = get_user_model().objects.filter(memberships__project=project).distinct()
    for token in _split(data["rater"]):
        found = users.filter(pk=int(token)) if token.isdigit() else users.filter(username=token)
        user_id = found.values_list("pk", flat=True).first()
        if user_id is None:
            raise ApplicationError(f"rater: {token!r} is not a member of this project")
        raters.append(user_id)
    filters = preference.PreferenceFilters(
        since=data.get("since"),
        until=data.get("until"),
        sources=sources,
        models=_split(data["model"]),
        raters=tuple(raters),
        metadata=tuple(sorted(metadata.items())),
    )
    return filters, data


# --- what the work queue serves (core.hooks WORK_QUEUE_STAGE) -------------------------------------------


def compare_task_next(*, project, user) -> dict | None:
    """The work queue's "compare" stage: the next pair, as pair_task renders it, or None."""
    claimed = queue.compare_claim_next(project=project, user=user)
    return (
        None if claimed is None else preference.pair_task(pair=claimed[0], assignment=claimed[1], user=user)
    )


def rank_task_next(*, project, user) -> dict | None:
    """The work queue's "rank" stage: the next rank set, as rank_task renders it, or None."""
    claimed = queue.rank_claim_next(project=project, user=user)
    return (
        None
        if claimed is None
        else preference.rank_task(rank_set=claimed[0], assignment=claimed[1], user=user)
    )


def _project_admin(request, project_id: int):
    project = project_get_for_user(user=request.user, project_id=project_id)
    check_project_role(user=request.user, project=project, roles={Role.ADMIN})
    return project


def _responses(project, ids: list[int]) -> list[Response]:
    found = {r.pk: r for r in Response.objects.filter(project=project, pk__in=ids)}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise ApplicationError(f"responses: no response {', '.join(missing)} in this project")
    return [found[i] for i in ids]


def pair_data(pair: Pair) -> dict:
    """A pair as an admin sees it: both responses with origin and model, the votes so far."""
    votes = {c: 0 for c in ("a", "b", "tie")}
    for choice in pair.judgements.values_list("choice", flat=True):
        votes[choice] += 1
    return {
        "id": pair.pk,
        "project": pair.project_id,
        "source": pair.source,
        "item": pair.item_id,
        "rank_set": pair.rank_set_id,
        "metadata": pair.metadata,
        "prior": pair.prior or None,
        "response_a": {
            "id": pair.response_a_id,
            "model": pair.model_a,
            **preference.response_shown(pair.response_a, blind=False),
        },
        "response_b": {
            "id": pair.response_b_id,
            "model": pair.model_b,
            **preference.response_shown(pair.response_b, blind=False),
        },
        "votes": votes,
        "closed_at": pair.closed_at,
        "created_at": pair.created_at,
    }


# --- views -----------------------------------------------------------------------------------------------


class ProjectPairsApi(APIView):
    @extend_schema(request=PairCreateSerializer, responses={201: OpenApiResponse(description="The pair")})
    def post(self, request, project_id: int):
        project = _project_admin(request, project_id)
        serializer = PairCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        a, b = _responses(
            project, [serializer.validated_data["response_a"], serializer.validated_data["response_b"]]
        )
        pair = services.pair_register(project=project, response_a=a, response_b=b, actor=request.user)
        return ApiResponse(pair_data(pair), status=status.HTTP_201_CREATED)


class ProjectRankSetsApi(APIView):
    @extend_schema(request=RankSetCreateSerializer, responses={201: OpenApiResponse(description="The set")})
    def post(self, request, project_id: int):
        project = _project_admin(request, project_id)
        serializer = RankSetCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        responses = _responses(project, serializer.validated_data["responses"])
        rank_set = services.rank_set_create(project=project, responses=responses, actor=request.user)
        return ApiResponse(
            {"id": rank_set.pk, "responses": [r.pk for r in responses], "pairs": rank_set.pairs.count()},
            status=status.HTTP_201_CREATED,
        )


class PairsGenerateApi(APIView):
    @extend_schema(request=GenerateSerializer, responses={201: OpenApiResponse(description="What was made")})
    def post(self, request, project_id: int):
        project = _project_admin(request, project_id)
        serializer = GenerateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["source"] == PairSource.DRAFT_VS_ANSWER:
            made = services.pairs_from_drafts_vs_answers(
                project=project, actor=request.user, item_ids=data.get("items")
            )
        else:
            made = services.candidates_from_items(
                project=project, actor=request.user, item_ids=data.get("items"), as_rank=data["rank"]
            )
        return ApiResponse(made, status=status.HTTP_201_CREATED)


class PairsImportApi(APIView):
    @extend_schema(
        request={"multipart/form-data": ImportSerializer},
        responses={201: OpenApiResponse(description="How many pairs were imported")},
    )
    def post(self, request, project_id: int):
        project = _project_admin(request, project_id)
        serializer = ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        upload.seek(0)
        made = importing.pairs_import(
            project=project,
            actor=request.user,
            stream=upload.file,
            size=upload.size,
            fmt=serializer.validated_data.get("format"),
        )
        return ApiResponse(made, status=status.HTTP_201_CREATED)


def _visible(request, model, pk: int, what: str):
    found = model.objects.select_related("project").filter(pk=pk).first()
    if found is None or not project_visible_to(user=request.user, project_id=found.project_id):
        raise NotFound(f"{what} not found.")
    check_project_role(user=request.user, project=found.project, roles=RATER_ROLES)
    return found


class PairDetailApi(APIView):
    @extend_schema(
        responses=OpenApiResponse(description="The pair: all of it for admins, as a task for raters")
    )
    def get(self, request, pair_id: int):
        pair = _visible(request, Pair, pair_id, "Pair")
        if Role.ADMIN in annotation_selectors.user_roles(user=request.user, project=pair.project):
            return ApiResponse(pair_data(pair))
        assignment = pair.assignments.filter(rater=request.user).first()
        return ApiResponse(preference.pair_task(pair=pair, assignment=assignment, user=request.user))


class PairJudgementsApi(APIView):
    @extend_schema(request=JudgementSerializer, responses={201: OpenApiResponse(description="The judgement")})
    def post(self, request, pair_id: int):
        serializer = JudgementSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        judgement = judging.judgement_submit(pair_id=pair_id, rater=request.user, **serializer.validated_data)
        return ApiResponse(
            {
                "id": judgement.pk,
                "pair": judgement.pair_id,
                "choice": serializer.validated_data["choice"],
                "strength": judgement.strength,
                "rater": request.user.username,
                "created_at": judgement.created_at,
            },
            status=status.HTTP_201_CREATED,
        )


class RankSetDetailApi(APIView):
    @extend_schema(responses=OpenApiResponse(description="The rank set as a task"))
    def get(self, request, rank_set_id: int):
        rank_set = _visible(request, RankSet, rank_set_id, "Rank set")
        assignment = RankAssignment.objects.filter(rank_set=rank_set, rater=request.user).first()
        return ApiResponse(preference.rank_task(rank_set=rank_set, assignment=assignment, user=request.user))


class RankSetRankingsApi(APIView):
    @extend_schema(request=RankingSerializer, responses={201: OpenApiResponse(description="The ranking")})
    def post(self, request, rank_set_id: int):
        serializer = RankingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ranking = judging.ranking_submit(
            rank_set_id=rank_set_id, rater=request.user, **serializer.validated_data
        )
        return ApiResponse(
            {
                "id": ranking.pk,
                "rank_set": ranking.rank_set_id,
                "order": ranking.order,
                "judgements": ranking.judgements.count(),
                "created_at": ranking.created_at,
            },
            status=status.HTTP_201_CREATED,
        )


class _NextApi(APIView):
    next_task = None

    @extend_schema(request=None, responses={200: OpenApiResponse(description="The task"), 204: None})
    def post(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        data = type(self).next_task(project=project, user=request.user)
        return ApiResponse(status=status.HTTP_204_NO_CONTENT) if data is None else ApiResponse(data)


class CompareNextApi(_NextApi):
    """The `compare` queue on its own route (also `tasks/next {"stage": "compare"}`)."""

    next_task = staticmethod(compare_task_next)


class RankNextApi(_NextApi):
    """The `rank` queue on its own route (also `tasks/next {"stage": "rank"}`)."""

    next_task = staticmethod(rank_task_next)


class LeaderboardApi(APIView):
    @extend_schema(
        parameters=[ReportQuerySerializer], responses=OpenApiResponse(description="The leaderboard")
    )
    def get(self, request, project_id: int):
        project = _project_admin(request, project_id)
        filters, data = report_query(request.query_params.dict(), project)
        return ApiResponse(
            preference.leaderboard(project=project, filters=filters, metadata_key=data["metadata_key"])
        )


class PreferenceAgreementApi(APIView):
    @extend_schema(parameters=[ReportQuerySerializer], responses=OpenApiResponse(description="Agreement"))
    def get(self, request, project_id: int):
        project = _project_admin(request, project_id)
        filters, data = report_query(request.query_params.dict(), project)
        return ApiResponse(
            preference.preference_agreement(
                project=project, filters=filters, bootstrap=data["bootstrap"], seed=data["seed"]
            )
        )


class ExportQuerySerializer(StrictSerializer):
    format = serializers.ChoiceField(choices=PAIR_FORMATS)
    part = serializers.ChoiceField(choices=["data", "dataset_info"], required=False, default="data")


class PreferenceExportApi(APIView):
    """Decided pairs as a file, streamed once every pair validated. Headers: `X-Record-Count`,
    `X-Left-Out` (pairs left out as ties, and as even splits), and for LLaMA-Factory's formats
    `X-Dataset-Info` and a `Link` to `?part=dataset_info`. Takes the leaderboard's filters too."""

    def perform_content_negotiation(self, request, force=False):
        return JSONRenderer(), "application/json"  # ?format= names the export, not a renderer

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(PAIR_FORMATS), required=True),
            OpenApiParameter("part", str, enum=["data", "dataset_info"]),
        ],
        responses={(200, "application/jsonl"): OpenApiTypes.BINARY},
    )
    def get(self, request, project_id: int):
        project = _project_admin(request, project_id)
        params = request.query_params.dict()
        query = ExportQuerySerializer(data={k: params.pop(k) for k in ("format", "part") if k in params})
        query.is_valid(raise_exception=True)
        fmt = query.validated_data["format"]
        if query.validated_data["part"] == "dataset_info":
            return ApiResponse(exporting.preference_dataset_info(project=project, fmt=fmt) or {})
        filters, _data = report_query(params, project)
        export = exporting.preference_export_to_tempfile(
            project=project, actor=request.user, fmt=fmt, filters=filters
        )
        response = FileResponse(
            export.file, as_attachment=True, filename=export.file_name, content_type="application/jsonl"
        )
        response["X-Record-Count"] = str(export.counts["records"])
        response["X-Left-Out"] = (
            f"ties={export.counts['left_out_ties']}, split={export.counts['left_out_split']}"
        )
        if export.dataset_info is not None:
            response["X-Dataset-Info"] = json.dumps(export.dataset_info, separators=(",", ":"))
            link = reverse("api-preference-export", args=[project.pk])
            response["Link"] = f'<{link}?format={fmt}&part=dataset_info>; rel="describedby"'
        return response
