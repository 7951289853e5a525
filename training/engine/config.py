"""Run settings and checkpoint lookup: the trainer's parts that need no torch (the web side imports them)."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

METHODS = ("lora", "freeze", "full")


@dataclass
class TrainConfig:
    output_dir: str
    method: str = "lora"  # lora | freeze | full
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target: str | list[str] = "all-linear"  # every linear layer of the blocks (not the output head)
    freeze_trainable_layers: int = 2  # freeze: only the last N decoder layers learn
    learning_rate: float = 2e-4
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 8
    grad_accum: int = 1
    max_seq_len: int = 1024
    # Loss on the reply only (True), or on every assistant turn of a conversation (False), as
    # LLaMA-Factory's mask_history. Earlier turns are context by default: nobody reviewed them unless
    # the project lets people edit every assistant turn (runs default it to False there).
    mask_history: bool = True
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    bf16: bool = False  # CUDA only; ignored elsewhere
    gradient_checkpointing: bool = False  # trades compute for memory; worth it only on GPU with long texts
    checkpoint_every: int = 0  # 0: checkpoint only when stopped
    prompt_template: str = "{input}"  # used when the model has no chat template, as in Drafter
    system_prompt: str | None = None  # for samples without a system prompt of their own
    device: str | None = None  # None: the fastest available

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        if self.batch_size < 1 or self.grad_accum < 1 or self.max_seq_len < 2:
            raise ValueError("batch_size, grad_accum must be positive and max_seq_len at least 2")

    @classmethod
    def from_dict(cls, values: Mapping) -> "TrainConfig":
        return cls(**values)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step under `output_dir`, or None: where a restarted run resumes."""
    found = sorted(Path(output_dir).glob("checkpoint-*/state.pt"))
    return found[-1].parent if found else None
