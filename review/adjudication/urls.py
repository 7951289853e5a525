"""API routes of adjudication (included under /api/ by review/api_urls.py)."""

from django.urls import path

from review.adjudication import api

urlpatterns = [
    path(
        "projects/<int:project_id>/adjudications/",
        api.AdjudicationListApi.as_view(),
        name="api-adjudications",
    ),
    path(
        "projects/<int:project_id>/adjudications/<int:adjudication_id>/decide/",
        api.AdjudicationDecideApi.as_view(),
        name="api-adjudication-decide",
    ),
]
