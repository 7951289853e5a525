"""Browser pages of the annotation layer (the workbench and dashboard are review's)."""

from django.urls import path

from annotation.exporting import views as exports
from annotation.importing import views as imports
from annotation.projects import views as projects
from annotation.workflow import views as work

urlpatterns = [
    path("", projects.home, name="home"),
    path("projects/<int:project_id>/", projects.project_detail, name="project-detail"),
    path("projects/<int:project_id>/members/", projects.project_members, name="project-members"),
    path("projects/<int:project_id>/items/", projects.project_items, name="project-items"),
    path("items/<int:item_id>/", work.item_detail, name="item-detail"),
    path("projects/<int:project_id>/imports/", imports.imports, name="dataio-imports"),
    path("projects/<int:project_id>/imports/preview/", imports.import_preview, name="dataio-import-preview"),
    path("projects/<int:project_id>/imports/<int:job_id>/", imports.import_detail, name="dataio-import"),
    path(
        "projects/<int:project_id>/imports/<int:job_id>/status/",
        imports.import_status,
        name="dataio-import-status",
    ),
    path("projects/<int:project_id>/export/", exports.export, name="dataio-export"),
]
