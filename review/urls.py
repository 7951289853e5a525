"""Browser pages of the review layer: the workbench of every tier, rating, agreement, the dashboard, and
preferences (compare, rank, the leaderboard), adjudication, per-person quality."""

from django.urls import path

from review import workbench
from review.adjudication import views as adjudication_views
from review.gold import views as gold_views
from review.preference import views as preference_views
from review.quality import views as quality_views
from review.rating import views

urlpatterns = [
    path("projects/<int:project_id>/work/<str:stage>/", workbench.workbench, name="workbench"),
    path("items/<int:item_id>/act/", workbench.workbench_act, name="workbench-act"),
    path("projects/<int:project_id>/dashboard/", views.dashboard, name="project-dashboard"),
    path("projects/<int:project_id>/quality/", quality_views.person_quality, name="review-quality"),
    path("projects/<int:project_id>/rate/", views.rate, name="review-rate"),
    path("projects/<int:project_id>/rate/<int:response_id>/", views.rate_submit, name="review-rate-submit"),
    path("projects/<int:project_id>/agreement/", views.agreement, name="review-agreement"),
    path("projects/<int:project_id>/compare/", preference_views.compare, name="review-compare"),
    path(
        "projects/<int:project_id>/compare/<int:pair_id>/",
        preference_views.compare_submit,
        name="review-compare-submit",
    ),
    path("projects/<int:project_id>/rank/", preference_views.rank, name="review-rank"),
    path(
        "projects/<int:project_id>/rank/<int:rank_set_id>/",
        preference_views.rank_submit,
        name="review-rank-submit",
    ),
    path("projects/<int:project_id>/leaderboard/", preference_views.leaderboard, name="review-leaderboard"),
    path(
        "projects/<int:project_id>/leaderboard/pairs/", preference_views.pairs_make, name="review-pairs-make"
    ),
    path(
        "projects/<int:project_id>/adjudications/",
        adjudication_views.adjudications,
        name="review-adjudications",
    ),
    path(
        "projects/<int:project_id>/adjudications/<int:adjudication_id>/decide/",
        adjudication_views.adjudication_decide,
        name="review-adjudication-decide",
    ),
    path("projects/<int:project_id>/gold/", gold_views.gold, name="review-gold"),
    path("projects/<int:project_id>/gold/mark/", gold_views.gold_mark, name="review-gold-mark"),
    path(
        "projects/<int:project_id>/gold/people/<int:user_id>/lift/",
        gold_views.gold_lift,
        name="review-gold-lift",
    ),
]
