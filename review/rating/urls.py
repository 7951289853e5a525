"""API routes of rubric scoring (included under /api/ by config/urls.py)."""

from django.urls import path

from review.rating import api as api_rating

urlpatterns = [
    path("projects/<int:project_id>/rubric/", api_rating.RubricApi.as_view(), name="api-project-rubric"),
    path(
        "projects/<int:project_id>/responses/",
        api_rating.ProjectResponsesApi.as_view(),
        name="api-project-responses",
    ),
    path("responses/<int:response_id>/", api_rating.ResponseDetailApi.as_view(), name="api-response"),
    path(
        "responses/<int:response_id>/ratings/",
        api_rating.ResponseRatingsApi.as_view(),
        name="api-response-ratings",
    ),
    path(
        "projects/<int:project_id>/ratings/next/", api_rating.RatingNextApi.as_view(), name="api-rating-next"
    ),
    path(
        "projects/<int:project_id>/ratings/export/",
        api_rating.RatingsExportApi.as_view(),
        name="api-ratings-export",
    ),
    path("projects/<int:project_id>/agreement/", api_rating.AgreementApi.as_view(), name="api-agreement"),
    path("projects/<int:project_id>/scores/", api_rating.ScoresApi.as_view(), name="api-scores"),
]
