"""API routes of the annotation layer (included under /api/ by config/urls.py)."""

from django.urls import path

from annotation.exporting import api as exports
from annotation.importing import api as imports
from annotation.projects import api as projects
from annotation.workflow import api as work

urlpatterns = [
    path("projects/", projects.ProjectListCreateApi.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", projects.ProjectDetailApi.as_view(), name="api-project"),
    path(
        "projects/<int:project_id>/members/", projects.ProjectMembersApi.as_view(), name="api-project-members"
    ),
    path("projects/<int:project_id>/tasks/next/", work.TaskNextApi.as_view(), name="api-task-next"),
    path("projects/<int:project_id>/items/", work.ProjectItemsApi.as_view(), name="api-project-items"),
    path("items/<int:item_id>/", work.ItemDetailApi.as_view(), name="api-item"),
    path("items/<int:item_id>/submit/", work.ItemSubmitApi.as_view(), name="api-item-submit"),
    path("items/<int:item_id>/skip/", work.ItemSkipApi.as_view(), name="api-item-skip"),
    path("items/<int:item_id>/flag/", work.ItemFlagApi.as_view(), name="api-item-flag"),
    path("items/<int:item_id>/lease/", work.ItemLeaseApi.as_view(), name="api-item-lease"),
    path("items/<int:item_id>/autosave/", work.ItemAutosaveApi.as_view(), name="api-item-autosave"),
    path("items/<int:item_id>/history/", work.ItemHistoryApi.as_view(), name="api-item-history"),
    path(
        "projects/<int:project_id>/imports/", imports.ProjectImportsApi.as_view(), name="api-project-imports"
    ),
    path(
        "projects/<int:project_id>/imports/preview/",
        imports.ImportPreviewApi.as_view(),
        name="api-project-import-preview",
    ),
    path("imports/<int:job_id>/", imports.ImportDetailApi.as_view(), name="api-import"),
    path("projects/<int:project_id>/export/", exports.ProjectExportApi.as_view(), name="api-project-export"),
]
