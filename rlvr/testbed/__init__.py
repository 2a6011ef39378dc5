"""The embedded testbed: a synthetic math world (world.py) and a tiny Qwen2 base model pre-trained on
it (build.py), committed under assets/ and loadable like any Hugging Face model folder.

`--model testbed` anywhere in rlvr resolves to `model_path()`; nothing else in rlvr knows it is
running the testbed.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"


def model_path() -> Path:
    """The committed base model (a Hugging Face folder: config, safetensors, tokenizer)."""
    return ASSETS / "model"


def resolve_model(name_or_path: str | Path) -> Path:
    """'testbed' -> the committed model folder; anything else is taken as a path."""
    return model_path() if str(name_or_path) == "testbed" else Path(name_or_path)
