"""Training tokens/s: our trainer against TRL's SFTTrainer, same model, data, batch size and sequence length;
and with --processes N, our trainer in N processes (torchrun) against one, with the same global batch.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/train_throughput.py [--model DIR] [--steps 30] [--warmup 5]
        [--repeat 2] [--batch-size 8] [--max-seq-len 256] [--method lora|full] [--bf16] [--peak-tflops 989]
        [--processes 2] [--skip-trl]

With --processes N each of the N processes takes batch-size / N samples a step (DDP for lora, FSDP for
full), so a step learns from the same samples as the one process does; the timing comes from rank 0's
step times (`launch/progress.jsonl`), the process start-up and model loading excluded as they are for
the others. On a CPU the cores are shared out: N processes get cores / N threads each.

TRL runs with its defaults except what must match ours (batch size, max length, steps, learning rate, the
LoRA settings) or what would add I/O to the timing (no checkpoints, no logging); bf16 follows --bf16
because TRL's default (bf16 on) refuses to start on a CPU. TRL's defaults include gradient
checkpointing, so it is also run once with that turned off, as a stricter baseline.

Tokens/s counts real (non-padding) tokens: timed steps × batch size × the mean token count of a sample,
the same formula on both sides, so padding one side processes but the other skips does not count as
work. The first --warmup steps of each side are not timed. With --peak-tflops (the accelerator's dense
peak for the dtype used) it also prints MFU = tokens/s × k·N / peak, k = 4 for LoRA (forward 2N,
backward to the activations 2N, no weight gradients for the frozen base) and 6 for full fine-tuning.
"""

import argparse
import contextlib
import io
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from datasets import disable_progress_bars
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.engine.data import encode_sample  # noqa: E402
from training.engine.launch import launch_dir, train_in_processes  # noqa: E402
from training.engine.tiny_model import build_tiny_model, default_corpus  # noqa: E402
from training.engine.trainer import TrainConfig, train  # noqa: E402


def make_samples(n: int) -> list[dict]:
    corpus = default_corpus()
    # 1-3 sentences per side: the lengths vary as support tickets and their answers do
    return [
        {
            "input": " ".join(corpus[(i + k * 7) % len(corpus)] for k in range(1 + i % 3)),
            "output": " ".join(corpus[(i * 5 + k * 3 + 1) % len(corpus)] for k in range(1 + (i // 3) % 3)),
        }
        for i in range(n)
    ]


def timed_seconds(step_times: list[float], warmup: int) -> float:
    """Wall time from the end of the last warm-up step to the end of the last step."""
    return step_times[-1] - step_times[warmup - 1]


def ours_config(args, out: Path, processes: int = 1) -> TrainConfig:
    return TrainConfig(
        output_dir=str(out),
        method=args.method,
        learning_rate=args.lr,
        max_steps=args.warmup + args.steps,
        batch_size=args.batch_size // processes,
        num_processes=processes,
        max_seq_len=args.max_seq_len,
        mixed_precision="bf16" if args.bf16 else "no",
    )


def run_ours(args, model_dir: Path, samples: list[dict], out: Path) -> float:
    times: list[float] = []
    train(
        ours_config(args, out), model_dir, samples, on_progress=lambda *_: times.append(time.perf_counter())
    )
    return timed_seconds(times, args.warmup)


def run_ours_in_processes(args, model_dir: Path, samples: list[dict], out: Path) -> float:
    config = ours_config(args, out, args.processes)
    train_in_processes(config, model_dir, samples)
    with open(launch_dir(config) / "progress.jsonl") as f:
        times = [event["at"] for event in map(json.loads, f) if event["event"] == "step"]
    return timed_seconds(times, args.warmup)


class _StepClock(TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def trl_seconds(args, model_dir: Path, out: Path, dataset, trainer_class, config_class, **config) -> float:
    """Timed seconds of a TRL trainer (`trainer_class`, configured by `config_class`) on `dataset`, with
    what must match ours set alike (batch, max length, steps, learning rate, the LoRA settings) and no
    checkpoints or logging; `config` adds or overrides settings. Shared by bench/dpo_throughput.py."""
    from peft import LoraConfig

    trainer_args = config_class(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        max_length=args.max_seq_len,
        max_steps=args.warmup + args.steps,
        learning_rate=args.lr,
        bf16=args.bf16,
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
        **config,
    )
    peft_config = None
    if args.method == "lora":
        peft_config = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    clock = _StepClock()
    trainer = trainer_class(
        model=model,
        args=trainer_args,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=peft_config,
        callbacks=[clock],
    )
    with contextlib.redirect_stdout(io.StringIO()):  # Trainer prints its own summary dict
        trainer.train()
    return timed_seconds(clock.times, args.warmup)


def run_trl(args, model_dir: Path, samples: list[dict], out: Path, **overrides) -> float:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    dataset = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": s["input"]}],
                "completion": [{"role": "assistant", "content": s["output"]}],
            }
            for s in samples
        ]
    )
    return trl_seconds(args, model_dir, out, dataset, SFTTrainer, SFTConfig, **overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="local HF model directory (default: build the tiny model)")
    parser.add_argument("--n", type=int, default=512, help="training samples")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per side")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-len", type=int, default=256)
    parser.add_argument("--method", choices=["lora", "full"], default="lora")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on both sides (CUDA only)")
    parser.add_argument("--peak-tflops", type=float, help="accelerator dense peak, to print MFU")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; each side's fastest counts")
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument(
        "--processes", type=int, default=0, help="also ours in N processes (same global batch)"
    )
    args = parser.parse_args()
    if args.processes and args.batch_size % args.processes:
        parser.error("--batch-size must divide by --processes (each process takes its share of a step)")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    disable_progress_bars()
    warnings.filterwarnings("ignore")
    logging.getLogger("peft").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or build_tiny_model(Path(tmp) / "tiny")
        samples = make_samples(args.n)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        lengths = [len(encode_sample(tokenizer, s, max_seq_len=args.max_seq_len)) for s in samples]
        mean_tokens = sum(lengths) / len(lengths)
        n_params = AutoModelForCausalLM.from_pretrained(model_dir).num_parameters()
        work = args.steps * args.batch_size * mean_tokens
        print(
            f"model: {n_params / 1e6:.2f}M parameters, {args.method}, device "
            f"{'cuda' if torch.cuda.is_available() else 'cpu'}, {torch.get_num_threads()} threads"
        )
        print(
            f"data: {args.n} samples, mean {mean_tokens:.1f} tokens (max {max(lengths)}), batch "
            f"{args.batch_size}, max_seq_len {args.max_seq_len}, {args.steps} timed steps after {args.warmup}"
        )

        sides = {"ours": lambda out: run_ours(args, model_dir, samples, out)}
        if args.processes:
            sides[f"ours, {args.processes} processes"] = lambda out: run_ours_in_processes(
                args, model_dir, samples, out
            )
        if not args.skip_trl:
            sides["trl (defaults)"] = lambda out: run_trl(args, model_dir, samples, out)
            sides["trl (no grad ckpt)"] = lambda out: run_trl(
                args, model_dir, samples, out, gradient_checkpointing=False
            )
        # Rounds alternate the sides and each keeps its fastest round: on a shared machine the least
        # disturbed run is the closest to the code's own speed.
        best = {name: float("inf") for name in sides}
        for round_ in range(args.repeat):
            for i, (name, run) in enumerate(sides.items()):
                best[name] = min(best[name], run(Path(tmp) / f"{round_}-{i}"))
        results = {name: work / seconds for name, seconds in best.items()}

        k = 4 if args.method == "lora" else 6
        for name, tokens_per_s in results.items():
            line = f"{name:>20}: {tokens_per_s:10.0f} tokens/s"
            if name.startswith("ours,"):
                line += f"   this / ours in 1 process = {tokens_per_s / results['ours']:.2f}x"
            elif name != "ours":
                line += f"   ours / this = {results['ours'] / tokens_per_s:.2f}x"
            if args.peak_tflops:
                line += f"   MFU {tokens_per_s * k * n_params / (args.peak_tflops * 1e12):.1%}"
            print(line)


if __name__ == "__main__":
    main()
