"""Browser pages of rubric scoring."""

from django.urls import path

from . import views

urlpatterns = [
    path("projects/<int:project_id>/rate/", views.rate, name="review-rate"),
    path("projects/<int:project_id>/rate/<int:response_id>/", views.rate_submit, name="review-rate-submit"),
    path("projects/<int:project_id>/agreement/", views.agreement, name="review-agreement"),
]
