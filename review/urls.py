"""Browser pages of the review layer: the workbench of every tier, rating, agreement, the dashboard."""

from django.urls import path

from review import workbench
from review.rating import views

urlpatterns = [
    path("projects/<int:project_id>/work/<str:stage>/", workbench.workbench, name="workbench"),
    path("items/<int:item_id>/act/", workbench.workbench_act, name="workbench-act"),
    path("projects/<int:project_id>/dashboard/", views.dashboard, name="project-dashboard"),
    path("projects/<int:project_id>/rate/", views.rate, name="review-rate"),
    path("projects/<int:project_id>/rate/<int:response_id>/", views.rate_submit, name="review-rate-submit"),
    path("projects/<int:project_id>/agreement/", views.agreement, name="review-agreement"),
]
