"""REST endpoints of adjudication: the project's queue of disagreements, and the final decision."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.permissions import check_project_role
from annotation.selectors import project_get_for_user
from core.serializers import StrictSerializer
from review.adjudication import selectors, services


class AdjudicationQuerySerializer(StrictSerializer):
    state = serializers.ChoiceField(choices=selectors.STATES, required=False, default="open")


class AdjudicationDecideSerializer(StrictSerializer):
    decision = serializers.ChoiceField(
        choices=["approve", "reject", "scores"], required=False, default="", help_text="a review case"
    )
    comment = serializers.CharField(max_length=10_000, required=False, allow_blank=True, default="")
    scores = serializers.DictField(required=False, help_text="a ratings case: the final score per dimension")


class AdjudicationListApi(APIView):
    @extend_schema(parameters=[AdjudicationQuerySerializer], responses=OpenApiResponse(description="Cases"))
    def get(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        check_project_role(user=request.user, project=project, roles=services.ADJUDICATOR_ROLES)
        query = AdjudicationQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        state = query.validated_data["state"]
        cases = selectors.adjudications_list(project=project, user=request.user, state=state)
        return ApiResponse({"state": state, "results": cases})


class AdjudicationDecideApi(APIView):
    @extend_schema(request=AdjudicationDecideSerializer, responses=OpenApiResponse(description="The case"))
    def post(self, request, project_id: int, adjudication_id: int):
        serializer = AdjudicationDecideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        case = services.adjudication_decide(
            adjudication_id=adjudication_id,
            project_id=project_id,
            user=request.user,
            **serializer.validated_data,
        )
        project = project_get_for_user(user=request.user, project_id=project_id)
        return ApiResponse(selectors.adjudication_get(project=project, user=request.user, pk=case.pk))
