from django.urls import path

from . import api

urlpatterns = [
    path("projects/<int:project_id>/ask/", api.AskApi.as_view(), name="api-ask"),
    path("tickets/<int:ticket_id>/", api.TicketDetailApi.as_view(), name="api-ticket"),
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
]
