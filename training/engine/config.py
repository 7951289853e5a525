"""Run settings and checkpoint lookup: the trainer's parts that need no torch (the web side imports them)."""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

METHODS = ("lora", "freeze", "full")
OBJECTIVES = ("sft", "dpo")  # what the loop learns: approved answers, or chosen over rejected of pairs
MIXED_PRECISION = ("no", "bf16", "fp16")


class UnsupportedSetting(ValueError):
    """A setting this machine cannot honour (fp16 or QLoRA without CUDA, more processes than GPUs), said
    in a person's words with the setting's name; the run fails with it as its reason."""


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
    batch_size: int = 8  # per process: a step sees batch_size × num_processes × grad_accum samples
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
    # no | bf16 (CUDA with bf16 support, or the CPU's autocast) | fp16 (CUDA only, with loss scaling)
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False  # trades compute for memory; worth it only on GPU with long texts
    # Processes that train together (torchrun): DDP for lora, FSDP for freeze/full; one per GPU on CUDA,
    # gloo processes on a CPU. 1 trains in the calling process, as before.
    num_processes: int = 1
    qlora: bool = False  # lora over a 4-bit (NF4) base through bitsandbytes; CUDA only
    # Eval loss on the run's eval split every N steps (0: never); the best model is the result.
    eval_every: int = 0
    early_stopping_patience: int = 0  # stop after this many evaluations without improvement (0: never)
    early_stopping_min_delta: float = 0.0  # an improvement must lower the eval loss by more than this
    checkpoint_every: int = 0  # 0: checkpoint only when stopped
    prompt_template: str = "{input}"  # used when the model has no chat template, as in Drafter
    system_prompt: str | None = None  # for samples without a system prompt of their own
    device: str | None = None  # None: the fastest available
    # sft: cross-entropy on the answers of samples; dpo: the DPO loss on pairs (`engine.preference`),
    # whose reference is the model as training starts (its log-probabilities are computed once, first).
    objective: str = "sft"
    beta: float = 0.1  # dpo: how far from the reference the policy may move (TRL's beta)
    label_smoothing: float = 0.0  # dpo: the chance a pair's label is wrong (conservative DPO); 0: off
    # A peft adapter the run starts from: lora trains it on (its own r and targets), freeze/full train
    # the base with it merged in. How a preference run starts from the deployed base + adapter.
    init_adapter: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        if self.batch_size < 1 or self.grad_accum < 1 or self.max_seq_len < 2:
            raise ValueError("batch_size, grad_accum must be positive and max_seq_len at least 2")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"mixed_precision must be one of {MIXED_PRECISION}, not {self.mixed_precision!r}"
            )
        if self.num_processes < 1:
            raise ValueError("num_processes must be at least 1")
        if self.qlora and self.method != "lora":
            raise ValueError(f"qlora trains a LoRA adapter over a 4-bit base; method is {self.method!r}")
        if self.eval_every < 0 or self.early_stopping_patience < 0:
            raise ValueError("eval_every and early_stopping_patience must not be negative")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, not {self.objective!r}")
        if not self.beta > 0 or not 0 <= self.label_smoothing < 0.5:
            raise ValueError("beta must be positive and label_smoothing in [0, 0.5)")
        if self.early_stopping_patience and not self.eval_every:
            raise ValueError("early_stopping_patience needs eval_every: stopping is decided on eval loss")

    @property
    def global_batch(self) -> int:
        """The samples one optimizer step learns from, whatever the split into processes and micro-batches."""
        return self.batch_size * self.num_processes * self.grad_accum

    def total_steps_for(self, n_items: int) -> int:
        """The optimizer steps of a run over `n_items` samples (or pairs): max_steps, else the epochs'."""
        return self.max_steps or max(1, math.ceil(self.epochs * math.ceil(n_items / self.global_batch)))

    @classmethod
    def from_dict(cls, values: Mapping) -> "TrainConfig":
        values = dict(values)
        # `bf16: true` is how runs launched before mixed_precision asked for bf16 autocast.
        if values.pop("bf16", False) and values.get("mixed_precision", "no") == "no":
            values["mixed_precision"] = "bf16"
        return cls(**values)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step under `output_dir`, or None: where a restarted run resumes."""
    found = sorted(Path(output_dir).glob("checkpoint-*/state.pt"))
    return found[-1].parent if found else None
