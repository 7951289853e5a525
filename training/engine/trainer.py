"""Supervised fine-tuning (LoRA, freeze, full) in a plain torch loop: config → data → model → loop.

No Hugging Face Trainer: the loop below is all there is, so what it does per step is visible and cheap.
Output layout under `config.output_dir`:

    model/                 the result: a peft adapter (lora) or a full model directory (freeze, full)
    checkpoint-000040/     every `checkpoint_every` steps and when stopped: model/, state.pt, config.json
"""

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from .config import METHODS, TrainConfig, latest_checkpoint  # noqa: F401 - the trainer's public API
from .data import IGNORE_INDEX, collate, encode_sample, length_grouped_batches
from .device import pick_device

ProgressCallback = Callable[[int, int, float, float, float, float], None]


@dataclass
class TrainResult:
    model_dir: Path  # the adapter (lora) or full model directory to deploy or evaluate
    steps: int
    total_steps: int
    final_loss: float | None
    loss_curve: list[float] = field(default_factory=list)  # one mean answer-token loss per step
    tokens_seen: int = 0  # real (non-padding) tokens fed forward
    stopped_early: bool = False
    checkpoint_dir: Path | None = None  # the last checkpoint written, if any


def train(
    config: TrainConfig,
    model_dir: str | Path,
    train_samples: Sequence[Mapping],
    *,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume_from: str | Path | None = None,
) -> TrainResult:
    """Fine-tune the model in `model_dir` on `train_samples` (dicts as `encode_sample` reads them: a
    conversation's `messages`, `system`, `tools` and the reply's `output`, or a single turn's `input`).

    `on_progress(step, total_steps, loss, lr, tokens_per_s, eta_s)` is called after every optimizer step.
    `should_stop()` is asked before every step; when it says True the run saves a checkpoint and returns
    with `stopped_early`. `resume_from` (a checkpoint directory) continues at its step with the same data
    order, optimizer, schedule and random state, so the run ends where an uninterrupted one would.
    """
    # config ---------------------------------------------------------------------------------------
    device = torch.device(config.device) if config.device else pick_device()
    autocast_bf16 = config.bf16 and device.type == "cuda"
    torch.manual_seed(config.seed)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    # data -----------------------------------------------------------------------------------------
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = [
        encode_sample(
            tokenizer,
            s,
            max_seq_len=config.max_seq_len,
            prompt_template=config.prompt_template,
            system_prompt=config.system_prompt,
            mask_history=config.mask_history,
        )
        for s in train_samples
    ]
    if not examples:
        raise ValueError("no training samples")
    lengths = [len(e) for e in examples]
    batches_per_epoch = math.ceil(len(examples) / config.batch_size)
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * batches_per_epoch / config.grad_accum))
    epoch_batches: dict[int, list[list[int]]] = {}

    def micro_batch(index: int) -> dict[str, torch.Tensor]:
        # The index-th batch of an endless stream of epochs: a step's data depends on the step alone,
        # which is what lets a resumed run see the same order without saving a loader.
        epoch, offset = divmod(index, batches_per_epoch)
        if epoch not in epoch_batches:
            epoch_batches.clear()
            epoch_batches[epoch] = length_grouped_batches(
                lengths, config.batch_size, seed=config.seed, epoch=epoch
            )
        return collate([examples[i] for i in epoch_batches[epoch][offset]], pad_id)

    # model ----------------------------------------------------------------------------------------
    checkpoint = Path(resume_from) if resume_from else None
    if checkpoint is not None:
        _check_resumable(checkpoint, config)
    model = _load_model(config, model_dir, checkpoint, device, autocast_bf16)
    model.train()

    # optimizer ------------------------------------------------------------------------------------
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)  # no decay on norms and biases
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
        fused=device.type == "cuda",
    )
    warmup_steps = math.ceil(config.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(warmup_steps, total_steps))

    step, tokens_seen, loss_curve = 0, 0, []
    if checkpoint is not None:
        step, tokens_seen, loss_curve = _load_state(checkpoint, optimizer, scheduler)

    # loop -----------------------------------------------------------------------------------------
    stopped = False
    start_step, start_time, run_tokens = step, time.perf_counter(), 0
    while step < total_steps:
        if should_stop is not None and should_stop():
            stopped = True
            break
        batches = [micro_batch(step * config.grad_accum + k) for k in range(config.grad_accum)]
        # Normalise by the answer tokens of the whole step, so accumulation equals one big batch.
        n_targets = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in batches)
        step_loss = 0.0
        for batch in batches:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
                loss = _answer_loss_sum(model, batch, device) / max(n_targets, 1)
            loss.backward()
            step_loss += loss.item()
            run_tokens += int(batch["attention_mask"].sum())
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss_curve.append(step_loss)

        if on_progress is not None:
            elapsed = time.perf_counter() - start_time
            done = step - start_step
            eta = elapsed / done * (total_steps - step)
            on_progress(step, total_steps, step_loss, lr, run_tokens / max(elapsed, 1e-9), eta)
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps:
            checkpoint = _save_checkpoint(
                output_dir,
                model,
                tokenizer,
                optimizer,
                scheduler,
                config,
                step,
                tokens_seen + run_tokens,
                loss_curve,
            )
    tokens_seen += run_tokens

    # result ---------------------------------------------------------------------------------------
    if stopped:
        checkpoint = _save_checkpoint(
            output_dir, model, tokenizer, optimizer, scheduler, config, step, tokens_seen, loss_curve
        )
        result_dir = checkpoint / "model"
    else:
        result_dir = _save_model(model, tokenizer, config, output_dir / "model")
    return TrainResult(
        model_dir=result_dir,
        steps=step,
        total_steps=total_steps,
        final_loss=loss_curve[-1] if loss_curve else None,
        loss_curve=loss_curve,
        tokens_seen=tokens_seen,
        stopped_early=stopped,
        checkpoint_dir=checkpoint,
    )


# Model ------------------------------------------------------------------------------------------------


def _load_model(config: TrainConfig, model_dir, checkpoint: Path | None, device, autocast_bf16: bool):
    full_weights = config.method != "lora"
    # freeze/full resume from the checkpoint's own full weights; lora re-attaches its adapter below.
    source = checkpoint / "model" if checkpoint is not None and full_weights else model_dir
    # LoRA trains small fp32 adapters over a frozen base, so the base may sit in bf16; freeze/full keep
    # fp32 master weights and let autocast run the matmuls in bf16.
    dtype = torch.bfloat16 if autocast_bf16 and not full_weights else torch.float32
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device)
    model.config.use_cache = False
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    if config.method == "lora":
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_target,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
        if checkpoint is not None:
            from safetensors.torch import load_file

            set_peft_model_state_dict(model, load_file(checkpoint / "model" / "adapter_model.safetensors"))
    elif config.method == "freeze":
        layers = _decoder_layers(model)
        n = config.freeze_trainable_layers
        if not 1 <= n <= len(layers):
            raise ValueError(f"freeze_trainable_layers must be between 1 and {len(layers)}")
        model.requires_grad_(False)
        for layer in layers[-n:]:
            layer.requires_grad_(True)
    return model


def _decoder_layers(model) -> torch.nn.ModuleList:
    """The stack of transformer blocks, found by its length rather than by an architecture's name for it."""
    n = model.config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise ValueError("cannot find the decoder layers of this model")


# Transformers' own forward computes logits at every position; these configs change logits after the
# output projection, so for them we use that forward instead of projecting the answer positions only.
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def _answer_loss_sum(model, batch: dict[str, torch.Tensor], device) -> torch.Tensor:
    """Summed cross-entropy over the answer tokens of a right-padded batch.

    No attention mask is passed: with padding only on the right, the causal mask alone keeps every real
    token from seeing a pad, and SDPA can take its fused causal path instead of a materialised mask.
    The vocabulary projection, the largest matmul of a small model, runs only where there is a label.
    """
    input_ids = batch["input_ids"].to(device, non_blocking=True)
    targets = batch["labels"][:, 1:].to(device, non_blocking=True)
    keep = targets != IGNORE_INDEX
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if any(getattr(base.config, name, None) for name in _LOGIT_POSTPROCESSING):
        logits = model(input_ids=input_ids).logits[:, :-1][keep]
    else:
        hidden = base.get_decoder()(input_ids=input_ids).last_hidden_state
        logits = base.get_output_embeddings()(hidden[:, :-1][keep])
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum")


def _warmup_cosine(warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


# Checkpoints ------------------------------------------------------------------------------------------


def _save_model(model, tokenizer, config: TrainConfig, directory: Path) -> Path:
    """A peft adapter directory (lora) or a full model directory with its tokenizer (freeze, full)."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if config.method != "lora":
        tokenizer.save_pretrained(tmp)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def _save_checkpoint(output_dir: Path, model, tokenizer, optimizer, scheduler, config, step, tokens, curve):
    """Everything a resumed run needs, written to a temporary name and renamed, so a kill mid-write never
    leaves a checkpoint that looks complete."""
    final = output_dir / f"checkpoint-{step:06d}"
    tmp = output_dir / f".checkpoint-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _save_model(model, tokenizer, config, tmp / "model")
    rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    state = {
        "step": step,
        "tokens_seen": tokens,
        "loss_curve": curve,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng,
    }
    torch.save(state, tmp / "state.pt")
    (tmp / "config.json").write_text(json.dumps(asdict(config), indent=2))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def _check_resumable(checkpoint: Path, config: TrainConfig) -> None:
    saved = json.loads((checkpoint / "config.json").read_text())
    defaults = {f.name: f.default for f in fields(TrainConfig)}  # for keys older checkpoints lack
    # These decide the weights' shape, which data each step sees and what it is trained on; a change
    # would silently mix runs.
    for name in (
        "method",
        "lora_r",
        "lora_target",
        "freeze_trainable_layers",
        "seed",
        "batch_size",
        "grad_accum",
        "max_seq_len",
        "mask_history",
    ):
        was = saved.get(name, defaults[name])
        if was != getattr(config, name):
            raise ValueError(f"cannot resume: {name} was {was!r}, now {getattr(config, name)!r}")


def _load_state(checkpoint: Path, optimizer, scheduler) -> tuple[int, int, list[float]]:
    state = torch.load(checkpoint / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    # Restored last, after the model was built (LoRA init draws random numbers), so dropout continues
    # exactly as it would have without the interruption.
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state["step"], state["tokens_seen"], list(state["loss_curve"])
