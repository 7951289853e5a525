"""The export page: pick a format, a state and metadata values; the download is the API's."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from annotation import selectors
from annotation.dataio.exporters import EXPORT_FORMATS
from annotation.exporting import services as exporting
from annotation.models import ItemStatus
from annotation.pages import project_for_admin_page


@login_required
def export(request, project_id: int):
    project = project_for_admin_page(request, project_id)
    counts = selectors.project_state_counts(project_id=project.pk)
    return render(
        request,
        "annotation/dataio/export.html",
        {
            "project": project,
            "formats": EXPORT_FORMATS,
            "statuses": ItemStatus.choices,
            "approved": counts.get(ItemStatus.APPROVED, 0),
            "metadata_keys": exporting.export_metadata_keys(project=project),
        },
    )
