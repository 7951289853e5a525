"""Browser pages for imports (upload, then a live progress bar polled by htmx) and exports."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _

from core.errors import ApplicationError, NotAllowed, NotFound

from . import importing, selectors
from .dataio.exporters import EXPORT_FORMATS
from .dataio.parsers import FIELDS, FORMATS
from .models import ItemStatus
from .permissions import check_project_admin


class ImportForm(forms.Form):
    file = forms.FileField(label=_("File"), allow_empty_file=True)
    format = forms.ChoiceField(
        label=_("Format"), required=False, choices=[("", _("Detect"))] + [(f, f) for f in FORMATS]
    )
    input = forms.CharField(label=_("Input field"), required=False)
    context = forms.CharField(label=_("Context field"), required=False)
    reference_output = forms.CharField(label=_("Reference output field"), required=False)
    external_id = forms.CharField(label=_("External id field"), required=False)
    skip_invalid = forms.BooleanField(label=_("Skip invalid rows (and list them)"), required=False)
    redact = forms.BooleanField(label=_("Redact personal data"), required=False)

    def mapping(self) -> dict | None:
        chosen = {name: self.cleaned_data[name].strip() for name in FIELDS}
        return {name: source for name, source in chosen.items() if source} or None


def _admin_project(request, project_id: int):
    try:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        check_project_admin(user=request.user, project=project)
    except NotFound:
        raise Http404 from None
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    return project


@login_required
def imports(request, project_id: int):
    project = _admin_project(request, project_id)
    initial = {"redact": project.redact_on_import}
    form = ImportForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = importing.import_job_create(
                project=project,
                actor=request.user,
                filename=upload.name,
                file=upload,
                fmt=form.cleaned_data["format"],
                mapping=form.mapping(),
                skip_invalid=form.cleaned_data["skip_invalid"],
                redact=form.cleaned_data["redact"],
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("dataio-import", project.pk, job.pk)
    jobs = importing.import_jobs_recent(project=project)
    return render(request, "annotation/dataio/imports.html", {"project": project, "form": form, "jobs": jobs})


def _job(request, project, job_id: int):
    try:
        job = importing.import_job_get_for_user(user=request.user, job_id=job_id)
    except NotFound:
        raise Http404 from None
    if job.project_id != project.pk:
        raise Http404
    return job


@login_required
def import_detail(request, project_id: int, job_id: int):
    project = _admin_project(request, project_id)
    job = _job(request, project, job_id)
    return render(request, "annotation/dataio/import_detail.html", {"project": project, "job": job})


@login_required
def import_status(request, project_id: int, job_id: int):
    """The status fragment; it keeps polling itself (hx-trigger every 1s) until the job has finished."""
    project = _admin_project(request, project_id)
    job = _job(request, project, job_id)
    return render(request, "annotation/dataio/_import_status.html", {"project": project, "job": job})


@login_required
def export(request, project_id: int):
    project = _admin_project(request, project_id)
    counts = selectors.project_state_counts(project_id=project.pk)
    return render(
        request,
        "annotation/dataio/export.html",
        {
            "project": project,
            "formats": EXPORT_FORMATS,
            "statuses": ItemStatus.choices,
            "approved": counts.get(ItemStatus.APPROVED, 0),
        },
    )
