"""REST endpoints of model judges (project admins; other members 403, outsiders 404)."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from annotation.permissions import check_project_admin
from annotation.selectors import project_get_for_user
from core.errors import ApplicationError

from . import selectors, services


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise ApplicationError("The body must be a JSON object.")
    return dict(request.data)


def _judge(request, project_id: int, judge_id: int):
    project = project_get_for_user(user=request.user, project_id=project_id)
    check_project_admin(user=request.user, project=project)
    return services.judge_get(project=project, judge_id=judge_id)


class JudgeListCreateApi(GenericAPIView):
    """GET the project's judges; POST `{"model_version", "prompt_template"?, "enabled"?, "judge_pairs"?,
    "prescore"?, "prescore_min_confidence"?, "prescore_min_score"?}` adds one."""

    serializer_class = None

    @extend_schema(responses={200: None}, operation_id="projects_judges_list")
    def get(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        judges = selectors.judges_of(project=project, actor=request.user)
        return Response(
            [{**selectors.judge_data(j), "judged": j.n_judged, "failed": j.n_failed} for j in judges]
        )

    @extend_schema(request=None, responses={201: None})
    def post(self, request, project_id: int):
        project = project_get_for_user(user=request.user, project_id=project_id)
        body = _body(request)
        version = body.pop("model_version", None)
        judge = services.judge_create(project=project, actor=request.user, model_version_id=version, **body)
        return Response(selectors.judge_data(judge), status=status.HTTP_201_CREATED)


class JudgeDetailApi(GenericAPIView):
    """GET a judge; PATCH any of its settings."""

    serializer_class = None

    @extend_schema(responses={200: None})
    def get(self, request, project_id: int, judge_id: int):
        return Response(selectors.judge_data(_judge(request, project_id, judge_id)))

    @extend_schema(request=None, responses={200: None})
    def patch(self, request, project_id: int, judge_id: int):
        judge = _judge(request, project_id, judge_id)
        judge = services.judge_update(judge=judge, actor=request.user, **_body(request))
        return Response(selectors.judge_data(judge))


class JudgeRunApi(GenericAPIView):
    """Judge the project's open responses (and pairs) not judged yet, on the gpu worker: 202."""

    serializer_class = None

    @extend_schema(request=None, responses={202: None})
    def post(self, request, project_id: int, judge_id: int):
        judge = _judge(request, project_id, judge_id)
        pending = services.judge_run_request(judge=judge, actor=request.user)
        return Response({"judge": judge.pk, "pending": pending}, status=status.HTTP_202_ACCEPTED)


class JudgeRatingsApi(GenericAPIView):
    """The judge's ratings, by response (paginated): its scores, never mixed into people's."""

    serializer_class = None

    @extend_schema(responses={200: None})
    def get(self, request, project_id: int, judge_id: int):
        judge = _judge(request, project_id, judge_id)
        page = self.paginate_queryset(selectors.judge_ratings_of(judge=judge))
        return self.get_paginated_response([selectors.judge_rating_data(r) for r in page])


class JudgeReportApi(GenericAPIView):
    """The judge as one more rater: agreement with the human consensus, bias and n per dimension."""

    serializer_class = None

    @extend_schema(responses={200: None})
    def get(self, request, project_id: int, judge_id: int):
        judge = _judge(request, project_id, judge_id)
        return Response(selectors.judge_report(judge=judge, actor=request.user))
