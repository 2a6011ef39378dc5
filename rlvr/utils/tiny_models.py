"""Tiny, offline Hugging Face models for tests and benchmarks: a character tokenizer with a chat
template and a randomly initialised `Qwen2ForCausalLM` (the architecture of Qwen2.5-Math), saved as a
normal model folder that `AutoModelForCausalLM` / `AutoTokenizer` load by path.

Nothing here is special-cased anywhere else: code that runs on these folders runs on a real model path.
"""

from __future__ import annotations

import json
from pathlib import Path

# <pad>, <bos>, <eos>, <unk>, then printable ASCII and newline: 100 symbols.
SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHARS = [chr(c) for c in range(32, 127)] + ["\n"]

# A minimal chat template: the user turn becomes "Q: ...\nA: " (system turns, if any, go first).
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n"
    "{% elif m['role'] == 'user' %}Q: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}A: {{ m['content'] }}<eos>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}A: {% endif %}"
)


def make_char_tokenizer(chat_template: str | None = CHAT_TEMPLATE):
    """A character-level fast tokenizer (byte-level BPE with no merges) over printable ASCII + newline.

    Byte-level (each character stored in GPT-2's byte-to-unicode form, like Qwen's vocab) so that
    `AutoTokenizer`, which builds `Qwen2Tokenizer` for any folder whose config says `qwen2`, loads it
    with the same ids: a plain character vocab would lose its spaces there. One token per character;
    `<bos>` is not added automatically (the chat template decides what a prompt contains).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_to_unicode = bytes_to_unicode()
    symbols = [byte_to_unicode[ord(c)] for c in CHARS]
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + symbols)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def make_tiny_model_dir(
    path: str | Path,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int = 128,
    max_position_embeddings: int = 1024,
    seed: int = 0,
) -> Path:
    """Save a random-init Qwen2ForCausalLM + char tokenizer to `path` and return the path."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    tokenizer = make_char_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads or num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "rlvr_tiny.json").write_text(json.dumps({"seed": seed, "kind": "random-init test model"}) + "\n")
    return path
