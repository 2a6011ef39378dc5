"""Loading a policy: a local Hugging Face folder (or `testbed`), never a hub download."""

from __future__ import annotations

from pathlib import Path

from rlvr.errors import UserError


def resolve_model_path(name_or_path: str | Path) -> Path:
    from rlvr.testbed import resolve_model

    path = resolve_model(name_or_path)
    if not path.exists():
        raise UserError(f"model path {path} does not exist; give a local Hugging Face model folder "
                        "(config.json, *.safetensors, tokenizer files) or `testbed`")
    if not (path / "config.json").exists():
        raise UserError(f"{path} is not a model folder: it has no config.json")
    return path


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model_and_tokenizer(name_or_path: str | Path, dtype: str = "auto", device: str = "auto"):
    """(model in eval mode, tokenizer with left padding). dtype auto: fp32 on CPU, bf16 on GPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(name_or_path)
    device = default_device() if device == "auto" else device
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=True).to(device).eval()
    return model, tok
