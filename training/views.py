"""Browser pages of a project's models (versions, deploy / roll back, hand-overs) and training runs."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from annotation.models import Role
from annotation.selectors import project_get_for_user, user_roles
from core.errors import ApplicationError, NotAllowed, NotFound

from . import calibration, canary, drafting, registry, selectors, snapshots, versus
from .models import HandoverTicket
from .runs import launch
from .runs import status as run_status


def _project_or_404(request, project_id: int):
    try:
        return project_get_for_user(user=request.user, project_id=project_id)
    except NotFound:
        raise Http404 from None


REGISTER_FIELDS = (
    "name",
    "backend",
    "base_model",
    "adapter_path",
    "server_url",
    "server_model",
    "server_api_key",
)


@login_required
def project_models(request, project_id: int):
    """The project's versions, hand-overs, and (admins) a form to register a version: in-process, or
    on an OpenAI-compatible server (URL, model name, API key, options)."""
    project = _project_or_404(request, project_id)
    is_admin = Role.ADMIN in user_roles(user=request.user, project=project)
    form = {}
    if request.method == "POST":
        form = {name: request.POST.get(name, "").strip() for name in REGISTER_FIELDS}
        try:
            options = json.loads(request.POST.get("server_options") or "{}")
            version = registry.model_version_register(
                project=project, actor=request.user, server_options=options,
                **{k: v for k, v in form.items() if v or k == "name"},
            )  # fmt: skip
        except json.JSONDecodeError as exc:
            messages.error(request, _("Server options: not JSON (%(error)s).") % {"error": exc})
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from None
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Version %(name)s is registered.") % {"name": version.name})
            return redirect("project-models", project.pk)
        form.pop("server_api_key", None)  # never sent back into the page
        form["server_options"] = request.POST.get("server_options", "")
    tickets = list(
        HandoverTicket.objects.filter(project=project).select_related("item__current_revision")[:20]
    )
    return render(
        request,
        "training/project_models.html",
        {
            "project": project,
            "versions": selectors.model_versions_of(project_id=project.pk),
            "undrafted": drafting.undrafted_items(project_id=project.pk).count(),
            "tickets": [(t, selectors.ticket_status(t)) for t in tickets],
            "is_admin": is_admin,
            "form": form,
            "canary": canary.canary_view(project=project, actor=request.user)["canary"] if is_admin else None,
            "canary_defaults": {"share": 0.1, "min_outcomes": settings.HANDOVER_CANARY_MIN_OUTCOMES},
        },
    )


def _deployed_message(version) -> str:
    """The deploy's outcome in words: drafting has started, and what happened on the model server."""
    outcome = getattr(version, "backend_outcome", None)
    notes = " ".join(outcome.messages) if outcome is not None else ""
    return f"{_('Deployed. Drafting of new items has started.')} {notes}".strip()


@login_required
@require_POST
def model_version_act(request, project_id: int, version_id: int, action: str):
    project = _project_or_404(request, project_id)
    try:
        if action == "deploy":
            version = registry.model_version_deploy(version_id=version_id, actor=request.user)
        elif action == "rollback":
            version = registry.model_version_rollback(
                project=project, actor=request.user, to_version_id=version_id
            )
        elif action == "canary":
            started = canary.canary_start(
                project=project, version_id=version_id, actor=request.user,
                share=request.POST.get("share", ""),
                min_outcomes=request.POST.get("min_outcomes") or None,
            )  # fmt: skip
        else:
            raise Http404
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        if action == "canary":
            messages.success(
                request,
                _("Canary started: %(pct)s %% of callers ask %(name)s.")
                % {"pct": f"{started.share * 100:g}", "name": started.candidate.name},
            )
        else:
            messages.success(request, _deployed_message(version))
    return redirect("project-models", project.pk)


@login_required
@require_POST
def canary_act(request, project_id: int, decision: str):
    """An admin ends the running canary by hand: promote now, or roll back."""
    project = _project_or_404(request, project_id)
    try:
        ended = canary.canary_end(project=project, actor=request.user, decision=decision)
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        state = ended.get_state_display()
        messages.success(request, _("Canary %(id)s ended: %(state)s.") % {"id": ended.pk, "state": state})
    return redirect("project-models", project.pk)


# --- training runs ------------------------------------------------------------------------------------


@login_required
def training_runs(request, project_id: int):
    project = _project_or_404(request, project_id)
    is_admin = Role.ADMIN in user_roles(user=request.user, project=project)
    if request.method == "POST":
        try:
            hyper = json.loads(request.POST.get("hyperparameters") or "{}")
            run = launch.training_run_create(
                project=project, actor=request.user, method=request.POST.get("method", "lora"),
                hyperparameters=hyper,
            )  # fmt: skip
        except json.JSONDecodeError as exc:
            messages.error(request, _("Hyper-parameters: not JSON (%(error)s).") % {"error": exc})
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from None
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Training run %(id)s is queued.") % {"id": run.pk})
            return redirect("training-run", project.pk, run.pk)
    return render(
        request,
        "training/runs.html",
        {
            "project": project,
            "runs": selectors.training_runs_of(project_id=project.pk)[:50],
            "is_admin": is_admin,
            "pending": snapshots.approved_unsnapshotted(project_id=project.pk).count(),
        },
    )


def _run(request, project, run_id: int):
    """The run, when the user may see it and it belongs to the project in the URL; else 404."""
    try:
        run = selectors.training_run_get_for_user(user=request.user, run_id=run_id)
    except NotFound:
        raise Http404 from None
    if run.project_id != project.pk:
        raise Http404
    return run


@login_required
def training_run(request, project_id: int, run_id: int):
    project = _project_or_404(request, project_id)
    run = _run(request, project, run_id)
    human_eval = getattr(run, "human_eval", None)
    return render(
        request,
        "training/run.html",
        {
            "project": project,
            "run": run,
            "human_eval": human_eval,
            "is_admin": Role.ADMIN in user_roles(user=request.user, project=project),
            "metric_rows": [
                (name, run.metrics.get("candidate", {}).get(key), run.metrics.get("baseline", {}).get(key))
                for key, name in (("rouge_l", "ROUGE-L"), ("bleu", "BLEU"), ("exact_match", _("Exact match")),
                                  ("f1", _("Token F1")))
            ] if run.metrics.get("candidate") else [],
        },
    )  # fmt: skip


@login_required
@require_POST
def training_run_act(request, project_id: int, run_id: int, action: str):
    project = _project_or_404(request, project_id)
    run = _run(request, project, run_id)
    try:
        if action == "cancel":
            run_status.training_run_cancel(run_id=run.pk, actor=request.user)
        elif action == "reject":
            run_status.training_run_reject(run_id=run.pk, actor=request.user)
        elif action == "promote" and run.candidate_id:
            version = registry.model_version_deploy(version_id=run.candidate_id, actor=request.user)
        elif action == "rollback":
            version = registry.model_version_rollback(project=project, actor=request.user)
        else:
            raise Http404
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except NotFound:
        raise Http404 from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, _deployed_message(version) if action in ("promote", "rollback") else _("Done.")
        )
    return redirect("training-run", project.pk, run_id)


def _int_or_raw(value: str):
    try:
        return int(value)
    except ValueError:
        return value  # the service names the field and the value


@login_required
def versions_compare(request, project_id: int):
    """The leaderboard's block (fetched by htmx, admins): a form to pair two versions' answers on the
    same prompts; its POST sends the comparison to the gpu queue and goes back to the leaderboard."""
    project = _project_or_404(request, project_id)
    if Role.ADMIN not in user_roles(user=request.user, project=project):
        raise PermissionDenied
    if request.method == "POST":
        try:
            task_id = versus.versions_compare_request(
                project=project,
                actor=request.user,
                version_a=_int_or_raw(request.POST.get("version_a", "")),
                version_b=_int_or_raw(request.POST.get("version_b", "")),
                n=_int_or_raw(request.POST.get("n", "20")),
                prompts=request.POST.get("prompts", "approved"),
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                _("Both versions are answering; the pairs appear when the worker is done (task %(id)s).")
                % {"id": task_id},
            )
        return redirect("review-leaderboard", project.pk)
    versions = list(selectors.model_versions_of(project_id=project.pk))
    # By default the deployed version against the newest other one.
    default_a = next((v.pk for v in versions if v.status == "deployed"), versions[0].pk if versions else None)
    default_b = next((v.pk for v in versions if v.pk != default_a), None)
    return render(
        request,
        "training/_versions_compare.html",
        {"project": project, "versions": versions, "default_a": default_a, "default_b": default_b},
    )


# --- calibration --------------------------------------------------------------------------------------


@login_required
def calibration_page(request, project_id: int):
    """Project admins: per version, the reliability diagram, ECE before / after, and the thresholds the
    target implies, with a button that applies the deployed version's suggestion."""
    project = _project_or_404(request, project_id)
    if request.method == "POST":
        try:
            applied = calibration.calibration_apply(project=project, actor=request.user)
        except NotAllowed as exc:
            raise PermissionDenied(exc.message) from None
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                _("Threshold %(t).3f applied (%(n)d per-value thresholds).")
                % {
                    "t": applied["confidence_threshold"],
                    "n": sum(map(len, applied["metadata_thresholds"].values())),
                },
            )
        return redirect("training-calibration", project.pk)
    try:
        report = calibration.report_public(
            calibration.calibration_report(project=project, actor=request.user)
        )
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    chart = [
        {
            "name": f"{r['name']} (#{r['model_version']})",
            "before": r["reliability_before"],
            "after": r["reliability_after"],
        }
        for r in report["versions"]
    ]
    return render(
        request, "training/calibration.html", {"project": project, "report": report, "chart_data": chart}
    )
