"""Training in two CPU processes (torchrun, gloo) on the small tiny model: the same curve as one process
with the same global batch, FSDP for full fine-tuning, cancel and resume, and children that never
outlive the process that started them.

Tolerance: with dropout off, a 2-process loss curve equals the 1-process one to 1e-4 relative (what
differs is only the order float32 sums are taken in; measured differences are about 1e-6).
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
import torch
from safetensors.torch import load_file

from tests.engine.test_trainer import TASK, config
from training.engine.inference import Drafter
from training.engine.launch import TrainingProcessError, train_in_processes
from training.engine.trainer import latest_checkpoint, train

CURVE_RTOL = 1e-4


def assert_same_weights(a_dir, b_dir, name):
    """Each tensor within 1e-4 of its own norm: Adam divides by the gradient's running size, so where a
    gradient is near zero a last-bit difference moves single elements visibly, never the tensor."""
    a, b = load_file(a_dir / name), load_file(b_dir / name)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.linalg.norm(a[key] - b[key]) <= 1e-4 * torch.linalg.norm(a[key]), key


def test_two_processes_learn_what_one_does_with_the_same_global_batch(small_model_dir, tmp_path):
    # given one process with batch 8, two with 4 each, and two with 2 each accumulating 2 micro-batches
    # (with gradient checkpointing, which recomputes activations and must not change the numbers)
    settings = {"max_steps": 8, "lora_dropout": 0.0}
    one = train(config(tmp_path / "one", batch_size=8, **settings), small_model_dir, TASK)
    progress = []
    two = train_in_processes(
        config(tmp_path / "two", batch_size=4, num_processes=2, **settings),
        small_model_dir,
        TASK,
        on_progress=lambda *p: progress.append(p),
    )
    accumulated = train_in_processes(
        config(
            tmp_path / "acc",
            batch_size=2,
            grad_accum=2,
            num_processes=2,
            gradient_checkpointing=True,
            **settings,
        ),
        small_model_dir,
        TASK,
    )

    # then every step's loss (the mean over the global batch's answer tokens) and the adapter agree
    assert two.loss_curve == pytest.approx(one.loss_curve, rel=CURVE_RTOL)
    assert accumulated.loss_curve == pytest.approx(one.loss_curve, rel=CURVE_RTOL)
    assert_same_weights(one.model_dir, two.model_dir, "adapter_model.safetensors")
    assert_same_weights(one.model_dir, accumulated.model_dir, "adapter_model.safetensors")
    # and rank 0 reported every step, with the tokens of both processes counted
    assert [p[0] for p in progress] == list(range(1, 9)) and progress[-1][2] == two.final_loss
    assert two.tokens_seen == one.tokens_seen


def test_full_fine_tuning_shards_with_fsdp_and_saves_the_whole_model(small_model_dir, tmp_path):
    settings = {"method": "full", "max_steps": 5}
    one = train(config(tmp_path / "one", batch_size=8, **settings), small_model_dir, TASK)

    two = train_in_processes(
        config(tmp_path / "two", batch_size=4, num_processes=2, **settings), small_model_dir, TASK
    )

    assert two.loss_curve == pytest.approx(one.loss_curve, rel=CURVE_RTOL)
    # the gathered weights are whole (not one rank's shard) and equal the one-process model's
    assert_same_weights(one.model_dir, two.model_dir, "model.safetensors")
    assert Drafter(two.model_dir, device=torch.device("cpu")).draft(["hi"], max_new_tokens=2)


def test_a_cancelled_two_process_run_resumes_and_ends_as_an_uninterrupted_one(small_model_dir, tmp_path):
    # given an uninterrupted 2-process run with dropout (each rank its own masks) and evaluation
    settings = {"max_steps": 200, "batch_size": 4, "num_processes": 2, "lora_dropout": 0.1, "eval_every": 25}
    evals = TASK[::5]
    straight = train_in_processes(
        config(tmp_path / "straight", **settings), small_model_dir, TASK, eval_samples=evals
    )

    # when the same run is cancelled once it has reported three steps
    seen = []
    first = train_in_processes(
        config(tmp_path / "split", **settings),
        small_model_dir,
        TASK,
        eval_samples=evals,
        on_progress=lambda step, *_: seen.append(step),
        should_stop=lambda: len(seen) >= 3,
    )

    # then both ranks stopped at one step and left one checkpoint
    assert first.stopped_early and 3 <= first.steps < 200
    assert first.checkpoint_dir == latest_checkpoint(tmp_path / "split")
    assert (first.checkpoint_dir / "rng-rank-1.pt").exists()

    # and resumed from it, it ends with the same losses, evaluations, best step and adapter
    resumed = train_in_processes(
        config(tmp_path / "split", **settings),
        small_model_dir,
        TASK,
        eval_samples=evals,
        resume_from=first.checkpoint_dir,
    )
    assert resumed.steps == 200 and not resumed.stopped_early
    assert resumed.loss_curve == pytest.approx(straight.loss_curve, rel=CURVE_RTOL)
    assert [s for s, _ in resumed.eval_curve] == [s for s, _ in straight.eval_curve]
    assert resumed.best_step == straight.best_step
    assert resumed.model_dir.name == f"best-{straight.best_step:06d}"
    assert_same_weights(straight.model_dir, resumed.model_dir, "adapter_model.safetensors")


def test_a_rank_s_error_reaches_the_caller(small_model_dir, tmp_path):
    bad = config(tmp_path, batch_size=4, num_processes=2, lora_target=["no_such_module"])

    with pytest.raises(TrainingProcessError, match="rank 0.*no_such_module"):
        train_in_processes(bad, small_model_dir, TASK)


def test_the_training_processes_die_with_the_process_that_started_them(small_model_dir, tmp_path):
    # given a process that trains a long run in two processes, and has reported a step
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(os.getcwd())!r})
        from tests.engine.test_trainer import TASK
        from training.engine.config import TrainConfig
        from training.engine.launch import train_in_processes
        config = TrainConfig(output_dir={str(tmp_path)!r}, max_steps=100000, batch_size=4,
                             num_processes=2, max_seq_len=64, device="cpu")
        train_in_processes(config, {str(small_model_dir)!r}, TASK)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "HF_HUB_OFFLINE": "1"})
    progress = tmp_path / "launch" / "progress.jsonl"
    try:
        deadline = time.monotonic() + 120
        while not (progress.exists() and progress.read_text().count("\n") >= 2):
            assert time.monotonic() < deadline and parent.poll() is None, "the run never reported"
            time.sleep(0.2)
        children = psutil.Process(parent.pid).children(recursive=True)
        assert len(children) == 3  # the torchrun agent and its two ranks

        # when it is killed outright, with no chance to clean up
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()

        # then the agent and both ranks are gone within seconds, and nothing writes any more
        _, alive = psutil.wait_procs(children, timeout=15)
        assert alive == []
        size = progress.stat().st_size
        time.sleep(1.0)
        assert progress.stat().st_size == size
    finally:
        if parent.poll() is None:
            parent.kill()
        for child in psutil.Process().children(recursive=True):
            child.kill()
