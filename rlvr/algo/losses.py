"""Loss terms (pure tensor functions). Shapes: B sequences, T response tokens, V vocab.

- `ppo_clip_loss`    PPO's clipped surrogate (Schulman et al. 2017, Eq. 7) with separate low/high
                     ratios (clip-higher, DAPO: Yu et al. 2025, Sec. 3.1) and optional dual clip
                     (Ye et al. 2020, Eq. 5) that bounds the loss of negative-advantage tokens.
- `kl_penalty`       per-token KL estimators against a reference policy (Schulman 2020, "Approximating
                     KL divergence"): k1 = log p - log q, k2 = (log p - log q)^2 / 2, k3 = e^(q-p) - (q-p) - 1,
                     `low_var_kl` = k3 clamped to [-10, 10] (verl's name for it).
- `entropy_from_logits`  entropy of softmax(logits) per token.
- `token_logp_and_entropy`  both of the above in one autograd node that keeps only the logits (in their
                     own dtype) for backward, recomputes the softmax there, and works through chunks of
                     positions: no fp32 copy of the full-vocabulary scores is held (benchmarks/logits_memory.py).
- `value_loss`       PPO's clipped value loss.
- `agg_loss`         loss aggregation modes, the Dr. GRPO / DAPO difference:
    token-mean               sum over all valid tokens / number of valid tokens in the global batch
    seq-mean-token-sum       per sequence sum over tokens, mean over sequences
    seq-mean-token-mean      per sequence mean over tokens, mean over sequences (GRPO's original form)
    seq-mean-token-sum-norm  per sequence sum over tokens / a constant (e.g. max response length),
                             mean over sequences (Dr. GRPO "Modification 2")
  `agg_loss` divides by GLOBAL counts passed in by the caller (tokens or sequences of the whole
  optimiser step, across micro-batches and ranks), so summing its results over micro-batches and
  ranks gives exactly the full-batch loss, whatever the split.
"""

from __future__ import annotations

import torch

from rlvr.errors import UserError

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
KL_KINDS = ("k1", "k2", "k3", "low_var_kl")


def token_logp_from_logits(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / temperature) at `tokens`. logits (B, T, V), tokens (B, T) -> (B, T)."""
    logits = logits.float() / temperature
    return logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of softmax(logits / temperature) per position. (B, T, V) -> (B, T)."""
    logits = logits.float() / temperature
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


_CHUNK_BYTES = 256 << 20  # fp32 scratch per chunk of positions in `token_logp_and_entropy`


def _position_chunks(n: int, vocab: int) -> list[slice]:
    step = max(1, _CHUNK_BYTES // (4 * vocab))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


class _TokenLogpEntropy(torch.autograd.Function):
    """z = logits / temperature; logp = z[token] - logsumexp(z); entropy = -sum p log p.
    Gradients: d logp / dz = onehot - p; d entropy / dz = -p (log p + entropy). Both passes go over
    chunks of positions, so the fp32 scratch is bounded (`_CHUNK_BYTES`) whatever the batch."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, tokens: torch.Tensor, temperature: float):
        V = logits.shape[-1]
        flat, tok = logits.reshape(-1, V), tokens.reshape(-1)
        ft = torch.promote_types(logits.dtype, torch.float32)  # at least fp32
        lse = torch.empty(flat.shape[0], dtype=ft, device=logits.device)
        logp, ent = torch.empty_like(lse), torch.empty_like(lse)
        for c in _position_chunks(flat.shape[0], V):
            z = flat[c].to(ft) / temperature
            lse[c] = torch.logsumexp(z, dim=-1)
            z.sub_(lse[c, None])  # log p
            logp[c] = z.gather(-1, tok[c, None]).squeeze(-1)
            ent[c] = -(z.exp().mul_(z)).sum(-1)
        ctx.save_for_backward(logits, tokens, lse, ent)
        ctx.temperature = temperature
        ctx.set_materialize_grads(False)
        return logp.view(tokens.shape), ent.view(tokens.shape)

    @staticmethod
    def backward(ctx, g_logp: torch.Tensor | None, g_ent: torch.Tensor | None):
        logits, tokens, lse, ent = ctx.saved_tensors
        if g_logp is None and g_ent is None:
            return None, None, None
        V = logits.shape[-1]
        flat, tok = logits.reshape(-1, V), tokens.reshape(-1)
        grad = torch.empty_like(flat)
        gl = g_logp.reshape(-1) if g_logp is not None else None
        ge = g_ent.reshape(-1) if g_ent is not None else None
        for c in _position_chunks(flat.shape[0], V):
            logq = (flat[c].to(lse.dtype) / ctx.temperature).sub_(lse[c, None])  # log p, a new tensor
            p = logq.exp()
            if ge is not None:  # -p (log p + H) g_ent, built in logq's memory
                g = logq.add_(ent[c, None]).mul_(p).mul_(-ge[c, None])
            else:
                g = logq.zero_()
            if gl is not None:
                g.sub_(p.mul_(gl[c, None]))
                g.scatter_add_(-1, tok[c, None], gl[c, None].to(g.dtype))
            grad[c] = g.div_(ctx.temperature)
        return grad.view(logits.shape), None, None


def token_logp_and_entropy(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log softmax(logits / temperature) at `tokens`, entropy of softmax(logits / temperature)), each (B, T)
    from logits (B, T, V): the values of `token_logp_from_logits` and `entropy_from_logits`, with their
    gradients, while keeping only `logits` for backward (see the module docstring)."""
    return _TokenLogpEntropy.apply(logits, tokens, temperature)


def ppo_clip_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, response_mask: torch.Tensor,
                  clip_low: float = 0.2, clip_high: float = 0.2, dual_clip_c: float | None = None
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token PPO loss (B, T) (to be aggregated) and stats {clipfrac, approx_kl} over valid tokens.

    advantages may be (B,) (outcome, broadcast over tokens) or (B, T).
    loss = -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A); with dual clip (c > 1),
    negative-advantage tokens are additionally bounded by -c * A.
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None].expand_as(logp)
    mask = response_mask.float()
    log_ratio = (logp - old_logp).clamp(-20.0, 20.0)
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    if dual_clip_c is not None:
        if dual_clip_c <= 1.0:
            raise UserError(f"dual_clip_c must be > 1 (got {dual_clip_c}); 3 is the usual value")
        loss = torch.where(advantages < 0, torch.minimum(loss, -advantages * dual_clip_c), loss)
    n = mask.sum().clamp(min=1)
    with torch.no_grad():
        stats = {
            "clipfrac": ((clipped > unclipped).float() * mask).sum() / n,
            "approx_kl": ((-log_ratio) * mask).sum() / n,
        }
    return loss * mask, stats


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "low_var_kl") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from sampled-token log-probs. (B, T) -> (B, T)."""
    d = logp - ref_logp
    if kind == "k1":
        return d
    if kind == "k2":
        return 0.5 * d * d
    if kind in ("k3", "low_var_kl"):
        x = (-d).clamp(-20.0, 20.0)
        k3 = x.exp() - x - 1.0
        return k3.clamp(-10.0, 10.0) if kind == "low_var_kl" else k3
    raise UserError(f"unknown KL estimator {kind!r} (valid: {', '.join(KL_KINDS)})")


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, response_mask: torch.Tensor,
               clip: float | None = 0.5) -> torch.Tensor:
    """Per-token clipped value loss 0.5 * max((V - R)^2, (clip(V) - R)^2) (B, T), masked."""
    err = (values - returns) ** 2
    if clip is not None:
        v_clipped = old_values + (values - old_values).clamp(-clip, clip)
        err = torch.maximum(err, (v_clipped - returns) ** 2)
    return 0.5 * err * response_mask.float()


def agg_loss(loss_mat: torch.Tensor, response_mask: torch.Tensor, mode: str, global_tokens: float | None = None,
             global_seqs: float | None = None, norm_constant: float | None = None) -> torch.Tensor:
    """Aggregate a per-token loss (B, T) to a scalar (see module docstring for the modes).

    global_tokens / global_seqs: valid tokens / sequences of the whole step (all micro-batches and
    ranks); default: this batch's own counts. norm_constant: the constant of seq-mean-token-sum-norm.
    """
    mask = response_mask.float()
    if mode == "token-mean":
        denom = global_tokens if global_tokens is not None else mask.sum().clamp(min=1)
        return (loss_mat * mask).sum() / denom
    seqs = global_seqs if global_seqs is not None else float(loss_mat.shape[0])
    if mode == "seq-mean-token-sum":
        return (loss_mat * mask).sum(-1).sum() / seqs
    if mode == "seq-mean-token-mean":
        per_seq = (loss_mat * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq.sum() / seqs
    if mode == "seq-mean-token-sum-norm":
        c = norm_constant if norm_constant is not None else float(loss_mat.shape[-1])
        return ((loss_mat * mask).sum(-1) / c).sum() / seqs
    raise UserError(f"unknown loss aggregation {mode!r} (valid: {', '.join(LOSS_AGG_MODES)})")
