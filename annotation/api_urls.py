from django.urls import path

from . import api, api_workflow

urlpatterns = [
    path("projects/", api.ProjectListCreateApi.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", api.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<int:project_id>/members/", api.ProjectMembersApi.as_view(), name="api-project-members"),
    path("projects/<int:project_id>/tasks/next/", api_workflow.TaskNextApi.as_view(), name="api-task-next"),
    path(
        "projects/<int:project_id>/items/", api_workflow.ProjectItemsApi.as_view(), name="api-project-items"
    ),
    path("items/<int:item_id>/", api_workflow.ItemDetailApi.as_view(), name="api-item"),
    path("items/<int:item_id>/submit/", api_workflow.ItemSubmitApi.as_view(), name="api-item-submit"),
    path("items/<int:item_id>/skip/", api_workflow.ItemSkipApi.as_view(), name="api-item-skip"),
    path("items/<int:item_id>/flag/", api_workflow.ItemFlagApi.as_view(), name="api-item-flag"),
    path("items/<int:item_id>/lease/", api_workflow.ItemLeaseApi.as_view(), name="api-item-lease"),
    path("items/<int:item_id>/autosave/", api_workflow.ItemAutosaveApi.as_view(), name="api-item-autosave"),
    path("items/<int:item_id>/history/", api_workflow.ItemHistoryApi.as_view(), name="api-item-history"),
]

from . import api_dataio  # noqa: E402

urlpatterns += [
    path(
        "projects/<int:project_id>/imports/",
        api_dataio.ProjectImportsApi.as_view(),
        name="api-project-imports",
    ),
    path(
        "projects/<int:project_id>/imports/preview/",
        api_dataio.ImportPreviewApi.as_view(),
        name="api-project-import-preview",
    ),
    path("imports/<int:job_id>/", api_dataio.ImportDetailApi.as_view(), name="api-import"),
    path(
        "projects/<int:project_id>/export/", api_dataio.ProjectExportApi.as_view(), name="api-project-export"
    ),
]
