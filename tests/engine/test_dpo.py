"""DPO in our trainer on the tiny model: it prefers chosen over rejected on pairs it never saw, takes its
reference from the model it starts from, and resumes exactly."""

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from training.engine.data import encode_sample
from training.engine.preference import REFERENCE_FILE
from training.engine.trainer import TrainConfig, train

COUNTRIES = ["France", "Japan", "Italy", "Spain", "Egypt", "Peru", "Kenya", "Chile", "Norway", "Cuba"]
HELD_OUT = ["Greece", "Poland", "Brazil", "India"]


def pairs(countries) -> list[dict]:
    # a preference that generalises: a helpful reply over a refusal, whatever the country
    return [
        {
            "messages": [{"role": "user", "content": f"Tell me about {c}."}],
            "chosen": f"Gladly: {c} is a lovely country to visit.",
            "rejected": "No. I will not answer that.",
        }
        for c in countries
    ]


def config(tmp_path, **overrides) -> TrainConfig:
    values = {
        "output_dir": str(tmp_path),
        "objective": "dpo",
        "beta": 0.1,
        "learning_rate": 5e-3,
        "batch_size": 4,
        "warmup_ratio": 0.0,
        "max_steps": 12,
        "max_seq_len": 64,
        "device": "cpu",
    }
    return TrainConfig(**(values | overrides))


def margins(model, tokenizer, rows) -> torch.Tensor:
    """log p(chosen) − log p(rejected) of each pair, by the model's own forward over the full sequence
    (logits at every position, log-softmax, the reply's tokens summed), independent of the trainer."""
    model.eval()
    out = []
    with torch.no_grad():
        for pair in rows:
            side = []
            for key in ("chosen", "rejected"):
                example = encode_sample(tokenizer, {**pair, "output": pair[key]}, max_seq_len=64)
                ids = torch.tensor([example.input_ids])
                logps = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
                targets = torch.tensor(example.labels[1:])
                keep = targets != -100
                side.append(logps[keep].gather(1, targets[keep, None]).sum().item())
            out.append(side[0] - side[1])
    return torch.tensor(out)


def test_dpo_raises_the_chosen_minus_rejected_margin_on_held_out_pairs(small_model_dir, tmp_path):
    # given the base model's margins on pairs it will never train on
    tokenizer = AutoTokenizer.from_pretrained(small_model_dir)
    base = AutoModelForCausalLM.from_pretrained(small_model_dir)
    before = margins(base, tokenizer, pairs(HELD_OUT))

    # when a LoRA DPO run trains on the other pairs
    result = train(config(tmp_path), small_model_dir, pairs(COUNTRIES))

    # then through the trained model's forward pass every held-out pair's margin has grown, clearly
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(small_model_dir), result.model_dir)
    after = margins(tuned, tokenizer, pairs(HELD_OUT))
    assert result.steps == 12 and result.loss_curve[-1] < result.loss_curve[0]
    assert (after > before + 1.0).all(), (before, after)
    assert (tmp_path / REFERENCE_FILE).exists()


def test_a_full_dpo_run_starting_from_an_adapter_uses_it_as_the_reference(small_model_dir, tmp_path):
    # given an adapter (the deployed model's) trained by DPO on the pairs, so it already prefers chosen
    adapter = train(config(tmp_path / "deployed"), small_model_dir, pairs(COUNTRIES)).model_dir

    # when a full fine-tuning DPO run starts from base + that adapter, for one step at a tiny rate
    result = train(
        config(tmp_path / "full", method="full", init_adapter=str(adapter), max_steps=1, learning_rate=1e-9),
        small_model_dir,
        pairs(COUNTRIES),
    )

    # then its first loss is log 2: the policy equals its reference, the deployed model, not the base
    assert result.loss_curve[0] == pytest.approx(0.6931, abs=1e-3)
    deployed = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(small_model_dir), adapter)
    tokenizer = AutoTokenizer.from_pretrained(small_model_dir)
    merged = AutoModelForCausalLM.from_pretrained(result.model_dir)
    assert torch.allclose(
        margins(merged, tokenizer, pairs(HELD_OUT)), margins(deployed, tokenizer, pairs(HELD_OUT)), atol=1e-3
    )


def test_resume_after_a_stop_ends_as_the_uninterrupted_run(small_model_dir, tmp_path):
    # given an uninterrupted DPO run (dropout on, accumulation, more than one epoch)
    settings = {"max_steps": 8, "batch_size": 3, "grad_accum": 2, "lora_dropout": 0.1}
    straight = train(config(tmp_path / "straight", **settings), small_model_dir, pairs(COUNTRIES))

    # when the same run is stopped after step 3 and resumed from its checkpoint
    steps = []
    first = train(
        config(tmp_path / "split", **settings),
        small_model_dir,
        pairs(COUNTRIES),
        on_progress=lambda step, *_: steps.append(step),
        should_stop=lambda: len(steps) >= 3,
    )
    resumed = train(
        config(tmp_path / "split", **settings),
        small_model_dir,
        pairs(COUNTRIES),
        resume_from=first.checkpoint_dir,
    )

    # then it continued at step 4 and ends with the same losses and the same adapter weights
    assert first.stopped_early and first.steps == 3
    assert resumed.loss_curve == pytest.approx(straight.loss_curve, abs=1e-6)
    a = load_file(straight.model_dir / "adapter_model.safetensors")
    b = load_file(resumed.model_dir / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_two_processes_train_dpo_as_one_does(small_model_dir, tmp_path, method):
    # given one process with batch 4 and two with 2 each (DDP for lora, FSDP for full), dropout off
    from training.engine.launch import train_in_processes

    settings = {"max_steps": 4, "lora_dropout": 0.0, "method": method}
    one = train(config(tmp_path / "one", batch_size=4, **settings), small_model_dir, pairs(COUNTRIES))

    # when the same DPO run trains in two processes
    two = train_in_processes(
        config(tmp_path / "two", batch_size=2, num_processes=2, **settings), small_model_dir, pairs(COUNTRIES)
    )

    # then both computed the same reference and follow the same loss curve
    assert two.steps == 4
    assert two.loss_curve == pytest.approx(one.loss_curve, rel=1e-4)
    ref_one = torch.load(tmp_path / "one" / REFERENCE_FILE)["reference"]
    ref_two = torch.load(tmp_path / "two" / REFERENCE_FILE)["reference"]
    assert all(torch.allclose(a, b) for a, b in zip(ref_one, ref_two, strict=True))
