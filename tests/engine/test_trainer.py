"""The trainer on a tiny CPU model: it learns, stops on request, resumes, and freeze trains what it says."""

import pytest
import torch
from safetensors.torch import load_file

from training.engine.inference import Drafter
from training.engine.metrics import evaluate
from training.engine.trainer import TrainConfig, latest_checkpoint, train

CAPITALS = [
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Egypt", "Cairo"),
    ("Peru", "Lima"),
    ("Kenya", "Nairobi"),
    ("Chile", "Santiago"),
    ("Norway", "Oslo"),
    ("Cuba", "Havana"),
    ("Greece", "Athens"),
    ("Poland", "Warsaw"),
]
ZH_CAPITALS = [
    ("中国", "北京"),
    ("日本", "东京"),
    ("法国", "巴黎"),
    ("英国", "伦敦"),
    ("德国", "柏林"),
    ("俄罗斯", "莫斯科"),
    ("韩国", "首尔"),
    ("泰国", "曼谷"),
    ("埃及", "开罗"),
    ("希腊", "雅典"),
    ("古巴", "哈瓦那"),
    ("秘鲁", "利马"),
]
TASK = [{"input": f"What is the capital of {c}?", "output": a} for c, a in CAPITALS] + [
    {"input": f"{c}的首都是哪里？", "output": a} for c, a in ZH_CAPITALS
]


def config(tmp_path, **overrides) -> TrainConfig:
    # a high learning rate and no warm-up: a hidden-64 model learns the task in a few dozen steps
    values = {
        "output_dir": str(tmp_path),
        "learning_rate": 1e-2,
        "batch_size": 8,
        "warmup_ratio": 0.0,
        "max_steps": 6,
        "max_seq_len": 64,
        "device": "cpu",
    }
    return TrainConfig(**(values | overrides))


@pytest.fixture(scope="module")
def trained(small_model_dir, tmp_path_factory):
    progress = []
    result = train(
        config(tmp_path_factory.mktemp("lora-run"), max_steps=45),
        small_model_dir,
        TASK,
        on_progress=lambda *args: progress.append(args),
    )
    return result, progress


def test_loss_goes_down(trained):
    result, _ = trained

    assert result.steps == 45 and not result.stopped_early
    assert len(result.loss_curve) == 45
    assert result.final_loss < result.loss_curve[0] / 10


def test_progress_is_reported_every_step(trained):
    result, progress = trained

    assert [p[0] for p in progress] == list(range(1, 46))
    step, total, loss, lr, tokens_per_s, eta = progress[-1]
    assert (total, loss, eta) == (45, result.final_loss, 0.0)
    assert lr > 0 and tokens_per_s > 0
    assert progress[0][3] == pytest.approx(1e-2)  # cosine from the peak, no warm-up asked for
    assert result.tokens_seen > 0


def test_the_model_measurably_learns_the_task_through_the_real_generate_path(trained, small_model_dir):
    # given the base model and the same base with the trained LoRA adapter
    result, _ = trained
    drafter = Drafter(small_model_dir, device=torch.device("cpu"))
    prompts, references = [s["input"] for s in TASK], [s["output"] for s in TASK]
    base = evaluate([d.text for d in drafter.draft(prompts, max_new_tokens=8)], references)

    # when the adapter drafts the same prompts
    drafter.load_adapter("candidate", result.model_dir)
    drafter.use_adapter("candidate")
    tuned = evaluate([d.text for d in drafter.draft(prompts, max_new_tokens=8)], references)

    # then it answers (English and Chinese alike) far better than the base model
    assert base["exact_match"] == 0.0 and base["rouge_l"] < 0.1
    assert tuned["exact_match"] >= 0.8
    assert tuned["rouge_l"] >= base["rouge_l"] + 0.7


def test_stop_takes_effect_within_a_step_and_leaves_a_usable_checkpoint(small_model_dir, tmp_path):
    # given a run asked to stop once its third step is reported
    steps = []
    result = train(
        config(tmp_path, max_steps=50),
        small_model_dir,
        TASK,
        on_progress=lambda step, *_: steps.append(step),
        should_stop=lambda: len(steps) >= 3,
    )

    # then no fourth step ran, and the checkpoint holds an adapter that drafts
    assert result.stopped_early and result.steps == 3 and steps == [1, 2, 3]
    assert result.checkpoint_dir == latest_checkpoint(tmp_path)
    assert (result.checkpoint_dir / "state.pt").exists()
    assert result.model_dir == result.checkpoint_dir / "model"
    drafter = Drafter(small_model_dir, device=torch.device("cpu"))
    drafter.load_adapter("stopped", result.model_dir)
    drafter.use_adapter("stopped")
    assert drafter.draft(["What is the capital of Peru?"], max_new_tokens=4)[0].num_tokens >= 1


def test_resume_continues_at_the_saved_step_and_ends_as_an_uninterrupted_run(small_model_dir, tmp_path):
    # given an uninterrupted run (dropout on, gradient accumulation, more than one epoch)
    settings = {"max_steps": 8, "batch_size": 6, "grad_accum": 2, "lora_dropout": 0.1}
    straight = train(config(tmp_path / "straight", **settings), small_model_dir, TASK)

    # when the same run is stopped after step 3 and resumed from its checkpoint
    first = train(config(tmp_path / "split", **settings), small_model_dir, TASK, should_stop=stop_after(3))
    seen = []
    resumed = train(
        config(tmp_path / "split", **settings),
        small_model_dir,
        TASK,
        resume_from=first.checkpoint_dir,
        on_progress=lambda step, *_: seen.append(step),
    )

    # then it starts at step 4, and ends with the same losses and the same adapter weights
    assert first.steps == 3 and seen == [4, 5, 6, 7, 8] and resumed.steps == 8
    assert resumed.loss_curve == pytest.approx(straight.loss_curve, rel=1e-5)
    a = load_file(straight.model_dir / "adapter_model.safetensors")
    b = load_file(resumed.model_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("changed", [{"batch_size": 4}, {"mask_history": False}])
def test_resume_refuses_a_changed_data_order_or_labels(small_model_dir, tmp_path, changed):
    first = train(config(tmp_path, max_steps=5), small_model_dir, TASK, should_stop=stop_after(1))

    with pytest.raises(ValueError, match=next(iter(changed))):
        train(
            config(tmp_path, max_steps=5, **changed),
            small_model_dir,
            TASK,
            resume_from=first.checkpoint_dir,
        )


def test_freeze_trains_only_the_last_layers(small_model_dir, tmp_path):
    # given a two-layer model trained with method freeze, last 1 layer
    result = train(config(tmp_path, method="freeze", freeze_trainable_layers=1), small_model_dir, TASK)

    # then the saved full model differs from the base in layer 1 only
    before = load_file(small_model_dir / "model.safetensors")
    after = load_file(result.model_dir / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("model.layers.1.") for k in changed)
    assert {k for k in before if k.startswith("model.layers.1.")} == changed
    # and it is a model directory Drafter loads as a base model
    assert Drafter(result.model_dir, device=torch.device("cpu")).draft(["hi"], max_new_tokens=2)


def test_full_fine_tuning_changes_every_layer(small_model_dir, tmp_path):
    result = train(config(tmp_path, method="full", max_steps=3), small_model_dir, TASK)

    before = load_file(small_model_dir / "model.safetensors")
    after = load_file(result.model_dir / "model.safetensors")
    assert all(not torch.equal(before[k], after[k]) for k in before if "layers" in k and "weight" in k)


def stop_after(n: int):
    """should_stop that says yes once n steps are done, counted by how often it was asked."""
    asked = iter(range(10**6))
    return lambda: next(asked) >= n
