"""The trainer's view of the processes it runs in: rank and world, DDP or FSDP around the loss, the few
collectives a step needs, and gathering what a checkpoint saves.

One process is the world of size 1 and none of this does anything there, so a single-process run is the
plain loop it always was. Under torchrun (`engine.launch`) every rank runs the same loop on its slice of
each global batch; rank 0 alone writes files and reports.
"""

import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Cluster:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def broadcast_flags(self, *flags: bool) -> tuple[bool, ...]:
        """Rank 0's flags on every rank: decisions (stop, a new best) are taken once and shared, so all
        ranks leave the loop at the same step and run the same collectives."""
        if not self.distributed:
            return flags
        tensor = torch.tensor([int(f) for f in flags], dtype=torch.int64, device=_comm_device())
        dist.broadcast(tensor, src=0)
        return tuple(bool(v) for v in tensor.tolist())

    def all_sum(self, *values: float) -> tuple[float, ...]:
        if not self.distributed:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device())
        dist.all_reduce(tensor)
        return tuple(tensor.tolist())

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def current() -> Cluster:
    """The process group this process belongs to, or the world of one."""
    if dist.is_available() and dist.is_initialized():
        return Cluster(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return Cluster()


def init_from_env(device_type: str) -> Cluster:
    """Join the group torchrun describes in the environment: NCCL between GPUs, gloo between CPU processes."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return current()


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def rank_device(cluster: Cluster, device_type: str) -> torch.device:
    return torch.device("cuda", cluster.local_rank) if device_type == "cuda" else torch.device(device_type)


# Wrapping ---------------------------------------------------------------------------------------------


def uses_fsdp(method: str, cluster: Cluster) -> bool:
    """LoRA replicates (DDP): the frozen base is read-only and the adapters are small, so sharding buys
    nothing. freeze/full shard weights, gradients and optimizer state (FSDP), the memory that full
    fine-tuning runs out of first."""
    return cluster.distributed and method != "lora"


def wrap(loss_module: torch.nn.Module, layers, *, method: str, cluster: Cluster, device: torch.device):
    """The module a step calls: DDP or FSDP around the loss module (whose forward runs the model, so the
    wrapper's hooks see every use of the weights), or the module itself in one process."""
    if not cluster.distributed:
        return loss_module
    if uses_fsdp(method, cluster):
        from torch.distributed.fsdp import fully_shard

        for layer in layers:  # one unit per block: each is gathered only while it computes
            fully_shard(layer)
        fully_shard(loss_module)
        return loss_module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(loss_module, device_ids=[device.index] if device.type == "cuda" else None)


def unwrapped(module: torch.nn.Module) -> torch.nn.Module:
    return getattr(module, "module", module)  # DDP keeps the module it wraps as .module; FSDP2 is in place


def gradient_sync(module: torch.nn.Module, enabled: bool):
    """Accumulation steps that are not the last skip the gradient all-reduce (the last one carries it)."""
    if hasattr(module, "no_sync"):  # DDP
        return contextlib.nullcontext() if enabled else module.no_sync()
    if hasattr(module, "set_requires_gradient_sync"):  # FSDP2
        module.set_requires_gradient_sync(enabled)
    return contextlib.nullcontext()


# What a checkpoint saves ------------------------------------------------------------------------------


def _full_options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **kw)


def full_model_state(model: torch.nn.Module, *, sharded: bool) -> dict | None:
    """The whole model's weights on rank 0 (None elsewhere) when FSDP shards them; None when not sharded,
    and the caller saves the module as it is. Every rank must call it: the gather is collective."""
    if not sharded:
        return None
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(model, options=_full_options())
    # A tied output head is the embedding itself; the gather lists it under both names, and
    # save_pretrained, given a state dict, would write it twice. Loading ties it again.
    for tied in getattr(model, "all_tied_weights_keys", None) or {}:
        state.pop(tied, None)
    return state


def optimizer_state(module, optimizer, *, sharded: bool) -> dict:
    """The optimizer's state to save: its own state_dict, or under FSDP the gathered one keyed by
    parameter names (on rank 0). Collective under FSDP."""
    if not sharded:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(module, optimizer, options=_full_options())


def optimizer_state_load(module, optimizer, state: dict, *, sharded: bool) -> None:
    if not sharded:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(module, optimizer, state, options=_full_options())


# Process lifetime -------------------------------------------------------------------------------------


def die_with_parent(parent_pid: int | None) -> None:
    """End this process when `parent_pid` does, however it dies (SIGKILL included), so a lost worker never
    leaves ranks training into the run's directory while another worker resumes it.

    Linux: the kernel's parent-death signal. Elsewhere: a thread that watches for being re-parented.
    """
    if parent_pid is None:
        return
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # it died before the signal was armed
            os._exit(1)
        return

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()
