"""What a run leaves on disk: the model, checkpoints to resume from, and the best model by eval loss.

    model/                 the result without evaluation: a peft adapter (lora) or a full model directory
    best-000040/           with eval_every: the model of the step with the lowest eval loss (the result)
    checkpoint-000040/     every `checkpoint_every` steps and when stopped: model/, state.pt, config.json,
                           and rng-rank-N.pt for each rank but 0 of a run in several processes

Every directory is written under a temporary name and renamed, so a kill mid-write never leaves one that
looks complete. Rank 0 writes; the other ranks add their own random state to the checkpoint.
"""

import json
import random
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from .config import TrainConfig
from .distributed import Cluster


@dataclass
class LoopState:
    """Where the loop is: what a checkpoint restores besides weights, optimizer and schedule."""

    step: int = 0
    tokens_seen: int = 0
    loss_curve: list[float] = field(default_factory=list)
    eval_curve: list[list] = field(default_factory=list)  # [step, eval loss] per evaluation
    best_eval_loss: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0


def save_model(
    model, tokenizer, config: TrainConfig, directory: Path, state_dict: dict | None = None
) -> Path:
    """A peft adapter directory (lora) or a full model directory with its tokenizer (freeze, full).
    `state_dict`: the gathered weights of a sharded model, which the module itself no longer holds whole."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if state_dict is None:
        model.save_pretrained(tmp)
    else:
        model.save_pretrained(tmp, state_dict=state_dict)
    if config.method != "lora":
        tokenizer.save_pretrained(tmp)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def _rng_state() -> dict:
    rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _rng_restore(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save_checkpoint(
    output_dir: Path,
    *,
    cluster: Cluster,
    model,
    model_state: dict | None,
    tokenizer,
    optimizer_state: dict,
    scheduler,
    config: TrainConfig,
    loop: LoopState,
) -> Path:
    """Everything a resumed run needs. Every rank calls it (each saves its random state); rank 0 writes
    the rest once the others have, and renames."""
    final = output_dir / f"checkpoint-{loop.step:06d}"
    tmp = output_dir / f".checkpoint-{loop.step:06d}.tmp"
    if cluster.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    cluster.barrier()
    if not cluster.is_main:
        torch.save(_rng_state(), tmp / f"rng-rank-{cluster.rank}.pt")
    cluster.barrier()
    if cluster.is_main:
        save_model(model, tokenizer, config, tmp / "model", state_dict=model_state)
        state = {
            **asdict(loop),
            "optimizer": optimizer_state,
            "optimizer_layout": "full-by-name" if model_state is not None else "plain",
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(),
        }
        torch.save(state, tmp / "state.pt")
        (tmp / "config.json").write_text(json.dumps(asdict(config), indent=2))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    cluster.barrier()
    return final


# These decide the weights' shape, which data each step sees and what it is trained on; a change would
# silently mix runs. The process count is among them: it splits each step's samples between ranks, each
# with its own random state, and decides whether the optimizer's state is saved sharded or plain.
_MUST_MATCH = (
    "method",
    "lora_r",
    "lora_target",
    "freeze_trainable_layers",
    "seed",
    "batch_size",
    "grad_accum",
    "num_processes",
    "max_seq_len",
    "mask_history",
    "qlora",
    "objective",
    "init_adapter",
)


def check_resumable(checkpoint: Path, config: TrainConfig) -> None:
    saved = json.loads((checkpoint / "config.json").read_text())
    defaults = {f.name: f.default for f in fields(TrainConfig)}  # for keys older checkpoints lack
    for name in _MUST_MATCH:
        was = saved.get(name, defaults[name])
        if was != getattr(config, name):
            raise ValueError(f"cannot resume: {name} was {was!r}, now {getattr(config, name)!r}")


def load_state(checkpoint: Path) -> tuple[dict, LoopState]:
    """The saved state (optimizer, scheduler, random state) and where the loop was."""
    state = torch.load(checkpoint / "state.pt", weights_only=False)
    names = {f.name for f in fields(LoopState)}
    loop = LoopState(**{k: v for k, v in state.items() if k in names})
    loop.loss_curve, loop.eval_curve = list(loop.loss_curve), [list(e) for e in loop.eval_curve]
    return state, loop


def restore_rng(checkpoint: Path, state: dict, cluster: Cluster) -> None:
    """Each rank's random state as it was, restored last (LoRA init draws random numbers), so dropout
    continues exactly as it would have without the interruption."""
    if cluster.is_main:
        _rng_restore(state["rng"])
    else:
        _rng_restore(torch.load(checkpoint / f"rng-rank-{cluster.rank}.pt", weights_only=False))


# The best model by eval loss ----------------------------------------------------------------------------


def best_dir(output_dir: Path, step: int) -> Path:
    return output_dir / f"best-{step:06d}"


def _best_steps(output_dir: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in output_dir.glob("best-[0-9]*") if p.is_dir())


def best_prune(output_dir: Path, *, keep: set[int], keep_from: int | None = None) -> None:
    """Remove best models no resume can need: those not in `keep` and older than `keep_from` (the best
    step the latest checkpoint knows, which a resume from it may still make the result)."""
    for step in _best_steps(output_dir):
        if step not in keep and (keep_from is None or step < keep_from):
            shutil.rmtree(best_dir(output_dir, step), ignore_errors=True)


def best_forget_after(output_dir: Path, step: int) -> None:
    """On resume: best models written after the checkpoint belong to steps that will run again."""
    for found in _best_steps(output_dir):
        if found > step:
            shutil.rmtree(best_dir(output_dir, found), ignore_errors=True)
