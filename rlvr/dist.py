"""Rank helpers for torchrun (DDP). Single-process runs need no setup: every helper degrades."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def print0(*args, **kw) -> None:
    if is_main():
        print(*args, **kw)


def init_from_env() -> str:
    """Initialise the process group when launched by torchrun; returns the device to use."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not is_dist():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return "cpu"


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_reduce_sums(values: dict[str, float]) -> dict[str, float]:
    """Sum each value over ranks (callers reduce sums and counts, then divide)."""
    if not is_dist() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.cpu().tolist()))


def all_reduce_max(value: int) -> int:
    """The largest of each rank's value (e.g. a count every rank must then agree on)."""
    if not is_dist():
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def _comm_device() -> str:
    """Where collective tensors must live: NCCL only moves GPU tensors, gloo CPU ones."""
    return f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"


def all_gather_objects(obj):
    if not is_dist():
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def shutdown() -> None:
    if is_dist():
        dist.destroy_process_group()


# --- FSDP2 ----------------------------------------------------------------------------------------

def fsdp_shard(model, mixed_bf16: bool = False):
    """Shard a transformers causal LM with FSDP2 (`fully_shard`): each decoder layer is its own unit
    (its parameters are gathered just before it runs and freed after), then the root (embeddings,
    final norm, head). Parameters become DTensors; the optimiser must be built after this."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if mixed_bf16 else None
    kw = {"mp_policy": mp} if mp is not None else {}
    inner = getattr(model, "model", None) or getattr(model, getattr(model, "base_model_prefix", ""), None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError(f"fsdp: cannot find the decoder layers of {type(model).__name__} (expected model.model.layers)")
    for layer in layers:
        fully_shard(layer, **kw)
    fully_shard(model, **kw)
    return model


def is_sharded(model) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def full_state_dict(model) -> dict:
    """The whole model's state dict as plain CPU tensors: gathered from the shards when sharded (a
    collective: every rank must call it; only rank 0 receives the tensors), else the module's own."""
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    m = model.module if hasattr(model, "module") else model
    return m.state_dict()
