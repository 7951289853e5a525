from django.urls import path

from . import views, views_workflow

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<int:project_id>/", views.project_detail, name="project-detail"),
    path("projects/<int:project_id>/members/", views.project_members, name="project-members"),
    path("items/<int:item_id>/", views_workflow.item_detail, name="item-detail"),
    path("projects/<int:project_id>/items/", views.project_items, name="project-items"),
]

from . import views_dataio  # noqa: E402

urlpatterns += [
    path("projects/<int:project_id>/imports/", views_dataio.imports, name="dataio-imports"),
    path(
        "projects/<int:project_id>/imports/preview/",
        views_dataio.import_preview,
        name="dataio-import-preview",
    ),
    path("projects/<int:project_id>/imports/<int:job_id>/", views_dataio.import_detail, name="dataio-import"),
    path(
        "projects/<int:project_id>/imports/<int:job_id>/status/",
        views_dataio.import_status,
        name="dataio-import-status",
    ),
    path("projects/<int:project_id>/export/", views_dataio.export, name="dataio-export"),
]
