"""Batched sampling with a KV cache: the one generation path for evaluation and training rollouts.

`generate(model, tokenizer, prompts, cfg)` left-pads a batch of prompts, prefills them once, then
decodes token by token from the KV cache, stopping when every sequence has emitted EOS or
`max_new_tokens` is reached. Sampling is temperature + top-p by inverse-CDF draws, with one
seeded random stream per sequence: a sequence's sample depends only on its seed and the model,
not on which other prompts share its batch or on what ran before (so an evaluation resumed after a
kill, or a training step re-run after a resume, draws the same tokens). temperature 0 is greedy.
The stream is counter-based (a hash of seed and position, `uniform_noise`), computed on the model's
device: the same draws on CPU and GPU, and no host round-trip per token.

Returned `logp` is the log-probability of each sampled token under softmax(logits / temperature)
(temperature 1 when greedy), the sampling policy's log-prob that PPO/GRPO ratios need.

Deliberately left out: beam search, repetition penalties, speculative decoding. For large GPU
runs the `vllm` backend (rlvr.eval.backends) replaces this loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from rlvr.decoder import StaticDecoder
from rlvr.decoder import supports as supports_static


@dataclass
class SamplingConfig:
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    ignore_eos: bool = False  # never sample EOS: every response runs to max_new_tokens (benchmarks)
    decoder: str = "auto"  # auto: rlvr.decoder's static KV cache when it supports the model; "hf": transformers' forward
    cuda_graphs: bool = True  # on a GPU, the static decoder replays each decode step as a CUDA graph
    compile: bool = False  # run the static decoder's per-layer pieces through torch.compile (fused kernels)
    cpu_kernel: bool = True  # on CPU, the static decoder's steps in rlvr's C++ kernels (built on first use)
    kv_cache_dtype: str = "auto"  # the static decoder's KV cache: auto (the model's dtype), bfloat16 or float16


@dataclass
class Generation:
    prompt_ids: list[int]
    response_ids: list[int]  # includes the EOS token when one was emitted
    text: str  # decoded response without special tokens
    finish_reason: str  # "stop" (EOS) or "length"
    logp: list[float] | None = None  # per response token, see module docstring


def _kv_dtype(name: str) -> torch.dtype | None:
    """SamplingConfig.kv_cache_dtype -> the decoder's kv_dtype (None: the model's)."""
    dtypes = {"auto": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"kv_cache_dtype must be one of {sorted(dtypes)}, got {name!r}")
    return dtypes[name]


def _eos_ids(tokenizer, model) -> list[int]:
    ids = set()
    for src in (getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer):
        e = getattr(src, "eos_token_id", None)
        if e is None:
            continue
        ids.update(e if isinstance(e, (list, tuple)) else [e])
    return sorted(ids)


def cache_kwarg(model) -> str:
    """Newer transformers name the KV-cache argument `cache`, older ones `past_key_values`."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def output_cache(out):
    """The KV cache a forward returned: `cache` in newer transformers, `past_key_values` before."""
    return out["cache"] if "cache" in out else getattr(out, "past_key_values", None)


def _top_p_mask(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set logits outside the smallest set with cumulative probability >= top_p to -inf. (B, V)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, idx = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    cum = probs.cumsum(dim=-1)
    remove = cum - probs > top_p  # keep tokens until the mass before them reaches top_p
    sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, idx, sorted_logits)


_M64 = (1 << 64) - 1


def _s64(x: int) -> int:
    """A 64-bit constant as torch's signed int64."""
    return x - (1 << 64) if x >= 1 << 63 else x


_GOLDEN, _MIX1, _MIX2 = _s64(0x9E3779B97F4A7C15), _s64(0xBF58476D1CE4E5B9), _s64(0x94D049BB133111EB)


def _splitmix64(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 tensors (wrapping arithmetic, logical shifts emulated)."""
    def shr(x: torch.Tensor, k: int) -> torch.Tensor:
        return (x >> k) & ((1 << (64 - k)) - 1)

    z = z + _GOLDEN
    z = (z ^ shr(z, 30)) * _MIX1
    z = (z ^ shr(z, 27)) * _MIX2
    return z ^ shr(z, 31)


def uniform_noise(seeds: torch.Tensor, step: int | torch.Tensor) -> torch.Tensor:
    """One uniform draw in (0, 1) per sequence seed at a decode step: (B,) int64 -> (B,) float32; with
    steps a tensor, seeds and steps broadcast (seeds[:, None], arange(T) -> the (B, T) table of a whole batch).

    Counter-based: the value depends only on (seed, step), so it is identical on any device and for
    any batch composition.
    """
    steps = torch.full_like(seeds, step) if isinstance(step, int) else step.to(seeds.device, torch.long)
    h = _splitmix64(_splitmix64(seeds) ^ _splitmix64(steps))
    return (((h >> 40) & 0xFFFFFF).float() + 0.5) / float(1 << 24)


def sample_from_logits(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: the token whose cumulative probability first exceeds u. (B, V), (B,) -> (B,).

    Tokens with logit -inf (top-p, banned EOS) have zero mass and are never chosen.
    """
    cdf = torch.softmax(logits, -1).cumsum(-1)  # (B, V)
    x = (u * cdf[:, -1]).unsqueeze(-1)
    return torch.searchsorted(cdf, x, right=True).squeeze(-1).clamp_(max=logits.shape[-1] - 1)


@torch.inference_mode()
def _generate_batch(model, prompt_ids: list[list[int]], seeds: list[int], cfg: SamplingConfig, pad_id: int,
                    eos: list[int], return_logp: bool) -> list[tuple[list[int], str, list[float] | None]]:
    device = next(model.parameters()).device
    B = len(prompt_ids)
    L = max(len(p) for p in prompt_ids)
    max_pos = getattr(model.config, "max_position_embeddings", None) or 10**9
    max_new = max(0, min(cfg.max_new_tokens, max_pos - L))
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.zeros((B, L), dtype=torch.long)
    for i, p in enumerate(prompt_ids):  # left padding
        input_ids[i, L - len(p):] = torch.tensor(p, dtype=torch.long)
        attn[i, L - len(p):] = 1
    input_ids, attn = input_ids.to(device), attn.to(device)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)  # (B, L)
    seed_t = torch.tensor([int(s) & 0x7FFFFFFFFFFFFFFF for s in seeds], dtype=torch.long, device=device)
    check_every = 1 if device.type == "cpu" else 16  # all-finished test syncs the GPU: do it now and then
    eos_t = torch.tensor(eos, dtype=torch.long, device=device) if eos else None
    ends = eos_t is not None and not cfg.ignore_eos  # whether a row can stop before max_new tokens
    greedy = cfg.temperature <= 0
    temp = 1.0 if greedy else cfg.temperature

    noise = None if greedy else uniform_noise(seed_t[:, None], torch.arange(max_new, device=device))  # (B, max_new)
    out_tokens = torch.full((B, max_new), pad_id, dtype=torch.long, device=device)
    out_logp = torch.zeros((B, max_new), dtype=torch.float32, device=device) if return_logp else None
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    lengths = torch.full((B,), max_new, dtype=torch.long, device=device)

    kv_dtype = _kv_dtype(cfg.kv_cache_dtype)  # the static decoder's; transformers' forward keeps its own cache
    use_static = cfg.decoder == "static" or (cfg.decoder == "auto" and supports_static(model))
    if use_static:
        decoder = StaticDecoder(model, B, L + max_new, mode="auto" if cfg.cuda_graphs else "exact", compile=cfg.compile,
                                cpu_kernel=cfg.cpu_kernel, kv_dtype=kv_dtype)
    past, cache_kw = None, cache_kwarg(model)

    def next_logits(tok: torch.Tensor | None) -> torch.Tensor:
        """Prefill (tok None) or feed the last sampled tokens; logits of the next position (B, V)."""
        nonlocal past, attn, cur_pos
        if use_static:
            return decoder.prefill(input_ids, attn) if tok is None else decoder.step(tok)
        if tok is None:
            ids = input_ids
        else:
            ids = tok[:, None]
            attn = torch.cat([attn, torch.ones((B, 1), dtype=attn.dtype, device=device)], dim=1)
            cur_pos = cur_pos[:, -1:] + 1
        out = model(input_ids=ids, attention_mask=attn, position_ids=cur_pos, use_cache=True, **{cache_kw: past})
        past = output_cache(out)
        return out.logits[:, -1, :]

    cur_pos = pos
    tok = None
    rows = torch.arange(B, device=device)  # batch index of each row the model still runs (the static decoder drops finished ones)
    every = slice(None)  # rows, while it is all of them in order: per-row state is then read and written in place
    for t in range(max_new):
        at = every if len(rows) == B else rows
        logits = next_logits(tok).float()  # (b, V), b = len(rows)
        if temp != 1.0:
            logits = logits / temp
        if cfg.ignore_eos and eos_t is not None:
            logits.index_fill_(-1, eos_t, float("-inf"))
        if greedy:
            tok = logits.argmax(-1)
        else:
            tok = sample_from_logits(_top_p_mask(logits, cfg.top_p), noise[at, t])
        if return_logp:
            out_logp[at, t] = torch.log_softmax(logits, -1).gather(-1, tok[:, None]).squeeze(-1)
        if not ends:  # no row can finish early (no EOS, or EOS banned): nothing to track
            out_tokens[at, t] = tok
            continue
        done = finished[at]  # of the rows still run: finished before this token (EOS emitted)
        tok = torch.where(done, pad_id, tok)
        out_tokens[at, t] = tok
        hit = torch.isin(tok, eos_t) & ~done
        lengths[at] = torch.where(hit, t + 1, lengths[at])
        done = done | hit
        finished[at] = done
        if (t + 1) % check_every == 0:
            n_live = len(rows) - int(done.sum())
            if n_live == 0:
                break
            if use_static and decoder.drops_rows and n_live <= 0.75 * len(rows):  # a quarter finished: stop computing them
                keep = (~done).nonzero().squeeze(1)
                decoder.keep(keep)
                rows, tok = rows[keep], tok[keep]
    results = []
    tokens_cpu, lengths_cpu, finished_cpu = out_tokens.cpu(), lengths.cpu().tolist(), finished.cpu().tolist()
    logp_cpu = out_logp.cpu() if return_logp else None
    for i in range(B):
        n = lengths_cpu[i]
        ids = tokens_cpu[i, :n].tolist()
        results.append((ids, "stop" if finished_cpu[i] else "length", logp_cpu[i, :n].tolist() if return_logp else None))
    return results


def generate(model, tokenizer, prompts: Sequence[str] | Sequence[Sequence[int]], cfg: SamplingConfig,
             batch_size: int = 64, return_logp: bool = False, seeds: Sequence[int] | None = None,
             progress: Callable[[int, int], None] | None = None) -> list[Generation]:
    """Sample one response per prompt (repeat a prompt for several samples; give each its own seed).

    prompts: rendered prompt strings (tokenized without special tokens) or token-id lists.
    seeds: one per prompt (default: cfg.seed + position).
    progress: called as progress(done_sequences, new_tokens) after each batch.
    Batches are formed from prompts of similar length (sorted), results come back in input order.
    """
    if seeds is None:
        seeds = [cfg.seed + i for i in range(len(prompts))]
    if len(seeds) != len(prompts):
        raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
    ids = [list(p) if not isinstance(p, str) else tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (_eos_ids(tokenizer, model) or [0])[0]
    eos = _eos_ids(tokenizer, model)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    results: list[Generation | None] = [None] * len(ids)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            outs = _generate_batch(model, [ids[i] for i in chunk], [seeds[i] for i in chunk], cfg, pad_id, eos,
                                   return_logp)
            new_tokens = 0
            for i, (resp, reason, logp) in zip(chunk, outs):
                text = tokenizer.decode(resp, skip_special_tokens=True)
                results[i] = Generation(ids[i], resp, text, reason, logp)
                new_tokens += len(resp)
            if progress is not None:
                progress(len(chunk), new_tokens)
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]
