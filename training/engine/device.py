"""Choose where a model runs and in which precision, with no configuration needed."""

import torch


def pick_device() -> torch.device:
    """The fastest available accelerator: CUDA, then Apple MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on CUDA GPUs that support it (half the memory, same range as fp32); float32 elsewhere.

    float16 is not chosen anywhere: its narrow range overflows in un-tuned models, and CPU/MPS
    kernels for bfloat16 are slower than float32 or incomplete.
    """
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32
