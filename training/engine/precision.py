"""Which number formats a run may use on the device it got: mixed precision and QLoRA, checked before any
weight is loaded, so a setting the machine cannot honour fails with its name and the reason."""

import torch

from .config import TrainConfig, UnsupportedSetting


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The dtype autocast runs the matmuls in, or None for plain fp32."""
    wanted = config.mixed_precision
    if wanted == "no":
        return None
    if device.type == "cuda":
        if wanted == "bf16" and not torch.cuda.is_bf16_supported():
            raise UnsupportedSetting(
                "mixed_precision: bf16 needs a GPU with bfloat16 support (Ampere or newer), which "
                f"{torch.cuda.get_device_name(device)} is not; use fp16."
            )
        if wanted == "fp16" and config.num_processes > 1 and config.method != "lora":
            raise UnsupportedSetting(
                "mixed_precision: fp16 with freeze/full over several processes (FSDP) needs a sharded "
                "loss scaler this trainer does not have; use bf16."
            )
        return torch.bfloat16 if wanted == "bf16" else torch.float16
    if device.type == "cpu" and wanted == "bf16":
        return torch.bfloat16  # torch's CPU autocast: correct everywhere, fast only with AVX-512 BF16/AMX
    if wanted == "fp16":
        raise UnsupportedSetting(
            f"mixed_precision: fp16 needs a CUDA GPU (fp16 training depends on CUDA kernels and loss "
            f"scaling); this run trains on {device.type}. Use bf16 or no."
        )
    raise UnsupportedSetting(f"mixed_precision: {wanted} is not supported on {device.type}; use no.")


def grad_scaler(dtype: torch.dtype | None):
    """fp16's loss scaler (its range is too narrow for small gradients); bf16 and fp32 need none."""
    if dtype != torch.float16:
        return None
    return torch.amp.GradScaler("cuda")


def qlora_check(config: TrainConfig, device: torch.device) -> None:
    if not config.qlora:
        return
    if device.type != "cuda":
        raise UnsupportedSetting(
            "qlora: the 4-bit (NF4) base needs a CUDA GPU, because bitsandbytes' 4-bit matmuls are CUDA "
            f"kernels; this run trains on {device.type}. Train lora without qlora here."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UnsupportedSetting(
            "qlora: the bitsandbytes package is not installed on this gpu worker (pip install -e '.[gpu]')."
        ) from None


def qlora_quantization():
    """NF4 weights with double quantization, computing in bf16 where the GPU has it (QLoRA's recipe)."""
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )
