"""The trainer's per-token passes over a padded batch: micro-batching, the shared-prompt forward
(`policy_logits`), log-probs and entropy (`forward_logp`), critic values, bf16 autocast, and the weight sync
from the policy to its rollout copy. `rlvr.trainer.loop` puts them together."""

from __future__ import annotations

import contextlib

import torch

from rlvr import dist
from rlvr.algo import token_logp_and_entropy
from rlvr.generation import cache_kwarg, output_cache
from rlvr.trainer.config import TrainConfig


def autocast(cfg: TrainConfig, device) -> contextlib.AbstractContextManager:
    """bf16 autocast for the policy's forward/backward when model.mixed_precision is bf16."""
    if cfg.model.mixed_precision == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def sync_weights(engine, policy) -> None:
    """Copy the policy's weights into the rollout engine's (casting to its dtype); no disk round-trip.
    Sharded (FSDP) parameters are gathered whole first: a collective every rank runs."""
    from torch.distributed.tensor import DTensor

    for pe, pp in zip(engine.parameters(), policy.parameters()):
        pe.copy_(pp.full_tensor() if isinstance(pp, DTensor) else pp)


def response_start(batch: dict) -> int:
    """First column of (B, L-1) predictions that any row's response occupies: logits before it are
    never used, so the policy computes only the last L - start positions (`logits_to_keep`)."""
    return int(batch["response_mask"].any(0).float().argmax())


def micro_batches(batch: dict, rows: range, size: int, max_tokens: int = 0) -> list[tuple[torch.Tensor, int, int]]:
    """Split batch rows into forward/backward micro-batches, longest sequences together:
    [(row indices, c0, L)] where, for those rows, columns >= L are padding and predictions before column
    c0 hold no response token, so a pass over ids[idx, :L] computing logits from c0 on does the work of
    those rows only, not of the batch's longest row.

    A micro-batch has at most `size` rows and, when max_tokens > 0, at most max_tokens padded tokens
    (rows x its longest row; a row longer than that goes alone). Every data-parallel rank must run the
    same number of forward/backward passes, so the count is agreed on (the largest any rank needs)."""
    lengths = batch["attention_mask"][rows.start:rows.stop].sum(1)
    order = torch.argsort(lengths, descending=True, stable=True)
    per = size if max_tokens <= 0 else max(1, min(size, max_tokens // int(lengths.max())))
    n = dist.all_reduce_max(-(-len(order) // per)) if max_tokens > 0 else -(-len(order) // per)
    out = []
    for part in torch.tensor_split(order, min(n, len(order))):
        idx = part + rows.start
        L = int(lengths[part[0]])  # the part's longest row comes first
        out.append((idx, response_start({"response_mask": batch["response_mask"][idx, :L - 1]}), L))
    return out


def shared_prefix(ids: torch.Tensor, prompt_len: torch.Tensor, min_saving: float = 0.1):
    """Rows of a pass whose prompts begin alike: (n, distinct prefixes (U, n), row -> prefix (b,)), or None
    when running the first n tokens once per distinct prefix would save less than `min_saving` of the
    pass's tokens. n is the shortest prompt less one: each row's last prompt token goes with its response,
    whose first token it predicts. A GRPO group (one prompt, G samples) shares its prompt; a 1-shot batch
    (one example repeated) shares it across the whole pass."""
    b, L = ids.shape
    n = int(prompt_len.min()) - 1
    if b < 2 or n < 1:
        return None
    uniq, inverse = torch.unique(ids[:, :n], dim=0, return_inverse=True)
    if (b - uniq.shape[0]) * n < min_saving * b * L:
        return None
    return n, uniq, inverse


class _GatherRows(torch.autograd.Function):
    """x.index_select(0, index) whose backward sums the repeated rows' gradients with index_add_ (thread-count
    independent; the indexing op's own backward, an accumulating index_put, took ~1.4 ms per layer's keys of the
    standard benchmark's shared prompt on CPU, index_add_ ~0.05 ms)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.rows = x.shape[0]
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (index,) = ctx.saved_tensors
        return grad.new_zeros((ctx.rows, *grad.shape[1:])).index_add_(0, index, grad), None


def _rows_of_cache(cache, index: torch.Tensor) -> None:
    """The KV cache of the distinct prefixes -> the cache of the pass's rows (row r: prefix index[r]), in place.
    transformers' per-layer caches (`layers` with `keys`/`values`) are gathered with `_GatherRows`; other caches
    with their own batch_select_indices."""
    layers = getattr(cache, "layers", None)
    if not layers or not all(hasattr(layer, "keys") and hasattr(layer, "values") for layer in layers):
        cache.batch_select_indices(index)
        return
    for layer in layers:
        if isinstance(layer.keys, torch.Tensor) and layer.keys.numel():
            layer.keys, layer.values = _GatherRows.apply(layer.keys, index), _GatherRows.apply(layer.values, index)


def policy_logits(model, ids: torch.Tensor, attn: torch.Tensor, start: int,
                  prompt_len: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token logits for positions start..L-2: (b, L-1-start, V).

    With prompt_len (b,) (right-padded rows: prompt, response, padding), a prompt prefix that rows share
    (`shared_prefix`) runs once per distinct prefix; its KV cache is gathered to the rows (gradients flow
    back through the gather) and the rest of each row attends to it: the same logits, fewer tokens. Not
    while training under gradient checkpointing, where transformers keeps no cache."""
    L = ids.shape[1]
    ckpt = getattr(model, "is_activation_checkpointing", None)  # transformers >= 5 (older: is_gradient_checkpointing)
    ckpt = getattr(model, "is_gradient_checkpointing", False) if ckpt is None else ckpt
    keeps_cache = not (model.training and ckpt)
    split = shared_prefix(ids, prompt_len) if prompt_len is not None and keeps_cache else None
    if split is not None and split[0] <= start:
        n, uniq, inverse = split
        try:
            cache = output_cache(model(input_ids=uniq, use_cache=True, logits_to_keep=1))
        except TypeError:  # a model without logits_to_keep or a KV cache: the plain pass below
            cache = None
        if hasattr(cache, "batch_select_indices"):  # None: a model that keeps no cache here
            _rows_of_cache(cache, inverse)
            out = model(input_ids=ids[:, n:], attention_mask=attn, use_cache=True, logits_to_keep=L - start,
                        **{cache_kwarg(model): cache})
            return out.logits[:, :-1]
    try:
        out = model(input_ids=ids, attention_mask=attn, logits_to_keep=L - start)
    except TypeError:  # a model without logits_to_keep
        return model(input_ids=ids, attention_mask=attn).logits[:, start:-1]
    return out.logits[:, :-1]


def forward_logp(model, batch: dict, temperature: float, micro: int, with_entropy: bool, grad: bool = False,
                 max_tokens: int = 0, share_prefix: bool = False):
    """(logp, entropy or None), each (B, L-1) (zero outside the response columns), in micro-batches;
    no graph unless grad; share_prefix: see `policy_logits`."""
    B, L1 = batch["response_mask"].shape
    logp = torch.zeros((B, L1), dtype=torch.float32, device=batch["input_ids"].device)
    ent = torch.zeros_like(logp) if with_entropy else None
    ctx = contextlib.nullcontext() if grad else torch.inference_mode()
    with ctx:
        for idx, c0, L in micro_batches(batch, range(B), micro, max_tokens):
            ids = batch["input_ids"][idx, :L]
            logits = policy_logits(model, ids, batch["attention_mask"][idx, :L], c0,
                                   batch["prompt_len"][idx] if share_prefix else None)
            lp, e = token_logp_and_entropy(logits, ids[:, c0 + 1:], temperature)  # chunked: no fp32 copy of the scores
            logp[idx, c0:L - 1] = lp
            if with_entropy:
                ent[idx, c0:L - 1] = e
    return logp, ent


def critic_values(critic, batch: dict, micro: int, grad: bool = False, max_tokens: int = 0) -> torch.Tensor:
    B, L1 = batch["response_mask"].shape
    out = torch.zeros((B, L1), dtype=torch.float32, device=batch["input_ids"].device)
    ctx = contextlib.nullcontext() if grad else torch.no_grad()
    with ctx:
        for idx, _c0, L in micro_batches(batch, range(B), micro, max_tokens):
            out[idx, :L - 1] = critic(input_ids=batch["input_ids"][idx, :L],
                                      attention_mask=batch["attention_mask"][idx, :L]).logits[:, :-1, 0].float()
    return out
