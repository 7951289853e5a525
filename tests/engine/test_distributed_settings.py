"""The settings of training beyond one device on a machine without CUDA: what it can do runs, what it
cannot is refused before any weight is loaded, naming the setting and why."""

import pytest
import torch

from tests.engine.test_trainer import TASK, config
from training.engine.config import TrainConfig, UnsupportedSetting
from training.engine.launch import devices_check, train_in_processes
from training.engine.trainer import train

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a CPU-only machine refuses")


@pytest.mark.parametrize(
    ("setting", "named", "why"),
    [
        ({"mixed_precision": "fp16"}, "mixed_precision", "needs a CUDA GPU"),
        ({"qlora": True}, "qlora", "bitsandbytes' 4-bit matmuls are CUDA kernels"),
    ],
)
def test_a_cuda_only_setting_is_refused_on_the_cpu_with_its_reason(
    small_model_dir, tmp_path, setting, named, why
):
    with pytest.raises(UnsupportedSetting) as one_process:
        train(config(tmp_path / "one", **setting), small_model_dir, TASK)
    with pytest.raises(UnsupportedSetting) as two_processes:
        train_in_processes(config(tmp_path / "two", num_processes=2, **setting), small_model_dir, TASK)

    for error in (one_process.value, two_processes.value):
        assert str(error).startswith(f"{named}:") and why in str(error) and "cpu" in str(error)
    assert not (tmp_path / "two" / "launch").exists()  # refused before any process started


def test_more_processes_than_gpus_are_refused_naming_the_count(tmp_path):
    with pytest.raises(UnsupportedSetting, match=r"num_processes: 2 processes need as many GPUs; .* has 0"):
        devices_check(TrainConfig(output_dir=str(tmp_path), num_processes=2, device="cuda"))


def test_bf16_autocast_trains_on_the_cpu(small_model_dir, tmp_path):
    result = train(config(tmp_path, mixed_precision="bf16", max_steps=12), small_model_dir, TASK)

    assert result.final_loss < result.loss_curve[0] / 2


def test_one_process_refuses_to_pretend_to_be_several(small_model_dir, tmp_path):
    with pytest.raises(ValueError, match="train_in_processes"):
        train(config(tmp_path, num_processes=2), small_model_dir, TASK)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"mixed_precision": "fp8"}, "mixed_precision"),
        ({"num_processes": 0}, "num_processes"),
        ({"qlora": True, "method": "full"}, "qlora"),
        ({"early_stopping_patience": 3}, "early_stopping_patience needs eval_every"),
    ],
)
def test_settings_that_make_no_sense_together_are_refused(tmp_path, values, named):
    with pytest.raises(ValueError, match=named):
        TrainConfig(output_dir=str(tmp_path), **values)


def test_runs_launched_with_bf16_before_mixed_precision_keep_it(tmp_path):
    old = TrainConfig.from_dict({"output_dir": str(tmp_path), "bf16": True})
    off = TrainConfig.from_dict({"output_dir": str(tmp_path), "bf16": False})

    assert (old.mixed_precision, off.mixed_precision) == ("bf16", "no")
