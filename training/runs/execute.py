"""Stage 2 of a run: a worker claims it and trains, writing progress and heartbeat, resuming from its last
checkpoint; the trained model becomes a candidate version.

A worker owns a run from the claim (queued → running) until it writes the next state, and proves it is
alive with `heartbeat_at`. The trainer is the Django-free engine; this module turns rows into its calls.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from ..backends import candidate_backend
from ..base_model import adapter_ready, base_model_ready
from ..engine.config import UnsupportedSetting, latest_checkpoint
from ..engine.model_files import ModelFilesError
from ..models import (
    FINISHED_RUN_STATES,
    RunStatus,
    SnapshotSplit,
    TrainingRun,
)
from ..registry import model_version_register
from ..snapshots import sample_prompt, snapshot_files_write
from .evaluate import _evaluate
from .launch import trainer_config
from .pairs import preference_pairs_read
from .status import _event_send, _heartbeat, _run_lock, _run_write

logger = logging.getLogger(__name__)


PROGRESS_INTERVAL_S = 1.0  # progress rows and live events at most this often (and at the last step)


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
    except (ModelFilesError, UnsupportedSetting) as exc:  # a person's mistake, said in a person's words
        logger.warning("training run %s failed: %s", run_id, exc)
        _fail(run_id, str(exc))
        return RunStatus.FAILED
    except Exception as exc:
        logger.exception("training run %s failed", run_id)
        _fail(run_id, f"{type(exc).__name__}: {exc}"[:2000])
        return RunStatus.FAILED


def _train_samples(run: TrainingRun) -> list[dict]:
    return _samples(run, SnapshotSplit.TRAIN)


def _samples(run: TrainingRun, split: str) -> list[dict]:
    """The split's samples as the trainer reads them: each conversation as drafting asks it."""
    rows = run.snapshot.samples.filter(split=split).order_by("item_id")
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


# What each training_objective trains, stage by stage, and where each stage writes under the run's dir.
_STAGES = {"sft": ("sft",), "preference": ("preference",), "sft_then_preference": ("sft", "preference")}
_STAGE_DIRS = {"sft": "train", "preference": "preference"}
STAGE_RESULT = "stage-result.json"  # a finished stage's TrainResult: a restarted run goes on after it


def _train(run: TrainingRun, *, on_step=None) -> bool:
    """Train, writing progress; True when the model is trained, False when cancelled.

    One process trains here, in the worker. Several are torchrun's children (`engine.launch`): rank 0's
    progress and evaluations come back through the same callbacks, and a cancel goes down as the stop
    file that rank 0 reads and tells the others, so the run ends as it does in one process.

    The run's objective (the project's training_objective at launch) is one stage or two: SFT on the
    snapshot, DPO on the pairs frozen at launch, or SFT then DPO starting from the SFT result. A DPO
    stage's reference is the model it starts from: the deployed version (base + its adapter, which a
    LoRA run trains on) for a preference run, the SFT result after an SFT stage. Steps and the loss
    curve run on across stages; `metrics["training"]["stage"]` says which one is training.
    """
    output = Path(run.output_dir)
    snapshot_files_write(snapshot=run.snapshot, directory=output / "data")
    stages = _STAGES[run.metrics.get("objective", "sft")]
    model_dir = base_model_ready(run.base_model)
    init_adapter = _deployed_adapter(run) if stages[0] == "preference" else None
    done = []
    for stage in stages:
        result = _stage_result_read(output / _STAGE_DIRS[stage])
        if result is None:
            result = _train_stage(run, stage, model_dir, init_adapter, done, on_step=on_step)
            if result is None:
                return False
        done.append(result)
        if run.method == "lora":  # the next stage trains this adapter on, over the same base
            init_adapter = str(result.model_dir)
        else:
            model_dir, init_adapter = str(result.model_dir), None
    last, per_stage = done[-1], list(zip(stages, done, strict=True))
    summary = _training_summary(last.eval_curve, last.best_step, last.best_eval_loss)
    candidate_register(
        run_id=run.pk,
        model_dir=str(last.model_dir),
        loss_curve=[loss for r in done for loss in r.loss_curve],
        steps=sum(r.steps for r in done),
        total_steps=sum(r.total_steps for r in done),
        training={
            **summary,
            "stop_reason": "; ".join(f"{st}: {r.stop_reason}" for st, r in per_stage)
            if len(done) > 1
            else last.stop_reason,
            "early_stopped": last.early_stopped,
            "stage": stages[-1],
            "stages": [{"stage": st, "steps": r.steps, "final_loss": r.final_loss} for st, r in per_stage],
        },
    )
    return True


def _deployed_adapter(run: TrainingRun) -> str | None:
    """The deployed version's adapter, which a preference run starts from (and takes as its reference),
    when the run trains on the base it adapts."""
    baseline = run.baseline
    if baseline is None or not baseline.adapter_path or baseline.base_model != run.base_model:
        return None
    return adapter_ready(baseline.adapter_path)


def _stage_result_read(directory: Path):
    from ..engine.trainer import TrainResult

    path = directory / STAGE_RESULT
    if not path.exists():
        return None
    values = json.loads(path.read_text())
    for key in ("model_dir", "checkpoint_dir"):
        values[key] = Path(values[key]) if values[key] else None
    return TrainResult(**values)


def _stage_result_write(directory: Path, result) -> None:
    values = asdict(result)
    values["model_dir"] = str(result.model_dir)
    values["checkpoint_dir"] = str(result.checkpoint_dir) if result.checkpoint_dir else None
    tmp = directory / (STAGE_RESULT + ".tmp")
    tmp.write_text(json.dumps(values))
    tmp.rename(directory / STAGE_RESULT)


def _train_stage(run: TrainingRun, stage: str, model_dir: str, init_adapter, done: list, *, on_step=None):
    """One stage, resuming from its last checkpoint; its TrainResult, or None when cancelled."""
    from ..engine.launch import train_in_processes
    from ..engine.trainer import train

    output = Path(run.output_dir)
    prompt_template, generation = _model_settings(run)
    hyper = dict(run.hyperparameters)
    if stage == "preference" and hyper.get("preference_learning_rate"):
        hyper["learning_rate"] = hyper["preference_learning_rate"]
    config = trainer_config(
        hyper,
        method=run.method,
        output_dir=str(output / _STAGE_DIRS[stage]),
        prompt_template=prompt_template,
        system_prompt=generation.get("system_prompt") or None,
        objective="dpo" if stage == "preference" else "sft",
        init_adapter=init_adapter,
    )
    if stage == "preference":
        pairs = preference_pairs_read(directory=output)
        train_items, eval_items = pairs["train"], pairs["eval"] if config.eval_every else ()
    else:
        train_items = _train_samples(run)
        eval_items = _samples(run, SnapshotSplit.EVAL) if config.eval_every else ()
    offset = sum(r.steps for r in done)
    earlier = [loss for r in done for loss in r.loss_curve]
    metrics = dict(run.metrics)
    training = dict(metrics.get("training", {}))
    resume = latest_checkpoint(config.output_dir)
    curve, evals = list(earlier), []
    if resume is not None:
        resumed_step = int(resume.name.rsplit("-", 1)[1])
        curve += list(run.loss_curve)[offset : offset + resumed_step]
        if training.get("stage", stage) == stage:
            evals = [e for e in training.get("eval_loss_curve", []) if e[0] <= resumed_step]
        TrainingRun.objects.filter(pk=run.pk).update(resumed_from=[*run.resumed_from, str(resume)])
    elif offset == 0:
        curve = list(run.loss_curve)  # as it always was for a run's first (or only) stage
    training["stage"] = stage
    metrics["training"] = training
    _heartbeat(run.pk, metrics=metrics)
    last_write = [0.0]

    def on_progress(step, total, loss, lr, tokens_per_s, eta):
        step, total = offset + step, max(run.total_steps, offset + total)
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
            run.project_id,
            "training_progress",
            {"run": run.pk, **values, "loss_curve_len": len(curve), "stage": stage},
        )

    def on_eval(step, eval_loss, best_step, best_eval_loss):
        evals.append([step, eval_loss])
        values = {
            "step": step,
            "eval_loss": eval_loss,
            "best_step": best_step,
            "best_eval_loss": best_eval_loss,
        }
        training.update(_training_summary(evals, best_step, best_eval_loss))
        _heartbeat(run.pk, metrics=metrics)
        _event_send(run.project_id, "training_eval", {"run": run.pk, **values, "stage": stage})

    trainer = train_in_processes if config.num_processes > 1 else train
    result = trainer(
        config,
        model_dir,
        train_items,
        eval_samples=eval_items,
        on_progress=on_progress,
        on_eval=on_eval,
        should_stop=lambda: _cancel_requested(run.pk),
        resume_from=resume,
    )
    if result.stopped_early:
        _finish_if_cancelled(run.pk)
        return None
    _stage_result_write(Path(config.output_dir), result)
    return result


def _training_summary(evals: list, best_step: int | None, best_eval_loss: float | None) -> dict:
    """What the run page and API show of training beside the loss curve (`metrics["training"]`)."""
    return {"eval_loss_curve": evals, "best_step": best_step, "best_eval_loss": best_eval_loss}


def _run_kind(run: TrainingRun) -> str:
    objective = run.metrics.get("objective", "sft")
    return run.method if objective == "sft" else f"{run.method}, {objective.replace('_', ' ')}"


def candidate_register(
    *,
    run_id: int,
    model_dir: str,
    loss_curve: list,
    steps: int,
    total_steps: int,
    training: dict | None = None,
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
            name=f"run {run.pk} ({_run_kind(run)})",
            base_model=run.base_model if lora else model_dir,
            adapter_path=model_dir if lora else "",
            prompt_template=prompt_template,
            generation=generation,
            # A LoRA of a served version is served by the same server (its adapter loaded at deploy);
            # the server is asked at deploy, not here under the run's lock.
            **candidate_backend(run.baseline, run_id=run.pk, lora=lora),
            check_server=False,
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
            metrics={**run.metrics, "training": training or {}},
        )
