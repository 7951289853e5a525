"""API routes of gold checks (included under /api/ by review/api_urls.py)."""

from django.urls import path

from review.gold import api

urlpatterns = [
    path("projects/<int:project_id>/gold/", api.GoldListApi.as_view(), name="api-gold"),
    path(
        "projects/<int:project_id>/gold/<int:gold_task_id>/retire/",
        api.GoldRetireApi.as_view(),
        name="api-gold-retire",
    ),
    path(
        "projects/<int:project_id>/gold/people/<int:user_id>/lift/",
        api.GoldLiftApi.as_view(),
        name="api-gold-lift",
    ),
]
