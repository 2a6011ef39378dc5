"""Checkpoints: run_dir/checkpoints/step_N/ with the policy (a Hugging Face folder `rlvr eval` loads),
optimiser, critic, RNG states and loop state. Written to a temporary folder, then renamed, so a
kill at any moment leaves only complete checkpoints; `latest_checkpoint` picks the newest one.
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
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step}"
    tmp = ckpt_root / f".tmp_step_{step}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    _unwrap(policy).save_pretrained(tmp / "policy")
    tokenizer.save_pretrained(tmp / "policy")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if critic is not None:
        _unwrap(critic).save_pretrained(tmp / "critic")
        torch.save(critic_optimizer.state_dict(), tmp / "critic_optimizer.pt")
    torch.save({"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()},
               tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(dict(state, step=step)) + "\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)  # atomic on one filesystem: a checkpoint exists whole or not at all
    ckpts = sorted(ckpt_root.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    for old in ckpts[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
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
