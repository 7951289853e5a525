"""Stage 1 of a run: its hyper-parameters checked, a queued run over a fresh snapshot, sent to a gpu worker.

Locking: a launch (by hand or by the trigger) locks the project row (FOR NO KEY UPDATE) and re-checks
that no run is active, so two launches never start two runs.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import Project
from annotation.permissions import check_project_admin
from annotation.services import audit_record, stored_user
from core.errors import ApplicationError, Conflict
from core.hooks import task_send_on_commit

from ..base_model import default_base_model, model_files_check
from ..engine.config import METHODS, MIXED_PRECISION, TrainConfig
from ..models import (
    ACTIVE_RUN_STATES,
    TrainingRun,
)
from ..selectors import model_version_deployed
from ..snapshots import snapshot_create
from .pairs import preference_pairs_freeze, preference_pairs_write

# Not hyper-parameters: where output goes, what the prompt looks like and the device are the platform's;
# what a run learns (objective) follows the project's training_objective, and it starts from its model.
_NOT_HYPERPARAMETERS = {
    "output_dir", "method", "prompt_template", "system_prompt", "device", "objective", "init_adapter",
}  # fmt: skip


# The run's own settings beside the trainer's: the DPO stage's learning rate (None: learning_rate), since
# preference training usually wants a much lower one than supervised fine-tuning.
RUN_SETTINGS = {"preference_learning_rate": None}
HYPERPARAMETERS = (
    *(f.name for f in fields(TrainConfig) if f.name not in _NOT_HYPERPARAMETERS),
    *RUN_SETTINGS,
)


def _coerce(name: str, value, default):
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if name == "max_steps":
        return None if value is None else int(value)
    if default is None:  # a rate that may be left unset (preference_learning_rate): None, or a number
        if value is None:
            return None
        default = 0.0
    if name == "lora_target":
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return value
        raise ValueError("must be a module name pattern or a list of names")
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ValueError(f"must be one of {', '.join(_CHOICES[name])}")
        return value
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
    "preference_learning_rate": (1e-8, 1.0),
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
    "num_processes": (1, 64),
    "eval_every": (0, 10_000_000),
    "early_stopping_patience": (0, 10_000),
    "early_stopping_min_delta": (0.0, 1000.0),
    "beta": (0.001, 100.0),
    "label_smoothing": (0.0, 0.49),
}
_CHOICES = {"mixed_precision": MIXED_PRECISION}
# Whether the gpu worker has CUDA, bf16 or enough GPUs is known only there: those refusals come from
# the run (its reason on the run page), these from the launch.
_TOGETHER = (
    (
        "qlora",
        lambda v, method: not v["qlora"] or method == "lora",
        "needs method lora (an adapter over a 4-bit base)",
    ),
    (
        "early_stopping_patience",
        lambda v, method: not v["early_stopping_patience"] or v["eval_every"],
        "needs eval_every: stopping is decided on the eval loss",
    ),
)


def hyperparameters_validate(*, method: str, values: dict | None) -> dict:
    """The run's full hyper-parameters: HANDOVER_TRAINING_DEFAULTS, then `values`; errors name the key."""
    if method not in METHODS:
        raise ApplicationError(
            f"method: must be one of {', '.join(METHODS)}, not {method!r}.", details={"method": [method]}
        )
    values = _legacy_bf16(dict(values or {}))
    unknown = sorted(set(values) - set(HYPERPARAMETERS))
    if unknown:
        raise ApplicationError(
            f"hyperparameters: unknown {', '.join(unknown)}; known: {', '.join(HYPERPARAMETERS)}.",
            details={"hyperparameters": unknown},
        )
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name in HYPERPARAMETERS} | RUN_SETTINGS
    merged = {**defaults, **_legacy_bf16(dict(settings.HANDOVER_TRAINING_DEFAULTS)), **values}
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
    for name, holds, needs in _TOGETHER:
        if not holds(out, method):
            raise ApplicationError(
                f"hyperparameters.{name}: {needs} ({out[name]!r}).", details={"hyperparameters": [name]}
            )
    return out


def _legacy_bf16(values: dict) -> dict:
    """`bf16: true`, the older spelling of `mixed_precision: "bf16"`, still accepted (stored project
    settings have it)."""
    if "bf16" not in values:
        return values
    bf16 = values.pop("bf16")
    if not isinstance(bf16, bool):
        raise ApplicationError(
            f"hyperparameters.bf16: must be true or false ({bf16!r}); mixed_precision says it now.",
            details={"hyperparameters": ["bf16"]},
        )
    if bf16:
        values.setdefault("mixed_precision", "bf16")
    return values


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
    None is the system trigger). Locks the project row and refuses (409) while another run is active.

    The project's training_objective decides what it learns: sft from the snapshot's approved samples
    (400 no_samples without one), preference from the judged pairs, frozen now into the run's directory
    (400 no_pairs without one), or sft_then_preference both, one stage after the other."""
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
        objective = project.training_objective
        snapshot = snapshot_create(project=project)  # a preference run is evaluated on its held-out items
        if objective != "preference" and snapshot.n_train == 0:
            raise ApplicationError(
                "The project has no approved sample to train on.", code="no_samples", details={}
            )
        pairs = preference_pairs_freeze(project=project) if objective != "sft" else None
        if pairs is not None and not pairs["train"]:
            raise ApplicationError(
                "training_objective: the project has no decided preference pair to train on "
                f"({pairs['counts']['eval']} held out, {pairs['counts']['ties']} ties, "
                f"{pairs['counts']['split']} split); judge pairs in the compare queue first.",
                code="no_pairs",
                details={"training_objective": [objective]},
            )
        baseline = model_version_deployed(project_id=project.pk)
        if not base_model and baseline is not None and not baseline.base_model:
            # A version on a server may name no local copy of its weights; training needs one.
            raise ApplicationError(
                f"base_model: the deployed version '{baseline.name}' is served by {baseline.server_url} and "
                "names no local base model directory to train from; give one with the launch.",
                code="model_files",
                details={"base_model": []},
            )
        run = TrainingRun.objects.create(
            project=project,
            snapshot=snapshot,
            trigger=trigger,
            method=method,
            base_model=base_model or (baseline.base_model if baseline else default_base_model()),
            hyperparameters=hyper,
            baseline=baseline,
            total_steps=_total_steps(method, hyper, objective, snapshot.n_train, pairs),
            created_by=stored_user(actor),
            metrics=_objective_metrics(objective, pairs),
        )
        run.output_dir = str(Path(settings.HANDOVER_TRAINING_DIR) / f"run-{run.pk}")
        run.save(update_fields=["output_dir"])
        if pairs is not None:
            # Written now, not on commit: the run's directory is its own (a rolled-back launch leaves an
            # unused one behind), and the worker must find the pairs as soon as the run is sent.
            preference_pairs_write(directory=Path(run.output_dir), frozen=pairs)
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
                "objective": objective,
                **({"pairs": pairs["counts"], "pairs_hash": pairs["content_hash"]} if pairs else {}),
            },
        )
        if send:  # the command line runs it in its own process instead
            training_run_send_on_commit(run_id=run.pk)
    return run


def _total_steps(method: str, hyper: dict, objective: str, n_samples: int, pairs: dict | None) -> int:
    """Every stage's optimizer steps together, as the trainer will count them (an SFT run's are set when
    it starts, as they always were)."""
    if objective == "sft":
        return hyper["max_steps"] or 0
    config = trainer_config(hyper, method=method, output_dir="")
    sft = config.total_steps_for(n_samples) if objective != "preference" else 0
    return sft + (config.total_steps_for(len(pairs["train"])) if pairs is not None else 0)


def trainer_config(hyper: dict, **platform) -> TrainConfig:
    """The trainer's settings from a run's hyper-parameters (less the run's own) and the platform's."""
    return TrainConfig.from_dict({**{k: v for k, v in hyper.items() if k not in RUN_SETTINGS}, **platform})


def _objective_metrics(objective: str, pairs: dict | None) -> dict:
    """What the run records of its objective from the start: the pairs it froze (counts and hash)."""
    if pairs is None:
        return {"objective": objective}
    return {"objective": objective, "preference": {**pairs["counts"], "content_hash": pairs["content_hash"]}}


TRAINING_RUN_EXECUTE = "training.tasks.training_run_execute"  # by name: the tasks module sits above


def training_run_send_on_commit(*, run_id: int) -> None:
    task_send_on_commit(TRAINING_RUN_EXECUTE, run_id, queue=settings.HANDOVER_TRAINING_QUEUE)
