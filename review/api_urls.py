"""API routes of the review layer (included under /api/ by config/urls.py): decisions, rubric scoring,
preferences, adjudication and per-person quality."""

from django.urls import include, path

from review.decisions.api import ItemReviewApi

urlpatterns = [
    path("items/<int:item_id>/review/", ItemReviewApi.as_view(), name="api-item-review"),
    path("", include("review.rating.urls")),
    path("", include("review.preference.urls")),
    path("", include("review.quality.urls")),
    path("", include("review.adjudication.urls")),
    path("", include("review.gold.urls")),
]
