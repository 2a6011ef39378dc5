"""Checkpoints: run_dir/checkpoints/step_N/ with the policy (a Hugging Face folder `rlvr eval` loads),
optimiser, critic, RNG states and loop state. Written to a temporary folder, then renamed, so a
kill at any moment leaves only complete checkpoints; `latest_checkpoint` picks the newest one.

Every rank calls `save_checkpoint`. A sharded (FSDP) run also writes `sharded/` with each rank's
shards of the model and optimiser through torch.distributed.checkpoint (resumed shard by shard,
exactly), while `policy/` always holds the whole model, gathered on rank 0.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def save_checkpoint(run_dir: Path, step: int, policy, tokenizer, optimizer, state: dict, critic=None,
                    critic_optimizer=None, keep: int = 2) -> Path:
    from rlvr import dist

    ckpt_root = run_dir / "checkpoints"
    final = ckpt_root / f"step_{step}"
    tmp = ckpt_root / f".tmp_step_{step}"
    main = dist.is_main()
    if main:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    dist.barrier()
    sharded = dist.is_sharded(policy)
    for name, model, opt in (("policy", policy, optimizer), ("critic", critic, critic_optimizer)):
        if model is None:
            continue
        whole = dist.full_state_dict(model)  # a collective when sharded
        if main:
            _unwrap(model).save_pretrained(tmp / name, state_dict=whole)
            if sharded is False:
                torch.save(opt.state_dict(), tmp / f"{'optimizer' if name == 'policy' else 'critic_optimizer'}.pt")
        if sharded:
            import torch.distributed.checkpoint as dcp
            from torch.distributed.checkpoint.state_dict import get_state_dict

            msd, osd = get_state_dict(model, opt)
            dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(tmp / "sharded" / name))
    if main:
        tokenizer.save_pretrained(tmp / "policy")
        torch.save({"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()},
                   tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(dict(state, step=step, sharded=sharded)) + "\n")
    dist.barrier()
    if main:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)  # atomic on one filesystem: a checkpoint exists whole or not at all
        ckpts = sorted(ckpt_root.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
        for old in ckpts[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = [p for p in (run_dir / "checkpoints").glob("step_*") if (p / "state.json").exists()]
    return max(ckpts, key=lambda p: int(p.name.split("_")[1])) if ckpts else None


def load_checkpoint_into(ckpt: Path, policy, optimizer, critic=None, critic_optimizer=None) -> dict:
    from safetensors.torch import load_file

    def load_weights(model, folder: Path):
        files = sorted(folder.glob("*.safetensors"))
        sd = {}
        for f in files:
            sd.update(load_file(f))
        missing, unexpected = _unwrap(model).load_state_dict(sd, strict=False)
        bad = [k for k in missing if "lm_head" not in k]  # tied embeddings are saved once
        if bad or unexpected:
            raise RuntimeError(f"checkpoint {folder} does not match the model: missing {bad[:3]}, unexpected {unexpected[:3]}")

    from rlvr import dist
    from rlvr.errors import UserError

    saved_sharded = (ckpt / "sharded").exists()
    if saved_sharded != dist.is_sharded(policy):
        raise UserError(f"{ckpt} was saved by a {'sharded (strategy=fsdp)' if saved_sharded else 'ddp/single-process'} "
                        f"run; resume it with the same strategy")
    if saved_sharded:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        for name, model, opt in (("policy", policy, optimizer), ("critic", critic, critic_optimizer)):
            if model is None:
                continue
            msd, osd = get_state_dict(model, opt)
            sd = {"model": msd, "optim": osd}
            dcp.load(sd, checkpoint_id=str(ckpt / "sharded" / name))
            set_state_dict(model, opt, model_state_dict=sd["model"], optim_state_dict=sd["optim"])
    else:
        load_weights(policy, ckpt / "policy")
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=False))
        if critic is not None:
            load_weights(critic, ckpt / "critic")
            critic_optimizer.load_state_dict(torch.load(ckpt / "critic_optimizer.pt", weights_only=False))
    rng = torch.load(ckpt / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    return json.loads((ckpt / "state.json").read_text())
