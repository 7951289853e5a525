"""Writes of the fine-tuning loop: runs (launch, run, cancel, watchdog), evaluation, human eval.
Snapshots, what a run trains on, are `training.snapshots`.

Locking: launching a run (by hand or by the trigger) locks the project row (FOR NO KEY UPDATE) and
re-checks that no run is active, so two launches never start two runs. A run's own transitions lock the
run row and re-check its status; a worker owns a run from the claim (queued → running) until it writes
the next state, and proves it is alive with `heartbeat_at`. Deciding a human round locks the project
first, then the run (the order a deploy uses), so the two never deadlock.
The trainer, the metrics and the drafter are the Django-free engine; this module turns rows into calls.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import fields
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from annotation.dataio.conversation import single_turn
from annotation.models import Project
from annotation.permissions import check_project_admin
from annotation.services import audit_record, stored_user
from core.errors import ApplicationError, Conflict, NotFound

from .base_model import base_model_ready, default_base_model, model_files_check
from .engine.config import METHODS, TrainConfig, latest_checkpoint
from .engine.model_files import ModelFilesError
from .model_cache import ModelSpec
from .models import (
    ACTIVE_RUN_STATES,
    FINISHED_RUN_STATES,
    HumanEvalPair,
    HumanEvalRound,
    ModelVersion,
    ModelVersionStatus,
    RunStatus,
    SnapshotSample,
    SnapshotSplit,
    TrainingRun,
)
from .selectors import model_version_deployed
from .services import (
    clean_text,
    drafts_generate,
    generation_settings,
    model_spec,
    model_version_deploy,
    model_version_register,
    model_version_write,
)
from .snapshots import sample_prompt, snapshot_create, snapshot_files_write

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0  # progress rows and live events at most this often (and at the last step)
# Not hyper-parameters: where output goes, what the prompt looks like and the device are the platform's.
_NOT_HYPERPARAMETERS = {"output_dir", "method", "prompt_template", "system_prompt", "device"}
HYPERPARAMETERS = tuple(f.name for f in fields(TrainConfig) if f.name not in _NOT_HYPERPARAMETERS)


# --- launching ----------------------------------------------------------------------------------------


def _coerce(name: str, value, default):
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if name == "max_steps":
        return None if value is None else int(value)
    if name == "lora_target":
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return value
        raise ValueError("must be a module name pattern or a list of names")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number")
    number = type(default)(value)
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError("must be finite")
    return number


_RANGES = {
    "lora_r": (1, 1024),
    "lora_alpha": (1, 4096),
    "lora_dropout": (0.0, 0.9),
    "freeze_trainable_layers": (1, 1000),
    "learning_rate": (1e-8, 1.0),
    "epochs": (0.01, 1000.0),
    "max_steps": (1, 10_000_000),
    "batch_size": (1, 4096),
    "grad_accum": (1, 1024),
    "max_seq_len": (8, 131072),
    "warmup_ratio": (0.0, 1.0),
    "weight_decay": (0.0, 1.0),
    "max_grad_norm": (0.0, 1000.0),
    "seed": (0, 2**31 - 1),
    "checkpoint_every": (0, 10_000_000),
}


def hyperparameters_validate(*, method: str, values: dict | None) -> dict:
    """The run's full hyper-parameters: HANDOVER_TRAINING_DEFAULTS, then `values`; errors name the key."""
    if method not in METHODS:
        raise ApplicationError(
            f"method: must be one of {', '.join(METHODS)}, not {method!r}.", details={"method": [method]}
        )
    values = dict(values or {})
    unknown = sorted(set(values) - set(HYPERPARAMETERS))
    if unknown:
        raise ApplicationError(
            f"hyperparameters: unknown {', '.join(unknown)}; known: {', '.join(HYPERPARAMETERS)}.",
            details={"hyperparameters": unknown},
        )
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name in HYPERPARAMETERS}
    merged = {**defaults, **settings.HANDOVER_TRAINING_DEFAULTS, **values}
    out = {}
    for name, value in merged.items():
        try:
            value = _coerce(name, value, defaults[name])
        except (TypeError, ValueError) as exc:
            raise ApplicationError(
                f"hyperparameters.{name}: {exc} ({value!r}).", details={"hyperparameters": [name]}
            ) from None
        low_high = _RANGES.get(name)
        if low_high and value is not None and not low_high[0] <= value <= low_high[1]:
            raise ApplicationError(
                f"hyperparameters.{name}: {value!r} is outside [{low_high[0]}, {low_high[1]}].",
                details={"hyperparameters": [name]},
            )
        out[name] = value
    return out


def project_settings_check(changes: dict) -> None:
    """A project's training settings, checked when they change (annotation's project_update asks)."""
    if "training_hyperparameters" in changes:
        hyperparameters_validate(method="lora", values=changes["training_hyperparameters"])


def _run_values(project: Project, values: dict) -> dict:
    """The launch's hyper-parameters, with mask_history following the project when nobody set it: a
    project that lets people edit every assistant turn has them all reviewed, so all are trained
    (mask_history false); elsewhere earlier turns are unreviewed context and only the reply is."""
    if "mask_history" in values or "mask_history" in settings.HANDOVER_TRAINING_DEFAULTS:
        return values
    return {**values, "mask_history": not project.edit_all_assistant_turns}


def training_run_active(*, project_id: int) -> TrainingRun | None:
    return TrainingRun.objects.filter(project_id=project_id, status__in=ACTIVE_RUN_STATES).first()


def training_run_create(
    *,
    project: Project,
    actor: AbstractBaseUser | None,
    method: str = "lora",
    hyperparameters: dict | None = None,
    base_model: str = "",
    trigger: str = "manual",
    send: bool = True,
) -> TrainingRun:
    """A queued run over a fresh snapshot, sent to the training queue on commit (project admins; actor
    None is the system trigger). Locks the project row and refuses (409) while another run is active."""
    if actor is not None:
        check_project_admin(user=actor, project=project)
    hyper = hyperparameters_validate(
        method=method,
        values=_run_values(project, {**(project.training_hyperparameters or {}), **(hyperparameters or {})}),
    )
    if base_model:  # one the launch names is checked now; the default or the deployed one when it runs
        model_files_check(base_model=base_model)
    with transaction.atomic():
        project = Project.objects.select_for_update(no_key=True).get(pk=project.pk)
        active = training_run_active(project_id=project.pk)
        if active is not None:
            raise Conflict(
                f"Training run {active.pk} is {active.get_status_display().lower()}; wait or cancel it.",
                code="run_active",
                details={"run": active.pk},
            )
        snapshot = snapshot_create(project=project)
        if snapshot.n_train == 0:
            raise ApplicationError(
                "The project has no approved sample to train on.", code="no_samples", details={}
            )
        baseline = model_version_deployed(project_id=project.pk)
        run = TrainingRun.objects.create(
            project=project,
            snapshot=snapshot,
            trigger=trigger,
            method=method,
            base_model=base_model or (baseline.base_model if baseline else default_base_model()),
            hyperparameters=hyper,
            baseline=baseline,
            total_steps=hyper["max_steps"] or 0,
            created_by=stored_user(actor),
        )
        run.output_dir = str(Path(settings.HANDOVER_TRAINING_DIR) / f"run-{run.pk}")
        run.save(update_fields=["output_dir"])
        audit_record(
            actor=actor,
            action="training_run.create",
            target=run,
            project=project,
            to_state=run.status,
            data={
                "trigger": trigger,
                "method": method,
                "snapshot": snapshot.pk,
                "content_hash": snapshot.content_hash,
                "n_train": snapshot.n_train,
                "n_eval": snapshot.n_eval + snapshot.n_golden,
            },
        )
        if send:  # the command line runs it in its own process instead
            training_run_send_on_commit(run_id=run.pk)
    return run


def training_run_send_on_commit(*, run_id: int) -> None:
    def send():
        from .tasks import training_run_execute

        training_run_execute.apply_async((run_id,), queue=settings.HANDOVER_TRAINING_QUEUE)

    transaction.on_commit(send)


# --- status changes -----------------------------------------------------------------------------------


def _run_lock(run_id: int) -> TrainingRun | None:
    return (
        TrainingRun.objects.select_for_update(of=("self",))
        .select_related("project")
        .filter(pk=run_id)
        .first()
    )


def _run_write(
    run: TrainingRun, *, actor, to_status: str, reason: str = "", data: dict | None = None, **values
):
    """Apply a transition to a locked run, with its audit event and a live event on commit. A run that
    ends cancelled, rejected or failed takes its candidate version with it (rejected, same reason)."""
    from_status = run.status
    if from_status == RunStatus.HUMAN_EVAL and to_status != RunStatus.HUMAN_EVAL:
        _human_eval_close(run)
    if to_status in (RunStatus.CANCELLED, RunStatus.REJECTED, RunStatus.FAILED):  # it ends unpromoted
        _version_reject(run.candidate, actor=actor, reason=reason)
    run.status = to_status
    run.status_reason = reason
    if to_status in FINISHED_RUN_STATES or to_status == RunStatus.AWAITING_DECISION:
        run.finished_at = run.finished_at or timezone.now()
    for name, value in values.items():
        setattr(run, name, value)
    run.save(update_fields=["status", "status_reason", "finished_at", *values])
    audit_record(
        actor=actor,
        action=f"training_run.{to_status}",
        target=run,
        project=run.project,
        from_state=from_status,
        to_state=to_status,
        data={"reason": reason, **(data or {})} if reason or data else None,
    )
    project_id, payload = run.project_id, {"run": run.pk, "status": to_status, "reason": reason}
    transaction.on_commit(lambda: _event_send(project_id, "training_status", payload))
    return run


def _human_eval_close(run: TrainingRun) -> None:
    """The run's blind round is over (concluded, cancelled, rejected, failed): its responses leave the
    rate queue, so nobody spends time rating outputs that no longer decide anything. Ratings already
    given are kept."""
    from review.models import Response

    pairs = HumanEvalPair.objects.filter(round__run=run)
    ids = [
        *pairs.values_list("candidate_response", flat=True),
        *pairs.values_list("baseline_response", flat=True),
    ]
    Response.objects.filter(pk__in=ids, closed_at__isnull=True).update(closed_at=timezone.now())


def _event_send(project_id: int, event: str, payload: dict) -> None:
    from core.realtime import project_event_send

    try:
        project_event_send(project_id, event, payload)
    except Exception:  # a live update is a nicety; never let it stop a run
        logger.warning("could not send %s for project %s", event, project_id, exc_info=True)


def _version_reject(version: ModelVersion | None, *, actor, reason: str) -> None:
    if version is None or version.status in (ModelVersionStatus.DEPLOYED, ModelVersionStatus.RETIRED):
        return
    model_version_write(
        version,
        to_status=ModelVersionStatus.REJECTED,
        actor=actor,
        action="model_version.reject",
        data={"reason": reason},
    )


def training_run_cancel(*, run_id: int, actor: AbstractBaseUser | None) -> TrainingRun:
    """Cancel a run. A queued run, or one waiting for people, ends at once; a training or evaluating run
    is flagged and its worker stops within a step (the watchdog ends it if the worker is gone)."""
    with transaction.atomic():
        run = _run_lock(run_id)
        if run is None:
            raise NotFound("Training run not found.")
        if actor is not None:
            check_project_admin(user=actor, project=run.project)
        if run.status in FINISHED_RUN_STATES:
            raise Conflict(f"The run is already {run.get_status_display().lower()}.", code="run_finished")
        if run.status in (RunStatus.RUNNING, RunStatus.EVALUATING):
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
            audit_record(
                actor=actor,
                action="training_run.cancel_requested",
                target=run,
                project=run.project,
                from_state=run.status,
                to_state=run.status,
            )
            return run
        return _run_write(
            run,
            actor=actor,
            to_status=RunStatus.CANCELLED,
            reason="cancelled by an admin",
            cancel_requested=True,
        )


def training_run_reject(*, run_id: int, actor: AbstractBaseUser) -> TrainingRun:
    """The admin's decision against a waiting candidate: the run and its version are rejected."""
    with transaction.atomic():
        run = _run_lock(run_id)
        if run is None:
            raise NotFound("Training run not found.")
        check_project_admin(user=actor, project=run.project)
        if run.status not in (RunStatus.HUMAN_EVAL, RunStatus.AWAITING_DECISION):
            raise Conflict("Only a run waiting for a decision can be rejected.", code="illegal_transition")
        return _run_write(run, actor=actor, to_status=RunStatus.REJECTED, reason="rejected by an admin")


def runs_mark_promoted(*, version: ModelVersion, actor) -> None:
    """A deploy of a run's candidate ends that run as promoted (called by model_version_deploy, which
    holds the project lock)."""
    waiting = (RunStatus.HUMAN_EVAL, RunStatus.AWAITING_DECISION)
    for run in (
        TrainingRun.objects.select_for_update(of=("self",))
        .select_related("project")
        .filter(candidate=version, status__in=waiting)
    ):
        _run_write(run, actor=actor, to_status=RunStatus.PROMOTED, reason="promoted")


# --- executing ----------------------------------------------------------------------------------------


def _claim(run_id: int) -> TrainingRun | None:
    """queued → running (or evaluating, when the model is trained): this worker now owns the run."""
    with transaction.atomic():
        run = _run_lock(run_id)
        if run is None or run.status != RunStatus.QUEUED:
            return None  # gone, finished, or another worker holds it (a redelivered message)
        if run.cancel_requested:
            _run_write(run, actor=None, to_status=RunStatus.CANCELLED, reason="cancelled before it started")
            return None
        now = timezone.now()
        to_status = RunStatus.EVALUATING if run.trained_model_dir else RunStatus.RUNNING
        return _run_write(
            run,
            actor=None,
            to_status=to_status,
            data={"attempt": run.attempts + 1},
            attempts=run.attempts + 1,
            started_at=run.started_at or now,
            heartbeat_at=now,
        )


def _heartbeat(run_id: int, **values) -> None:
    TrainingRun.objects.filter(pk=run_id).update(heartbeat_at=timezone.now(), **values)


def _cancel_requested(run_id: int) -> bool:
    return TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def _finish_if_cancelled(run_id: int) -> bool:
    with transaction.atomic():
        run = _run_lock(run_id)
        if run is None or not run.cancel_requested or run.status in FINISHED_RUN_STATES:
            return False
        _run_write(run, actor=None, to_status=RunStatus.CANCELLED, reason="cancelled by an admin")
        return True


def _fail(run_id: int, reason: str) -> None:
    with transaction.atomic():
        run = _run_lock(run_id)
        if run is not None and run.status not in FINISHED_RUN_STATES:
            _run_write(run, actor=None, to_status=RunStatus.FAILED, reason=reason)


def training_run_execute(*, run_id: int, on_step=None) -> str | None:
    """Everything a worker does for a run: claim, train (resuming from the last checkpoint), evaluate,
    gate, and open the human round. Idempotent: a run it cannot claim is left alone. Returns the status."""
    run = _claim(run_id)
    if run is None:
        return None
    try:
        if not run.trained_model_dir and not _train(run, on_step=on_step):
            return RunStatus.CANCELLED
        if _finish_if_cancelled(run_id):
            return RunStatus.CANCELLED
        return _evaluate(run)
    except ModelFilesError as exc:  # a person's mistake, said in a person's words
        logger.warning("training run %s failed: %s", run_id, exc)
        _fail(run_id, str(exc))
        return RunStatus.FAILED
    except Exception as exc:
        logger.exception("training run %s failed", run_id)
        _fail(run_id, f"{type(exc).__name__}: {exc}"[:2000])
        return RunStatus.FAILED


def _train_samples(run: TrainingRun) -> list[dict]:
    rows = run.snapshot.samples.filter(split=SnapshotSplit.TRAIN).order_by("item_id")
    samples = []
    for row in rows.iterator(chunk_size=2000):
        prompt = sample_prompt(run.project, row)
        conversation = {"system": prompt.system, "messages": prompt.messages, "tools": prompt.tools}
        samples.append({**conversation, "output": row.output, "reply_extra": row.reply_extra})
    return samples


def _model_settings(run: TrainingRun) -> tuple[str, dict]:
    """Prompt template and generation settings of the candidate: the baseline's, so it drafts alike."""
    if run.baseline is not None:
        return run.baseline.prompt_template, dict(run.baseline.generation)
    return "{input}", {}


def _train(run: TrainingRun, *, on_step=None) -> bool:
    """Train, writing progress; True when the model is trained, False when cancelled."""
    from .engine.trainer import train

    output = Path(run.output_dir)
    snapshot_files_write(snapshot=run.snapshot, directory=output / "data")
    prompt_template, generation = _model_settings(run)
    config = TrainConfig.from_dict(
        {
            **run.hyperparameters,
            "method": run.method,
            "output_dir": str(output / "train"),
            "prompt_template": prompt_template,
            "system_prompt": generation.get("system_prompt") or None,
        }
    )
    resume = latest_checkpoint(output / "train")
    curve = list(run.loss_curve)
    if resume is not None:
        resumed_step = int(resume.name.rsplit("-", 1)[1])
        curve = curve[:resumed_step]
        TrainingRun.objects.filter(pk=run.pk).update(resumed_from=[*run.resumed_from, str(resume)])
    last_write = [0.0]

    def on_progress(step, total, loss, lr, tokens_per_s, eta):
        curve.append(loss)
        if on_step is not None:
            on_step(step, total, loss)
        now = time.monotonic()
        if now - last_write[0] < PROGRESS_INTERVAL_S and step < total:
            return
        last_write[0] = now
        values = {
            "step": step,
            "total_steps": total,
            "loss": loss,
            "learning_rate": lr,
            "tokens_per_s": tokens_per_s,
            "eta_s": eta,
        }
        _heartbeat(run.pk, loss_curve=curve, **values)
        _event_send(
            run.project_id, "training_progress", {"run": run.pk, **values, "loss_curve_len": len(curve)}
        )

    result = train(
        config,
        base_model_ready(run.base_model),
        _train_samples(run),
        on_progress=on_progress,
        should_stop=lambda: _cancel_requested(run.pk),
        resume_from=resume,
    )
    if result.stopped_early:
        _finish_if_cancelled(run.pk)
        return False
    candidate_register(
        run_id=run.pk,
        model_dir=str(result.model_dir),
        loss_curve=result.loss_curve,
        steps=result.steps,
        total_steps=result.total_steps,
    )
    return True


def candidate_register(
    *, run_id: int, model_dir: str, loss_curve: list, steps: int, total_steps: int
) -> None:
    """The trained model becomes a candidate ModelVersion; running → evaluating. Idempotent."""
    with transaction.atomic():
        run = _run_lock(run_id)
        if run.status != RunStatus.RUNNING:
            return
        prompt_template, generation = _model_settings(run)
        lora = run.method == "lora"
        version = model_version_register(
            project=run.project,
            actor=None,
            name=f"run {run.pk} ({run.method})",
            base_model=run.base_model if lora else model_dir,
            adapter_path=model_dir if lora else "",
            prompt_template=prompt_template,
            generation=generation,
        )
        _run_write(
            run,
            actor=None,
            to_status=RunStatus.EVALUATING,
            data={"candidate": version.pk},
            candidate=version,
            trained_model_dir=model_dir,
            loss_curve=loss_curve,
            step=steps,
            total_steps=total_steps,
            heartbeat_at=timezone.now(),
            eta_s=0.0,
        )


# --- evaluation -----------------------------------------------------------------------------------------


def _greedy(spec: ModelSpec, prompts: list[str], *, max_new_tokens: int) -> list[str]:
    drafts = drafts_generate(spec, prompts, max_new_tokens=max_new_tokens, temperature=0.0, num_candidates=1)
    return [clean_text(d.text) for d in drafts]


def _baseline_spec(run: TrainingRun) -> ModelSpec:
    if run.baseline is not None:
        return model_spec(run.baseline)
    return ModelSpec(version_id=0, base_model=run.base_model)  # no deployed version: the bare base model


def gate_check(*, candidate: dict, baseline: dict, floor: float, tolerance: float) -> list[str]:
    """Why a candidate fails the project's gate (empty: it passes). Plain, for unit tests."""
    reasons = []
    if candidate["rouge_l"] < floor:
        reasons.append(f"ROUGE-L {candidate['rouge_l']:.3f} is under the floor {floor:.3f}")
    if candidate["rouge_l"] < baseline["rouge_l"] - tolerance:
        reasons.append(
            f"ROUGE-L {candidate['rouge_l']:.3f} is more than {tolerance:.3f} under the deployed model's "
            f"{baseline['rouge_l']:.3f}"
        )
    return reasons


def _evaluate(run: TrainingRun) -> str:
    """Candidate and baseline answer the eval items greedily; metrics, the gate, then the human round."""
    from .engine.metrics import evaluate

    run = TrainingRun.objects.select_related("project", "candidate", "baseline", "snapshot").get(pk=run.pk)
    project = run.project
    rows = list(
        run.snapshot.samples.filter(split__in=[SnapshotSplit.EVAL, SnapshotSplit.GOLDEN]).order_by("item_id")
    )
    prompts = [sample_prompt(project, r) for r in rows]
    references = [r.output for r in rows]
    max_new = generation_settings(run.candidate.generation).max_new_tokens
    _heartbeat(run.pk)
    candidate_out = _greedy(model_spec(run.candidate), prompts, max_new_tokens=max_new)
    _heartbeat(run.pk)
    baseline_out = _greedy(_baseline_spec(run), prompts, max_new_tokens=max_new)
    _heartbeat(run.pk)
    cand, base = evaluate(candidate_out, references), evaluate(baseline_out, references)
    samples = [
        {
            "item": r.item_id,
            "split": r.split,
            "input": r.input,
            "reference": r.output,
            "candidate": c,
            "baseline": b,
            "candidate_scores": cs,
            "baseline_scores": bs,
        }
        for r, c, b, cs, bs in zip(
            rows, candidate_out, baseline_out, cand.pop("per_sample"), base.pop("per_sample"), strict=True
        )
    ]
    reasons = gate_check(
        candidate=cand,
        baseline=base,
        floor=project.eval_rouge_l_floor,
        tolerance=project.eval_rouge_l_tolerance,
    )
    gate = {
        "passed": not reasons,
        "reasons": reasons,
        "rouge_l_floor": project.eval_rouge_l_floor,
        "rouge_l_tolerance": project.eval_rouge_l_tolerance,
    }
    with transaction.atomic():
        run = _run_lock(run.pk)
        if run.status != RunStatus.EVALUATING:
            return run.status
        metrics = {"candidate": cand, "baseline": base}
        if run.cancel_requested:
            _run_write(
                run,
                actor=None,
                to_status=RunStatus.CANCELLED,
                reason="cancelled by an admin",
                metrics=metrics,
                sample_outputs=samples,
                gate=gate,
            )
            return run.status
        if reasons:
            _run_write(
                run,
                actor=None,
                to_status=RunStatus.REJECTED,
                reason="; ".join(reasons),
                metrics=metrics,
                sample_outputs=samples,
                gate=gate,
            )
            return run.status
        model_version_write(
            run.candidate,
            to_status=ModelVersionStatus.EVALUATED,
            actor=None,
            action="model_version.evaluate",
            data=metrics,
        )
        _human_eval_open(run, samples, {r.item_id: r for r in rows})
        _run_write(
            run,
            actor=None,
            to_status=RunStatus.HUMAN_EVAL,
            metrics=metrics,
            sample_outputs=samples,
            gate=gate,
        )
        return run.status


# --- human evaluation -------------------------------------------------------------------------------------

BASE_MODEL_LABEL = "base model"


def _human_eval_open(
    run: TrainingRun, samples: list[dict], rows: dict[int, SnapshotSample]
) -> HumanEvalRound:
    """K eval prompts; the candidate's and the baseline's outputs become blind Responses, created in a
    shuffled order (the `rate` queue serves responses by id), so position never tells which is which.
    Each response carries the conversation it answers (the frozen sample's system prompt and turns), so
    raters judge it in its context."""
    from review.models import Response, ResponseOrigin

    rng = random.Random(run.pk)
    chosen = rng.sample(samples, min(run.project.human_eval_size, len(samples)))
    round_ = HumanEvalRound.objects.create(run=run, size=len(chosen))
    texts = []
    for sample in chosen:
        texts.append((sample, "candidate", sample["candidate"]))
        texts.append((sample, "baseline", sample["baseline"]))
    rng.shuffle(texts)
    made: dict[tuple[int, str], Response] = {}
    for sample, side, text in texts:
        version = run.candidate if side == "candidate" else run.baseline
        row = rows[sample["item"]]
        made[(sample["item"], side)] = Response.objects.create(
            project=run.project,
            input=sample["input"],
            system=row.system,
            messages=row.messages or single_turn(row.input),
            text=text,
            origin=ResponseOrigin.CANDIDATE if side == "candidate" else ResponseOrigin.DRAFT,
            model=version.name if version else BASE_MODEL_LABEL,
            model_version=version,
            item_id=sample["item"],
        )
    HumanEvalPair.objects.bulk_create(
        HumanEvalPair(
            round=round_,
            item_id=s["item"],
            candidate_response=made[(s["item"], "candidate")],
            baseline_response=made[(s["item"], "baseline")],
        )
        for s in chosen
    )
    audit_record(
        actor=None,
        action="human_eval.open",
        target=round_,
        project=run.project,
        data={"run": run.pk, "size": len(chosen), "responses": [r.pk for r in made.values()]},
    )
    return round_


def _mean_ci(values: list[float]) -> dict:
    n = len(values)
    mean = sum(values) / n if n else None
    if n < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = 1.96 * sd / math.sqrt(n)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def human_eval_result(
    *, pairs: list[tuple[list[float], list[float]]], ratings: list[tuple], bootstrap: int = 500, seed: int = 0
) -> dict:
    """Per version the mean weighted score (each response averaged over its raters first) with a 95 %
    normal interval, the candidate's win rate over pairs (a tie counts half), and Krippendorff's alpha of
    the weighted scores (interval level) over the round's responses. Plain, for unit tests.

    `pairs`: per prompt (candidate ratings, baseline ratings); `ratings`: (response, rater, score).
    """
    from review.agreement import dimension_agreement

    cand = [sum(c) / len(c) for c, _ in pairs]
    base = [sum(b) / len(b) for _, b in pairs]
    wins = sum(1.0 if c > b else 0.5 if c == b else 0.0 for c, b in zip(cand, base, strict=True))
    agreement = dimension_agreement(ratings, "interval", bootstrap=bootstrap, seed=seed)
    return {
        "candidate": _mean_ci(cand),
        "baseline": _mean_ci(base),
        "win_rate": wins / len(pairs) if pairs else None,
        "alpha": agreement.alpha,
        "alpha_ci_low": agreement.alpha_ci_low,
        "alpha_ci_high": agreement.alpha_ci_high,
        "alpha_reason": agreement.reason,
        "n_pairs": len(pairs),
        "n_ratings": len(ratings),
    }


def human_eval_conclude(*, run_id: int) -> str | None:
    """When every response of the round has the project's overlap of ratings: the result, then either
    automatic promotion (candidate at least as good, alpha at or above the project minimum) or the
    admin's decision. Returns the run's new status, or None when the round is not complete."""
    from review.models import Rating

    run = TrainingRun.objects.filter(pk=run_id).only("project_id").first()
    if run is None:
        return None
    with transaction.atomic():
        project = Project.objects.select_for_update(no_key=True).get(pk=run.project_id)
        run = _run_lock(run_id)
        if run.status != RunStatus.HUMAN_EVAL:
            return None
        round_ = run.human_eval
        pairs = list(round_.pairs.all())
        response_ids = [p.candidate_response_id for p in pairs] + [p.baseline_response_id for p in pairs]
        counts = dict(
            Rating.objects.filter(response_id__in=response_ids)
            .values("response_id")
            .annotate(n=Count("pk"))
            .values_list("response_id", "n")
        )
        if any(counts.get(r, 0) < project.ratings_per_response for r in response_ids):
            return None
        ratings = list(
            Rating.objects.filter(response_id__in=response_ids).values_list(
                "response_id", "rater_id", "weighted_score"
            )
        )
        by_response: dict[int, list[float]] = {}
        for response_id, _rater, score in ratings:
            by_response.setdefault(response_id, []).append(score)
        result = human_eval_result(
            pairs=[
                (by_response[p.candidate_response_id], by_response[p.baseline_response_id]) for p in pairs
            ],
            ratings=ratings,
            seed=run.pk,
        )
        alpha = result["alpha"]
        better = result["candidate"]["mean"] >= result["baseline"]["mean"]
        agreed = alpha is not None and alpha >= project.human_eval_min_alpha
        result |= {
            "min_alpha": project.human_eval_min_alpha,
            "at_least_as_good": better,
            "agreed": agreed,
            "auto_promote": better and agreed,
        }
        round_.result, round_.concluded_at = result, timezone.now()
        round_.save(update_fields=["result", "concluded_at"])
        audit_record(actor=None, action="human_eval.conclude", target=round_, project=project, data=result)
        if better and agreed:
            model_version_deploy(version_id=run.candidate_id, actor=None, action="model_version.promote")
            return RunStatus.PROMOTED  # model_version_deploy ended the run through runs_mark_promoted
        why = [] if better else ["the candidate scored lower than the deployed model"]
        if not agreed:
            why.append(
                "raters agreed too little (alpha "
                + (f"{alpha:.2f}" if alpha is not None else f"undefined: {result['alpha_reason']}")
                + f" < {project.human_eval_min_alpha:.2f})"
            )
        _run_write(run, actor=None, to_status=RunStatus.AWAITING_DECISION, reason="; ".join(why))
        return run.status


def human_eval_check_all() -> list[int]:
    """Conclude every round whose ratings are in (beat); returns the runs that moved on."""
    moved = []
    for run_id in TrainingRun.objects.filter(status=RunStatus.HUMAN_EVAL).values_list("pk", flat=True):
        if human_eval_conclude(run_id=run_id) is not None:
            moved.append(run_id)
    return moved


# --- the watchdog -------------------------------------------------------------------------------------------


def training_runs_watchdog(*, now=None) -> dict:
    """Runs whose worker stopped beating: re-queued to resume from their last checkpoint while attempts
    remain, else failed with the reason. A run is never left "running" with nobody running it."""
    now = now or timezone.now()
    stale_before = now - timezone.timedelta(seconds=settings.HANDOVER_TRAINING_HEARTBEAT_TIMEOUT)
    busy = (RunStatus.RUNNING, RunStatus.EVALUATING)
    requeued, failed = [], []
    stale = TrainingRun.objects.filter(status__in=busy, heartbeat_at__lt=stale_before).values_list(
        "pk", flat=True
    )
    for run_id in stale:
        with transaction.atomic():
            run = _run_lock(run_id)
            if run.status not in busy or run.heartbeat_at >= stale_before:
                continue  # it moved on or beat meanwhile
            silent = f"no heartbeat for {int((now - run.heartbeat_at).total_seconds())} s (worker lost)"
            if run.cancel_requested:
                _run_write(run, actor=None, to_status=RunStatus.CANCELLED, reason=f"cancelled; {silent}")
            elif run.attempts >= settings.HANDOVER_TRAINING_MAX_ATTEMPTS:
                _run_write(
                    run,
                    actor=None,
                    to_status=RunStatus.FAILED,
                    reason=f"{silent}; gave up after {run.attempts} attempts",
                )
                failed.append(run_id)
            else:
                checkpoint = latest_checkpoint(Path(run.output_dir) / "train") if run.output_dir else None
                _run_write(
                    run,
                    actor=None,
                    to_status=RunStatus.QUEUED,
                    reason=f"{silent}; resuming from {checkpoint.name if checkpoint else 'the start'}",
                )
                training_run_send_on_commit(run_id=run.pk)
                requeued.append(run_id)
    return {"requeued": requeued, "failed": failed}
