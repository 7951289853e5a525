"""API routes of per-person quality (included under /api/ by review/api_urls.py)."""

from django.urls import path

from review.quality import api

urlpatterns = [
    path("projects/<int:project_id>/quality/", api.PersonQualityApi.as_view(), name="api-person-quality"),
    path(
        "projects/<int:project_id>/quality/csv/",
        api.PersonQualityCsvApi.as_view(),
        name="api-person-quality-csv",
    ),
]
