"""REST endpoints of the work queue: claim the next task, submit, skip, flag, renew, autosave, history."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import selectors
from annotation.workflow import sql as workflow_sql
from annotation.workflow import transitions as workflow
from annotation.workflow.serializers import (
    AutosaveSerializer,
    ClaimSerializer,
    FlagSerializer,
    HistoryEntrySerializer,
    ItemSerializer,
    SubmitSerializer,
    TaskSerializer,
)
from core.hooks import WORK_QUEUE_STAGE, hook


def task_response(item, user) -> Response:
    return Response(TaskSerializer(selectors.item_task(item=item, user=user)).data)


class TaskNextApi(APIView):
    @extend_schema(
        request=ClaimSerializer,
        responses={200: TaskSerializer, 204: OpenApiResponse(description="Nothing to do")},
    )
    def post(self, request, project_id: int):
        serializer = ClaimSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        stage = serializer.validated_data["stage"]
        task = workflow_sql.task_claim_from_queue(project_id=project_id, user_id=request.user.pk, stage=stage)
        if task is not None:
            return Response(task)
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        higher = (hook(WORK_QUEUE_STAGE) or {}).get(stage)  # e.g. review's "rate": responses, not items
        if higher is not None:
            data = higher(project=project, user=request.user)
            return Response(status=status.HTTP_204_NO_CONTENT) if data is None else Response(data)
        item = workflow.item_claim_next(project=project, user=request.user, stage=stage)
        if item is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return task_response(item, request.user)


class ItemDetailApi(APIView):
    @extend_schema(responses=TaskSerializer)
    def get(self, request, item_id: int):
        return task_response(selectors.item_get_for_user(user=request.user, item_id=item_id), request.user)


class ItemSubmitApi(APIView):
    @extend_schema(request=SubmitSerializer, responses=ItemSerializer)
    def post(self, request, item_id: int):
        serializer = SubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        submitted = workflow_sql.item_submit(
            item_id=item_id, user_id=request.user.pk, **serializer.validated_data
        )
        if submitted is not None:
            return Response(submitted)
        item = workflow.item_submit(item_id=item_id, user=request.user, **serializer.validated_data)
        return Response(ItemSerializer(item).data)


class ItemSkipApi(APIView):
    @extend_schema(request=None, responses=ItemSerializer)
    def post(self, request, item_id: int):
        return Response(ItemSerializer(workflow.item_release(item_id=item_id, user=request.user)).data)


class ItemFlagApi(APIView):
    @extend_schema(request=FlagSerializer, responses=ItemSerializer)
    def post(self, request, item_id: int):
        serializer = FlagSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        item = workflow.item_flag_needs_expert(
            item_id=item_id, user=request.user, **serializer.validated_data
        )
        return Response(ItemSerializer(item).data)


class ItemLeaseApi(APIView):
    @extend_schema(request=None, responses=ItemSerializer)
    def post(self, request, item_id: int):
        return Response(ItemSerializer(workflow.item_lease_renew(item_id=item_id, user=request.user)).data)


class ItemAutosaveApi(APIView):
    @extend_schema(request=AutosaveSerializer, responses={204: None})
    def post(self, request, item_id: int):
        serializer = AutosaveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workflow.autosave_store(item_id=item_id, user=request.user, **serializer.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ItemHistoryApi(APIView):
    @extend_schema(responses=HistoryEntrySerializer(many=True))
    def get(self, request, item_id: int):
        item = selectors.item_get_for_user(user=request.user, item_id=item_id)
        history = selectors.item_history(
            item=item, show_gold=selectors.is_project_admin(request.user, item.project)
        )
        return Response(HistoryEntrySerializer(history, many=True).data)


class ProjectItemsApi(GenericAPIView):
    serializer_class = ItemSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="comma-separated statuses"),
            OpenApiParameter("source", str, description="comma-separated sources"),
            OpenApiParameter("search", str, description="text in the input, or an exact external id"),
            OpenApiParameter(
                "metadata.{key}",
                str,
                description="items whose metadata has this value at this key, e.g. ?metadata.category=it "
                "(repeat for several keys; `7` also finds the number 7)",
            ),
        ]
    )
    def get(self, request, project_id: int):
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        items = selectors.item_list(
            project=project,
            status=request.query_params.get("status", ""),
            source=request.query_params.get("source", ""),
            search=request.query_params.get("search", ""),
            metadata=selectors.metadata_filters(request.query_params),
        )
        page = self.paginate_queryset(items)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
