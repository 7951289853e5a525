"""REST endpoints of gold checks (project admins): the gold tasks and people, marking, retiring, lifting."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.permissions import check_project_admin
from annotation.selectors import project_get_for_user
from core.errors import ApplicationError
from core.serializers import StrictSerializer
from review.gold import marking, selectors, services


class GoldMarkSerializer(StrictSerializer):
    item = serializers.IntegerField(required=False, help_text="an item: an annotation or a review check")
    response = serializers.IntegerField(required=False, help_text="a response: a rating check")
    pair = serializers.IntegerField(required=False, help_text="a compare pair: a compare check")
    expected_text = serializers.CharField(required=False, allow_blank=True, default="", max_length=100_000)
    min_similarity = serializers.FloatField(
        required=False, allow_null=True, default=None, min_value=0, max_value=1
    )
    expected_decision = serializers.ChoiceField(choices=["approve", "reject"], required=False, default="")
    stage = serializers.ChoiceField(choices=["expert", "domain"], required=False, default="expert")
    expected_scores = serializers.DictField(required=False, default=dict)
    expected_weighted = serializers.ListField(
        child=serializers.FloatField(), required=False, allow_null=True, default=None
    )
    expected_choice = serializers.ChoiceField(choices=["a", "b", "tie"], required=False, default="")


class GoldLiftSerializer(StrictSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)


def _admin_project(request, project_id: int):
    project = project_get_for_user(user=request.user, project_id=project_id)
    check_project_admin(user=request.user, project=project)
    return project


class GoldListApi(APIView):
    @extend_schema(responses=OpenApiResponse(description="Gold tasks and people"))
    def get(self, request, project_id: int):
        project = _admin_project(request, project_id)
        return ApiResponse(
            {"tasks": selectors.gold_tasks(project=project), "people": selectors.gold_people(project=project)}
        )

    @extend_schema(request=GoldMarkSerializer, responses={201: OpenApiResponse(description="The gold task")})
    def post(self, request, project_id: int):
        project = _admin_project(request, project_id)
        serializer = GoldMarkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        targets = [key for key in ("item", "response", "pair") if data.get(key) is not None]
        if len(targets) != 1:
            raise ApplicationError("Name exactly one of item, response or pair.", code="invalid_gold")
        if targets == ["item"]:
            task = marking.gold_mark_item(
                project=project,
                actor=request.user,
                item_id=data["item"],
                expected_text=data["expected_text"],
                min_similarity=data["min_similarity"],
                expected_decision=data["expected_decision"],
                stage=data["stage"],
            )
        elif targets == ["response"]:
            task = marking.gold_mark_response(
                project=project,
                actor=request.user,
                response_id=data["response"],
                expected_scores=data["expected_scores"],
                expected_weighted=data["expected_weighted"],
            )
        else:
            task = marking.gold_mark_pair(
                project=project,
                actor=request.user,
                pair_id=data["pair"],
                expected_choice=data["expected_choice"],
            )
        return ApiResponse(selectors.gold_task_data(task), status=status.HTTP_201_CREATED)


class GoldRetireApi(APIView):
    @extend_schema(request=None, responses=OpenApiResponse(description="The gold task"))
    def post(self, request, project_id: int, gold_task_id: int):
        project = _admin_project(request, project_id)
        task = marking.gold_retire(project=project, actor=request.user, gold_task_id=gold_task_id)
        return ApiResponse(selectors.gold_task_data(task))


class GoldLiftApi(APIView):
    @extend_schema(request=GoldLiftSerializer, responses=OpenApiResponse(description="The person's standing"))
    def post(self, request, project_id: int, user_id: int):
        project = _admin_project(request, project_id)
        serializer = GoldLiftSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.gold_standing_lift(
            project=project, actor=request.user, user_id=user_id, comment=serializer.validated_data["comment"]
        )
        person = next(p for p in selectors.gold_people(project=project) if p["user_id"] == user_id)
        return ApiResponse(person)
