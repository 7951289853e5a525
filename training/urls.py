from django.urls import path

from . import views
from .judging import views as judging_views

urlpatterns = [
    path("projects/<int:project_id>/models/", views.project_models, name="project-models"),
    path(
        "projects/<int:project_id>/models/<int:version_id>/<str:action>/",
        views.model_version_act,
        name="project-model-act",
    ),
    path(
        "projects/<int:project_id>/models/canary/<str:decision>/", views.canary_act, name="project-canary-act"
    ),
    path("projects/<int:project_id>/training/", views.training_runs, name="training-runs"),
    path("projects/<int:project_id>/calibration/", views.calibration_page, name="training-calibration"),
    path(
        "projects/<int:project_id>/pairs/versions/", views.versions_compare, name="training-versions-compare"
    ),
    path("projects/<int:project_id>/training/<int:run_id>/", views.training_run, name="training-run"),
    path(
        "projects/<int:project_id>/training/<int:run_id>/<str:action>/",
        views.training_run_act,
        name="training-run-act",
    ),
    path("projects/<int:project_id>/judge/", judging_views.judge_page, name="training-judge"),
    path(
        "projects/<int:project_id>/judge/<int:judge_id>/<str:action>/",
        judging_views.judge_act,
        name="training-judge-act",
    ),
]
