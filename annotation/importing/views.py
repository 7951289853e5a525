"""Browser pages for imports: pick a file, see its preview, confirm, then a live progress bar polled by
htmx."""

import json

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from annotation import importing
from annotation.dataio.conversation import last_user_text
from annotation.dataio.parsers import FIELDS, FORMATS
from annotation.pages import project_for_admin_page
from core.errors import ApplicationError, NotFound


class ImportForm(forms.Form):
    file = forms.FileField(label=_("File"), allow_empty_file=True)
    format = forms.ChoiceField(
        label=_("Format"), required=False, choices=[("", _("Detect"))] + [(f, f) for f in FORMATS]
    )
    # One key name per field (parsers.FIELDS); empty: the format's own keys.
    input = forms.CharField(label=_("Question (user turn) key"), required=False)
    system = forms.CharField(label=_("System prompt key"), required=False)
    reference_output = forms.CharField(label=_("Reference answer key"), required=False)
    external_id = forms.CharField(label=_("External id key"), required=False)
    messages = forms.CharField(label=_("Turns key (role/content or from/value)"), required=False)
    history = forms.CharField(label=_("History key ([question, answer] pairs)"), required=False)
    tools = forms.CharField(label=_("Tools key"), required=False)
    session_gap_minutes = forms.FloatField(
        label=_("Chat log: minutes of silence that start a new conversation (default 30)"), required=False
    )
    skip_invalid = forms.BooleanField(label=_("Skip invalid rows (and list them)"), required=False)
    redact = forms.BooleanField(label=_("Redact personal data"), required=False)

    def mapping(self) -> dict | None:
        chosen = {name: self.cleaned_data[name].strip() for name in FIELDS}
        return {name: source for name, source in chosen.items() if source} or None

    def mapping_fields(self):
        return [self[name] for name in FIELDS]

    def format_options(self) -> dict:
        gap = self.cleaned_data["session_gap_minutes"]
        return {} if gap is None else {"session_gap_minutes": gap}


@login_required
def imports(request, project_id: int):
    project = project_for_admin_page(request, project_id)
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
                options=form.format_options(),
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("dataio-import", project.pk, job.pk)
    jobs = importing.import_jobs_recent(project=project)
    return render(request, "annotation/dataio/imports.html", {"project": project, "form": form, "jobs": jobs})


@login_required
@require_POST
def import_preview(request, project_id: int):
    """The preview fragment the import page swaps in whenever the form changes (htmx); the confirm
    button it holds submits the same form, file included, to `imports`."""
    project = project_for_admin_page(request, project_id)
    form = ImportForm(request.POST, request.FILES)
    context = {"project": project, "form": form}
    if "file" not in request.FILES:
        return render(request, "annotation/dataio/_import_preview.html", {"project": project})
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            preview = importing.import_preview(
                project=project, actor=request.user, file=upload, filename=upload.name,
                fmt=form.cleaned_data["format"], mapping=form.mapping(), redact=form.cleaned_data["redact"],
                options=form.format_options(),
            )  # fmt: skip
        except ApplicationError as exc:
            context["error"] = exc.message
        else:
            # An import of a file with errors imports nothing unless invalid rows are skipped.
            blocked = bool(preview.errors_total and not form.cleaned_data["skip_invalid"])
            context.update(preview=preview, rows=[_row_shown(row) for row in preview.rows], blocked=blocked)
    return render(request, "annotation/dataio/_import_preview.html", context)


def _json_shown(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _turn_shown(turn: dict, *, reply: bool = False) -> dict:
    known = ("role", "content", "tool_calls", "tool_call_id", "name")
    calls = []
    for call in turn.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            arguments = _json_shown(function.get("arguments", ""))
            calls.append({"name": function.get("name", ""), "arguments": arguments})
    extra = [(key, _json_shown(value)) for key, value in turn.items() if key not in known]
    return {"role": turn.get("role", "assistant"), "content": turn.get("content", ""), "tool_calls": calls,
            "tool_call_id": turn.get("tool_call_id", ""), "name": turn.get("name", ""), "extra": extra,
            "reply": reply}  # fmt: skip


def _row_shown(row: dict) -> dict:
    """A preview row as the page lists it: turns (the reply last, marked), metadata values as JSON text."""
    turns = [_turn_shown(turn) for turn in row["messages"]]
    if row["reference_output"] or row["reference_extra"]:
        reply = {"role": "assistant", "content": row["reference_output"], **row["reference_extra"]}
        turns.append(_turn_shown(reply, reply=True))
    metadata = [(key, _json_shown(value)) for key, value in row["metadata"].items()]
    summary = Truncator(" ".join(last_user_text(row["messages"]).split())).chars(80)
    return {"line": row["line"], "external_id": row["external_id"], "system": row["system"], "turns": turns,
            "tools": len(row["tools"]), "metadata": metadata, "summary": summary}  # fmt: skip


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
    project = project_for_admin_page(request, project_id)
    job = _job(request, project, job_id)
    return render(request, "annotation/dataio/import_detail.html", {"project": project, "job": job})


@login_required
def import_status(request, project_id: int, job_id: int):
    """The status fragment; it keeps polling itself (hx-trigger every 1s) until the job has finished."""
    project = project_for_admin_page(request, project_id)
    job = _job(request, project, job_id)
    return render(request, "annotation/dataio/_import_status.html", {"project": project, "job": job})
