from django.urls import path

from . import api
from .judging import api as judging_api

urlpatterns = [
    path("projects/<int:project_id>/ask/", api.AskApi.as_view(), name="api-ask"),
    path("tickets/<int:ticket_id>/", api.TicketDetailApi.as_view(), name="api-ticket"),
    path("projects/<int:project_id>/calibration/", api.CalibrationApi.as_view(), name="api-calibration"),
    path(
        "projects/<int:project_id>/calibration/apply/",
        api.CalibrationApplyApi.as_view(),
        name="api-calibration-apply",
    ),
    path("projects/<int:project_id>/canary/", api.CanaryApi.as_view(), name="api-canary"),
    path(
        "projects/<int:project_id>/canary/<str:decision>/",
        api.CanaryEndApi.as_view(),
        name="api-canary-end",
    ),
    path(
        "projects/<int:project_id>/model-versions/",
        api.ModelVersionListCreateApi.as_view(),
        name="api-model-versions",
    ),
    path(
        "model-versions/<int:version_id>/promote/",
        api.ModelVersionPromoteApi.as_view(),
        name="api-model-promote",
    ),
    path(
        "model-versions/<int:version_id>/rollback/",
        api.ModelVersionRollbackApi.as_view(),
        name="api-model-rollback",
    ),
    path(
        "projects/<int:project_id>/training-runs/",
        api.TrainingRunListCreateApi.as_view(),
        name="api-training-runs",
    ),
    path("training-runs/<int:run_id>/", api.TrainingRunDetailApi.as_view(), name="api-training-run"),
    path(
        "projects/<int:project_id>/pairs/versions/",
        api.VersionsCompareApi.as_view(),
        name="api-pairs-versions",
    ),
    path(
        "training-runs/<int:run_id>/cancel/",
        api.TrainingRunCancelApi.as_view(),
        name="api-training-run-cancel",
    ),
    path("projects/<int:project_id>/judges/", judging_api.JudgeListCreateApi.as_view(), name="api-judges"),
    path(
        "projects/<int:project_id>/judges/<int:judge_id>/",
        judging_api.JudgeDetailApi.as_view(),
        name="api-judge",
    ),
    path(
        "projects/<int:project_id>/judges/<int:judge_id>/run/",
        judging_api.JudgeRunApi.as_view(),
        name="api-judge-run",
    ),
    path(
        "projects/<int:project_id>/judges/<int:judge_id>/ratings/",
        judging_api.JudgeRatingsApi.as_view(),
        name="api-judge-ratings",
    ),
    path(
        "projects/<int:project_id>/judges/<int:judge_id>/report/",
        judging_api.JudgeReportApi.as_view(),
        name="api-judge-report",
    ),
]
