"""Shared fixtures. Everything is built offline; no test downloads anything."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Path of a random-init Qwen2ForCausalLM (hidden 64, 2 layers) + char tokenizer with a chat
    template, saved as a Hugging Face folder (built once per test session)."""
    from rlvr.utils.tiny_models import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="session")
def tiny_model_and_tokenizer(tiny_model_dir):
    """(model, tokenizer) loaded by path from `tiny_model_dir`, model in eval mode, fp32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32").eval()
    return model, tok
