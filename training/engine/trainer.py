"""Fine-tuning (LoRA, QLoRA, freeze, full) in a plain torch loop: config → data → model → loop.

What the loop learns is `config.objective`: supervised fine-tuning on samples' answers (here), or DPO on
chosen/rejected pairs (`engine.preference`, which gives the loop its data and its loss module).

No Hugging Face Trainer: the loop below is all there is, so what it does per step is visible and cheap.
The same loop runs in one process or in each of several under torchrun (`engine.launch`): every rank
takes its slice of each step's samples, DDP (lora) or FSDP (freeze, full) keeps the weights in step, and
rank 0 reports and writes. What lands under `config.output_dir` is described in `engine.checkpoints`.
"""

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from . import distributed, precision
from .checkpoints import (
    LoopState,
    best_dir,
    best_forget_after,
    best_prune,
    check_resumable,
    load_state,
    restore_rng,
    save_checkpoint,
    save_model,
)
from .config import METHODS, TrainConfig, latest_checkpoint  # noqa: F401 - the trainer's public API
from .data import IGNORE_INDEX, collate, encode_sample, length_grouped_batches
from .device import pick_device
from .losses import AnswerLoss

ProgressCallback = Callable[[int, int, float, float, float, float], None]
EvalCallback = Callable[[int, float, int, float], None]


@dataclass
class TrainResult:
    model_dir: Path  # the adapter (lora) or full model directory to deploy or evaluate
    steps: int
    total_steps: int
    final_loss: float | None
    loss_curve: list[float] = field(default_factory=list)  # one mean answer-token loss per step
    tokens_seen: int = 0  # real (non-padding) tokens fed forward, all processes together
    stopped_early: bool = False  # should_stop asked it to stop (a cancel), not early stopping
    checkpoint_dir: Path | None = None  # the last checkpoint written, if any
    eval_curve: list[list] = field(default_factory=list)  # [step, eval loss] per evaluation
    best_step: int | None = None  # the step whose model is model_dir, when evaluating
    best_eval_loss: float | None = None
    early_stopped: bool = False  # eval loss stopped improving
    stop_reason: str = ""  # why the loop ended, in words for the run page


def train(
    config: TrainConfig,
    model_dir: str | Path,
    train_samples: Sequence[Mapping],
    *,
    eval_samples: Sequence[Mapping] = (),
    on_progress: ProgressCallback | None = None,
    on_eval: EvalCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume_from: str | Path | None = None,
) -> TrainResult:
    """Fine-tune the model in `model_dir` on `train_samples` (dicts as `encode_sample` reads them: a
    conversation's `messages`, `system`, `tools` and the reply's `output`, or a single turn's `input`;
    with objective dpo, pairs: the same conversation with `chosen` and `rejected` instead of `output`).

    `on_progress(step, total_steps, loss, lr, tokens_per_s, eta_s)` is called after every optimizer step.
    `should_stop()` is asked before every step; when it says True the run saves a checkpoint and returns
    with `stopped_early`. `resume_from` (a checkpoint directory) continues at its step with the same data
    order, optimizer, schedule and random state, so the run ends where an uninterrupted one would.
    With `config.eval_every`, the loss on `eval_samples` is measured every that many steps and at the
    end, reported to `on_eval(step, eval_loss, best_step, best_eval_loss)`, the best model kept as the
    result, and with `early_stopping_patience` the loop stops once it has not improved that many times.
    Under torchrun every rank calls this; only rank 0's callbacks are used.
    """
    # config ---------------------------------------------------------------------------------------
    cluster = distributed.current()
    if cluster.world != config.num_processes:
        raise ValueError(
            f"num_processes is {config.num_processes} but this process is one of {cluster.world}: "
            "several processes are started by engine.launch.train_in_processes"
        )
    device = _device(config, cluster)
    dtype = precision.autocast_dtype(config, device)
    precision.qlora_check(config, device)
    scaler = precision.grad_scaler(dtype)
    torch.manual_seed(config.seed)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    # data -----------------------------------------------------------------------------------------
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def encode(samples):
        return [
            encode_sample(
                tokenizer,
                s,
                max_seq_len=config.max_seq_len,
                prompt_template=config.prompt_template,
                system_prompt=config.system_prompt,
                mask_history=config.mask_history,
            )
            for s in samples
        ]

    if config.objective == "dpo":
        from .preference import PairData

        data = PairData.encode(train_samples, encode, pad_id)
        eval_data = PairData.encode(eval_samples, encode, pad_id)
    else:
        data, eval_data = AnswerData(encode(train_samples), pad_id), AnswerData(encode(eval_samples), pad_id)
    if not data.lengths:
        raise ValueError("no training samples")
    if config.eval_every and not eval_data.lengths:
        raise ValueError("eval_every is set but there are no eval samples to measure the loss on")
    lengths = data.lengths
    # Each step's samples are one length-grouped batch of the global size, whatever its split into
    # processes and accumulated micro-batches: so 2 processes × 4 and 1 × 8 learn from the same samples.
    steps_per_epoch = math.ceil(len(lengths) / config.global_batch)
    total_steps = config.total_steps_for(len(lengths))
    epoch_batches: dict[int, list[list[int]]] = {}

    def step_samples(step: int) -> list[int]:
        # The step-th batch of an endless stream of epochs: a step's data depends on the step alone,
        # which is what lets a resumed run see the same order without saving a loader.
        epoch, offset = divmod(step, steps_per_epoch)
        if epoch not in epoch_batches:
            epoch_batches.clear()
            epoch_batches[epoch] = length_grouped_batches(
                lengths, config.global_batch, seed=config.seed, epoch=epoch
            )
        return epoch_batches[epoch][offset]

    def micro_batches(ids: list[int]) -> list[tuple[tuple[torch.Tensor, ...], bool]]:
        """This rank's rows of each micro-batch of a step. A rank that the short last batch of an epoch
        leaves without a row gets a stand-in row whose loss counts zero: every rank must run the same
        forwards and backwards, since each one syncs with the others."""
        chunk = config.batch_size * cluster.world
        out = []
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            mine = part[cluster.rank :: cluster.world]
            out.append((data.batch(mine or part[:1]), bool(mine)))
        return out

    # model ----------------------------------------------------------------------------------------
    checkpoint = Path(resume_from) if resume_from else None
    if checkpoint is not None:
        check_resumable(checkpoint, config)
    model = _load_model(config, model_dir, checkpoint, device, dtype)
    if config.objective == "dpo":
        from .preference import PreferenceLoss, reference_log_probs

        # The reference is the model as it is now, before any step: computed once (a resumed run reads
        # what its first attempt wrote), so no second copy of the model is ever held.
        reference_log_probs(model, [data, eval_data], config, cluster, device, dtype, resumed=checkpoint)
        loss_module = PreferenceLoss(model, beta=config.beta, label_smoothing=config.label_smoothing)
    else:
        loss_module = AnswerLoss(model)
    model.train()
    sharded = distributed.uses_fsdp(config.method, cluster)
    layers = _decoder_layers(model) if sharded else []
    step_module = distributed.wrap(loss_module, layers, method=config.method, cluster=cluster, device=device)
    if cluster.rank > 0:
        torch.manual_seed(config.seed + cluster.rank)  # its own dropout masks; rank 0 keeps the seed's

    # optimizer ------------------------------------------------------------------------------------
    decay, no_decay = [], []
    for p in step_module.parameters():  # after wrapping: FSDP replaces them with their shards
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)  # no decay on norms and biases
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
        fused=device.type == "cuda" and not sharded,
    )
    warmup_steps = math.ceil(config.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(warmup_steps, total_steps))

    loop = LoopState()
    if checkpoint is not None:
        state, loop = load_state(checkpoint)
        distributed.optimizer_state_load(step_module, optimizer, state["optimizer"], sharded=sharded)
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(checkpoint, state, cluster)
        if cluster.is_main:
            best_forget_after(output_dir, loop.step)
    checkpointed_best = loop.best_step  # the best step the latest checkpoint knows

    def checkpoint_now() -> Path:
        return save_checkpoint(
            output_dir,
            cluster=cluster,
            model=model,
            model_state=distributed.full_model_state(model, sharded=sharded),
            tokenizer=tokenizer,
            optimizer_state=distributed.optimizer_state(step_module, optimizer, sharded=sharded),
            scheduler=scheduler,
            config=config,
            loop=loop,
        )

    def evaluate() -> bool:
        """Measure the eval loss, keep the model when it is the best yet; True when it is time to stop."""
        eval_loss = _eval_loss(loss_module, eval_data, config, cluster, device, dtype)
        best = loop.best_eval_loss
        (improved,) = cluster.broadcast_flags(
            best is None or eval_loss < best - config.early_stopping_min_delta
        )
        loop.eval_curve.append([loop.step, eval_loss])
        if improved:
            loop.best_eval_loss, loop.best_step, loop.evals_without_improvement = eval_loss, loop.step, 0
            weights = distributed.full_model_state(model, sharded=sharded)
            if cluster.is_main:
                save_model(model, tokenizer, config, best_dir(output_dir, loop.step), state_dict=weights)
                best_prune(output_dir, keep={loop.step}, keep_from=checkpointed_best)
        else:
            loop.evals_without_improvement += 1
        if on_eval is not None and cluster.is_main:
            on_eval(loop.step, eval_loss, loop.best_step, loop.best_eval_loss)
        patience = config.early_stopping_patience
        return bool(patience) and loop.evals_without_improvement >= patience

    # loop -----------------------------------------------------------------------------------------
    stopped = early = False
    tokens_before = loop.tokens_seen
    start_step, start_time, run_tokens = loop.step, time.perf_counter(), 0
    trainable = [p for p in step_module.parameters() if p.requires_grad]
    while loop.step < total_steps:
        (stopped,) = cluster.broadcast_flags(cluster.is_main and should_stop is not None and should_stop())
        if stopped:
            break
        ids = step_samples(loop.step)
        # Normalise by the answer tokens (DPO: the pairs) of the whole global step, so that accumulation
        # and processes add up to one big batch: every rank knows every sample's count, so this needs no
        # message.
        n_targets = sum(data.weight(i) for i in ids)
        micro = micro_batches(ids)
        step_loss = 0.0
        for k, (batch, counts) in enumerate(micro):
            with distributed.gradient_sync(step_module, enabled=k == len(micro) - 1):
                with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                    loss = step_module(*_on_device(batch, device)) / max(n_targets, 1)
                    if not counts:
                        loss = loss * 0.0
                # DDP and FSDP average gradients over ranks; each rank's loss is its part of the global
                # sum, so scaling by the world turns their average back into that sum's gradient.
                backward = loss * cluster.world if cluster.distributed else loss
                (scaler.scale(backward) if scaler is not None else backward).backward()
            step_loss += loss.item()
        run_tokens += sum(lengths[i] for i in ids)
        (step_loss,) = cluster.all_sum(step_loss)
        if scaler is not None:
            scaler.unscale_(optimizer)
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loop.step += 1
        loop.loss_curve.append(step_loss)
        loop.tokens_seen = tokens_before + run_tokens

        if on_progress is not None and cluster.is_main:
            elapsed = time.perf_counter() - start_time
            done = loop.step - start_step
            eta = elapsed / done * (total_steps - loop.step)
            on_progress(loop.step, total_steps, step_loss, lr, run_tokens / max(elapsed, 1e-9), eta)
        if config.eval_every and (loop.step % config.eval_every == 0 or loop.step == total_steps):
            early = evaluate()
            if early:
                break
        if config.checkpoint_every and loop.step % config.checkpoint_every == 0 and loop.step < total_steps:
            checkpoint = checkpoint_now()
            checkpointed_best = loop.best_step

    # result ---------------------------------------------------------------------------------------
    if stopped:
        checkpoint = checkpoint_now()
        result_dir, reason = checkpoint / "model", f"stopped on request after step {loop.step}"
    elif config.eval_every:
        result_dir = best_dir(output_dir, loop.best_step)
        if cluster.is_main:
            best_prune(output_dir, keep={loop.best_step})
        best = f"the best eval loss, {loop.best_eval_loss:.4f}, was at step {loop.best_step}"
        reason = (
            f"early stopping at step {loop.step}: the eval loss did not improve for "
            f"{config.early_stopping_patience} evaluations; {best}"
            if early
            else f"trained all {total_steps} steps; {best}"
        )
    else:
        weights = distributed.full_model_state(model, sharded=sharded)
        result_dir = output_dir / "model"
        if cluster.is_main:
            save_model(model, tokenizer, config, result_dir, state_dict=weights)
        reason = f"trained all {total_steps} steps"
    cluster.barrier()
    return TrainResult(
        model_dir=result_dir,
        steps=loop.step,
        total_steps=total_steps,
        final_loss=loop.loss_curve[-1] if loop.loss_curve else None,
        loss_curve=loop.loss_curve,
        tokens_seen=loop.tokens_seen,
        stopped_early=stopped,
        checkpoint_dir=checkpoint,
        eval_curve=loop.eval_curve,
        best_step=loop.best_step,
        best_eval_loss=loop.best_eval_loss,
        early_stopped=early,
        stop_reason=reason,
    )


def _device(config: TrainConfig, cluster: distributed.Cluster) -> torch.device:
    if cluster.distributed:  # the launcher chose: one GPU per rank, or the CPU for all of them
        kind = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
        return distributed.rank_device(cluster, kind)
    return torch.device(config.device) if config.device else pick_device()


def _n_targets(example) -> int:
    return sum(1 for label in example.labels[1:] if label != IGNORE_INDEX)


class AnswerData:
    """What the loop reads of a split for supervised fine-tuning: each example's length, a batch as
    AnswerLoss's arguments, and each example's weight in the mean loss (its answer tokens). The
    preference objective's PairData has the same three."""

    def __init__(self, examples, pad_id: int) -> None:
        self.examples, self.pad_id = examples, pad_id
        self.lengths = [len(e) for e in examples]

    def batch(self, ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = collate([self.examples[i] for i in ids], self.pad_id)
        return batch["input_ids"], batch["labels"][:, 1:]

    def weight(self, i: int) -> int:
        return _n_targets(self.examples[i])


def _on_device(batch: tuple[torch.Tensor, ...], device) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(device, non_blocking=True) for t in batch)


def _eval_loss(loss_module, data, config, cluster, device, dtype) -> float:
    """The mean loss over the eval split (dropout off): cross-entropy per answer token, or DPO's per pair;
    all ranks together: each takes every world-th batch; a rank short of one runs a stand-in, since
    under FSDP every forward gathers weights from all ranks."""
    order = sorted(range(len(data.lengths)), key=lambda i: data.lengths[i], reverse=True)
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    total, count = 0.0, 0
    loss_module.eval()
    with torch.no_grad():
        for j in range(math.ceil(len(batches) / cluster.world)):
            k = j * cluster.world + cluster.rank
            ids = batches[k] if k < len(batches) else batches[0]
            with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                loss_sum = loss_module(*_on_device(data.batch(ids), device))
            if k < len(batches):
                total += loss_sum.item()
                count += sum(data.weight(i) for i in ids)
    loss_module.train()
    total, count = cluster.all_sum(total, count)
    return total / max(count, 1)


# Model ------------------------------------------------------------------------------------------------


def _load_model(config: TrainConfig, model_dir, checkpoint: Path | None, device, dtype):
    full_weights = config.method != "lora"
    # freeze/full resume from the checkpoint's own full weights; lora re-attaches its adapter below.
    source = checkpoint / "model" if checkpoint is not None and full_weights else model_dir
    if config.qlora:
        from peft import prepare_model_for_kbit_training

        model = AutoModelForCausalLM.from_pretrained(
            source, quantization_config=precision.qlora_quantization(), device_map={"": device.index or 0}
        )
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=config.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    else:
        # LoRA trains small fp32 adapters over a frozen base, so the base may sit in the autocast dtype;
        # freeze/full keep fp32 master weights and let autocast run the matmuls in bf16/fp16.
        weights = dtype if dtype is not None and not full_weights else torch.float32
        model = AutoModelForCausalLM.from_pretrained(source, dtype=weights).to(device)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    if config.init_adapter and full_weights and checkpoint is None:
        from peft import PeftModel  # freeze/full train the merged weights (a resume has them already)

        model = PeftModel.from_pretrained(model, config.init_adapter).merge_and_unload()
        model.requires_grad_(True)  # peft froze the base it loaded the adapter onto

    if config.method == "lora":
        from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict

        if config.init_adapter:
            model = PeftModel.from_pretrained(model, config.init_adapter, is_trainable=True)
        else:
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


def _warmup_cosine(warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor
