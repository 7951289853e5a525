from django.urls import path

from . import views

urlpatterns = [
    path("projects/<int:project_id>/models/", views.project_models, name="project-models"),
    path(
        "projects/<int:project_id>/models/<int:version_id>/<str:action>/",
        views.model_version_act,
        name="project-model-act",
    ),
]
