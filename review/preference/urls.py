"""API routes of preferences (included under /api/ by review/api_urls.py)."""

from django.urls import path

from review.preference import api

urlpatterns = [
    path("projects/<int:project_id>/pairs/", api.ProjectPairsApi.as_view(), name="api-project-pairs"),
    path(
        "projects/<int:project_id>/pairs/generate/", api.PairsGenerateApi.as_view(), name="api-pairs-generate"
    ),
    path("projects/<int:project_id>/pairs/import/", api.PairsImportApi.as_view(), name="api-pairs-import"),
    path(
        "projects/<int:project_id>/rank-sets/", api.ProjectRankSetsApi.as_view(), name="api-project-rank-sets"
    ),
    path("projects/<int:project_id>/compare/next/", api.CompareNextApi.as_view(), name="api-compare-next"),
    path("projects/<int:project_id>/rank/next/", api.RankNextApi.as_view(), name="api-rank-next"),
    path("projects/<int:project_id>/leaderboard/", api.LeaderboardApi.as_view(), name="api-leaderboard"),
    path(
        "projects/<int:project_id>/preference-agreement/",
        api.PreferenceAgreementApi.as_view(),
        name="api-preference-agreement",
    ),
    path(
        "projects/<int:project_id>/preference-export/",
        api.PreferenceExportApi.as_view(),
        name="api-preference-export",
    ),
    path("pairs/<int:pair_id>/", api.PairDetailApi.as_view(), name="api-pair"),
    path("pairs/<int:pair_id>/judgements/", api.PairJudgementsApi.as_view(), name="api-pair-judgements"),
    path("rank-sets/<int:rank_set_id>/", api.RankSetDetailApi.as_view(), name="api-rank-set"),
    path(
        "rank-sets/<int:rank_set_id>/rankings/",
        api.RankSetRankingsApi.as_view(),
        name="api-rank-set-rankings",
    ),
]
