"""DPO training tokens/s: our trainer (objective dpo) against TRL's DPOTrainer, same model, pairs, batch
size, sequence length, beta and steps.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/dpo_throughput.py [--model DIR] [--steps 20] [--warmup 3]
        [--repeat 2] [--batch-size 8] [--max-seq-len 256] [--method lora|full] [--bf16] [--skip-trl]

Ours computes the reference log-probabilities once before the first step (engine.preference), so the
timed steps run the policy alone. TRL runs twice: with its defaults (a reference forward every step: for
LoRA the adapter disabled, for full a second copy of the model; gradient checkpointing on), and with
`precompute_ref_log_probs=True` and gradient checkpointing off, the setting that matches ours and the
stricter baseline. Everything else that must match is set alike (batch, max length, steps, learning
rate, beta, LoRA r/alpha/dropout/targets); no checkpoints, no logging.

Tokens/s counts real tokens: timed steps × batch size × the mean token count of a pair (its chosen and
its rejected sequence, each prompt + reply, as our encoder counts them), the same formula on both sides.
The first --warmup steps of each side are not timed; each side keeps its fastest of --repeat rounds.
"""

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from datasets import disable_progress_bars
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train_throughput import timed_seconds, trl_seconds  # noqa: E402  (bench/ is the script's folder)

from training.engine.data import encode_sample  # noqa: E402
from training.engine.tiny_model import build_tiny_model, default_corpus  # noqa: E402
from training.engine.trainer import TrainConfig, train  # noqa: E402


def make_pairs(n: int) -> list[dict]:
    corpus = default_corpus()
    # a 1-3 sentence question; the chosen and rejected replies differ in text and in length
    return [
        {
            "messages": [
                {
                    "role": "user",
                    "content": " ".join(corpus[(i + k * 7) % len(corpus)] for k in range(1 + i % 3)),
                }
            ],
            "chosen": " ".join(corpus[(i * 5 + k * 3 + 1) % len(corpus)] for k in range(1 + (i // 3) % 3)),
            "rejected": " ".join(corpus[(i * 11 + k + 2) % len(corpus)] for k in range(1 + (i // 2) % 2)),
        }
        for i in range(n)
    ]


def run_ours(args, model_dir: Path, pairs: list[dict], out: Path) -> float:
    config = TrainConfig(
        output_dir=str(out),
        objective="dpo",
        beta=args.beta,
        method=args.method,
        learning_rate=args.lr,
        max_steps=args.warmup + args.steps,
        batch_size=args.batch_size,
        max_seq_len=args.max_seq_len,
        mixed_precision="bf16" if args.bf16 else "no",
    )
    times: list[float] = []
    train(config, model_dir, pairs, on_progress=lambda *_: times.append(time.perf_counter()))
    return timed_seconds(times, args.warmup)


def run_trl(args, model_dir: Path, pairs: list[dict], out: Path, **overrides) -> float:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    dataset = Dataset.from_list(
        [
            {
                "prompt": p["messages"],
                "chosen": [{"role": "assistant", "content": p["chosen"]}],
                "rejected": [{"role": "assistant", "content": p["rejected"]}],
            }
            for p in pairs
        ]
    )
    return trl_seconds(args, model_dir, out, dataset, DPOTrainer, DPOConfig, beta=args.beta, **overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="local HF model directory (default: build the tiny model)")
    parser.add_argument("--n", type=int, default=256, help="training pairs")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per side")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    parser.add_argument("--max-seq-len", type=int, default=256)
    parser.add_argument("--method", choices=["lora", "full"], default="lora")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on both sides (CUDA only)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; each side's fastest counts")
    parser.add_argument("--skip-trl", action="store_true")
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    disable_progress_bars()
    warnings.filterwarnings("ignore")
    logging.getLogger("peft").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or build_tiny_model(Path(tmp) / "tiny")
        pairs = make_pairs(args.n)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        lengths = [
            sum(
                len(encode_sample(tokenizer, {**p, "output": p[k]}, max_seq_len=args.max_seq_len))
                for k in ("chosen", "rejected")
            )
            for p in pairs
        ]
        mean_tokens = sum(lengths) / len(lengths)
        n_params = AutoModelForCausalLM.from_pretrained(model_dir).num_parameters()
        work = args.steps * args.batch_size * mean_tokens
        print(
            f"model: {n_params / 1e6:.2f}M parameters, {args.method}, device "
            f"{'cuda' if torch.cuda.is_available() else 'cpu'}, {torch.get_num_threads()} threads"
        )
        print(
            f"data: {args.n} pairs, mean {mean_tokens:.1f} tokens a pair (chosen + rejected), batch "
            f"{args.batch_size} pairs, max_seq_len {args.max_seq_len}, {args.steps} timed steps after "
            f"{args.warmup}, beta {args.beta}"
        )
        sides = {"ours": lambda out: run_ours(args, model_dir, pairs, out)}
        if not args.skip_trl:
            sides["trl (defaults)"] = lambda out: run_trl(args, model_dir, pairs, out)
            sides["trl (precomputed ref)"] = lambda out: run_trl(
                args, model_dir, pairs, out, precompute_ref_log_probs=True, gradient_checkpointing=False
            )
        best = {name: float("inf") for name in sides}
        for round_ in range(args.repeat):  # alternating sides; the least disturbed round counts
            for i, (name, run) in enumerate(sides.items()):
                best[name] = min(best[name], run(Path(tmp) / f"{round_}-{i}"))
        results = {name: work / seconds for name, seconds in best.items()}
        for name, tokens_per_s in results.items():
            line = f"{name:>22}: {tokens_per_s:10.0f} tokens/s"
            if name != "ours":
                line += f"   ours / this = {results['ours'] / tokens_per_s:.2f}x"
            print(line)


if __name__ == "__main__":
    main()
