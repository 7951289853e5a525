"""REST endpoints of the model side: the registry, `ask` and hand-over tickets."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle

from annotation.selectors import project_get_for_user
from core.errors import ApplicationError

from . import calibration, canary, handover, registry, selectors, versus
from .runs import launch
from .runs import status as run_status
from .serializers import (
    AskResponseSerializer,
    AskSerializer,
    ModelVersionCreateSerializer,
    ModelVersionSerializer,
    TicketSerializer,
    TrainingRunCreateSerializer,
    TrainingRunListSerializer,
    TrainingRunSerializer,
    VersionsCompareSerializer,
)


class AskRateThrottle(UserRateThrottle):
    """Per authenticated user (so per token); the rate is read at each request from settings."""

    scope = "ask"

    def get_rate(self):
        return settings.HANDOVER_ASK_RATE


class AskApi(GenericAPIView):
    """Who may ask: any member of the project (any role) and staff; an application uses a member's token.

    Others get 404 (the project's existence does not leak), anonymous callers 401.
    """

    serializer_class = AskSerializer
    throttle_classes = [AskRateThrottle]

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if isinstance(exc, handover.ModelUnavailable):
            response["Retry-After"] = str(handover.ask_retry_after(exc))
        return response

    @extend_schema(request=AskSerializer, responses={200: AskResponseSerializer})
    def post(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = handover.ask_answer(
            project=project, actor=request.user, question=data["question"], metadata=data["metadata"]
        )
        body = {
            "answer": result.answer,
            "confidence": result.confidence,
            "model_version": result.model_version,
            "handed_over": result.handed_over,
            "source": result.source,
        }
        if result.ticket is not None:
            body["ticket"] = result.ticket.pk
        if result.item is not None:
            body["item"] = result.item
        if result.raw_confidence is not None:
            body["raw_confidence"] = result.raw_confidence
        if result.arm is not None:
            body["arm"] = result.arm
        if result.agreement is not None:
            body["agreement"] = result.agreement
        if result.similarity is not None:
            body["similarity"] = result.similarity
        return Response(body)


class CalibrationApi(GenericAPIView):
    """Per model version: outcomes, ECE before / after calibration, reliability points, and the
    thresholds the project's target precision implies (project admins; others 403, outsiders 404)."""

    serializer_class = None

    @extend_schema(responses={200: None})
    def get(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        report = calibration.calibration_report(project=project, actor=request.user)
        return Response(calibration.report_public(report))


class CalibrationApplyApi(GenericAPIView):
    """Set the project's thresholds to the deployed version's suggestion (project admins; audited)."""

    serializer_class = None

    @extend_schema(request=None, responses={200: None})
    def post(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        return Response(calibration.calibration_apply(project=project, actor=request.user))


class TicketDetailApi(GenericAPIView):
    serializer_class = TicketSerializer

    def get(self, request, ticket_id: int):
        ticket = selectors.ticket_get_for_user(user=request.user, ticket_id=ticket_id)
        return Response(self.get_serializer(ticket).data)


class ModelVersionListCreateApi(GenericAPIView):
    serializer_class = ModelVersionSerializer

    def get(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        page = self.paginate_queryset(selectors.model_versions_of(project_id=project.pk))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=ModelVersionCreateSerializer, responses={201: ModelVersionSerializer})
    def post(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        serializer = ModelVersionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = registry.model_version_register(project=project, actor=request.user, **data)
        return Response(self.get_serializer(version).data, status=status.HTTP_201_CREATED)


class ModelVersionPromoteApi(GenericAPIView):
    """Deploy this version (project admins); the one deployed before is retired. With
    `{"canary": {"share": 0.1, "min_outcomes": 200}}` a canary starts instead (201, its report)."""

    serializer_class = ModelVersionSerializer

    @extend_schema(request=None)
    def post(self, request, version_id: int):
        version = selectors.model_version_get_for_user(user=request.user, version_id=version_id)
        body = request.data if isinstance(request.data, dict) else {}
        if body.get("canary") is not None:
            options = body["canary"]
            if not isinstance(options, dict):
                raise ApplicationError(
                    "canary: must be an object with share and min_outcomes.",
                    details={"canary": ["Must be an object."]},
                )
            started = canary.canary_start(
                project=version.project, version_id=version.pk, actor=request.user,
                share=options.get("share"), min_outcomes=options.get("min_outcomes"),
            )  # fmt: skip
            return Response(canary.canary_report(started), status=status.HTTP_201_CREATED)
        version = registry.model_version_deploy(version_id=version.pk, actor=request.user)
        return Response(_with_backend_outcome(self.get_serializer(version).data, version))


def _with_backend_outcome(data: dict, version) -> dict:
    """A deploy's answer says what it did on the version's server: adapter loaded, adapters unloaded."""
    outcome = getattr(version, "backend_outcome", None)
    return {**data, "backend_outcome": outcome.as_dict() if outcome is not None else None}


class CanaryApi(GenericAPIView):
    """The project's canary (project admins; others 403, outsiders 404): GET the running or latest one's
    arms side by side and the earlier ones; POST `{"version", "share", "min_outcomes"}` starts one."""

    serializer_class = None

    @extend_schema(responses={200: None})
    def get(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        return Response(canary.canary_view(project=project, actor=request.user))

    @extend_schema(request=None, responses={201: None})
    def post(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        body = request.data if isinstance(request.data, dict) else {}
        started = canary.canary_start(
            project=project, version_id=body.get("version"), actor=request.user,
            share=body.get("share"), min_outcomes=body.get("min_outcomes"),
        )  # fmt: skip
        return Response(canary.canary_report(started), status=status.HTTP_201_CREATED)


class CanaryEndApi(GenericAPIView):
    """End the running canary by hand (project admins): `promote` deploys the candidate, `rollback`
    keeps the baseline; audited with the evidence so far."""

    serializer_class = None

    @extend_schema(request=None, responses={200: None}, operation_id="projects_canary_end")
    def post(self, request, project_id: int, decision: str):
        project = project_get_for_user(user=request.user, project_id=project_id)
        ended = canary.canary_end(project=project, actor=request.user, decision=decision)
        return Response(canary.canary_report(ended))


class ModelVersionRollbackApi(GenericAPIView):
    """Deploy this earlier version again (project admins)."""

    serializer_class = ModelVersionSerializer

    @extend_schema(request=None)
    def post(self, request, version_id: int):
        version = selectors.model_version_get_for_user(user=request.user, version_id=version_id)
        version = registry.model_version_rollback(
            project=version.project, actor=request.user, to_version_id=version.pk
        )
        return Response(_with_backend_outcome(self.get_serializer(version).data, version))


class TrainingRunListCreateApi(GenericAPIView):
    """Launch a run (project admins; 409 while another run is active) or list the project's runs."""

    serializer_class = TrainingRunSerializer

    def get(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        page = self.paginate_queryset(selectors.training_runs_of(project_id=project.pk))
        return self.get_paginated_response(TrainingRunListSerializer(page, many=True).data)

    @extend_schema(request=TrainingRunCreateSerializer, responses={201: TrainingRunSerializer})
    def post(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        serializer = TrainingRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = launch.training_run_create(project=project, actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(run).data, status=status.HTTP_201_CREATED)


class TrainingRunDetailApi(GenericAPIView):
    serializer_class = TrainingRunSerializer

    def get(self, request, run_id: int):
        run = selectors.training_run_get_for_user(user=request.user, run_id=run_id)
        return Response(self.get_serializer(run).data)


class TrainingRunCancelApi(GenericAPIView):
    """Cancel (project admins): at once when queued or waiting for people, within a step when training."""

    serializer_class = TrainingRunSerializer

    @extend_schema(request=None)
    def post(self, request, run_id: int):
        run = selectors.training_run_get_for_user(user=request.user, run_id=run_id)
        run_status.training_run_cancel(run_id=run.pk, actor=request.user)
        run = selectors.training_run_get_for_user(user=request.user, run_id=run.pk)
        return Response(self.get_serializer(run).data)


class VersionsCompareApi(GenericAPIView):
    """Pairs from two model versions on the same prompts (project admins): 202 with the task's id; the
    gpu worker generates and registers the pairs (`versus`)."""

    serializer_class = VersionsCompareSerializer

    @extend_schema(request=VersionsCompareSerializer, responses={202: None})
    def post(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        task_id = versus.versions_compare_request(project=project, actor=request.user, **data)
        return Response({"task_id": task_id, **data}, status=status.HTTP_202_ACCEPTED)
