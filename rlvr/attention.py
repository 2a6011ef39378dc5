"""Attention for training and scoring passes on CPU: rlvr's C++ kernel (`rlvr/kernels/attention.cpp`) as
a `transformers` attention implementation.

Why: in a GRPO step on CPU the policy's forward/backward and the reference forward spend a large share
of their time in torch's scaled-dot-product attention, which for RL shapes (head size 32-128, a few
hundred positions) is far from the machine's arithmetic speed. The kernel keeps one (row, KV head)'s keys,
values and one score row in cache, visits only the keys a query's mask allows, and recomputes
probabilities in the backward from the saved log-sum-exp.

`use_rlvr_attention(model)` switches a transformers model to it (attention implementation "rlvr"); fp32 and
bf16 tensors (a bf16 reference, bf16 autocast) are computed in fp32; calls it cannot take (another dtype, not on
CPU, dropout, soft-capping, a float mask, a sliding window) go to transformers' SDPA function unchanged, so
switching is always safe. The masks are transformers' SDPA
masks (boolean, or none for plain causal), so padding and shared-prefix passes work as with SDPA.
"""

from __future__ import annotations

import torch

NAME = "rlvr"
_registered = False


class _Attention(torch.autograd.Function):
    """q (B, H, Lq, D), k/v (B, Hkv, Lk, D), mask bool broadcastable to (B, H, Lq, Lk) or None (then causal,
    bottom-right aligned, or full) -> (B, Lq, H, D)."""

    @staticmethod
    def forward(ctx, q, k, v, mask, causal, scale, ops):
        m = mask if mask is not None else q.new_empty(0, dtype=torch.bool)
        out, lse = ops[0](q, k, v, m, causal, scale)
        ctx.save_for_backward(q, k, v, out, lse, m)
        ctx.causal, ctx.scale, ctx.backward_op = causal, scale, ops[1]
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse, m = ctx.saved_tensors
        dq, dk, dv = ctx.backward_op(dout, q, k, v, out, lse, m, ctx.causal, ctx.scale)
        return dq, dk, dv, None, None, None, None


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool,
              scale: float) -> torch.Tensor:
    """The kernel's attention with autograd (see `_Attention`); raises if the kernel cannot be built."""
    from rlvr.kernels import attention as ops

    pair = ops()
    if pair is None:
        raise RuntimeError("rlvr's CPU attention kernel could not be built on this machine (see the warning)")
    return _Attention.apply(q, k, v, mask, causal, scale, pair)


def _takes(query, key, value, mask, dropout, kwargs) -> bool:
    return (query.device.type == "cpu" and query.dtype == key.dtype == value.dtype
            and query.dtype in (torch.float32, torch.bfloat16)
            and not dropout and kwargs.get("softcap") is None and kwargs.get("sliding_window") is None
            and not kwargs.get("output_attentions", False) and kwargs.get("position_bias") is None
            and (mask is None or (mask.dtype == torch.bool and mask.dim() == 4)))


def rlvr_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                           is_causal=None, **kwargs):
    """A transformers attention function: (attn_output (B, Lq, H, D), None), like its SDPA function's."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from rlvr.kernels import attention as ops

    if query.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        # under autocast the rotated q/k come out fp32 and v in the autocast dtype; SDPA would cast all three to
        # that dtype, and so does this (then the kernel takes the call instead of leaving it to SDPA)
        dt = torch.get_autocast_dtype("cpu")
        query, key, value = query.to(dt), key.to(dt), value.to(dt)
    pair = ops() if _takes(query, key, value, attention_mask, dropout, kwargs) else None
    if pair is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return _Attention.apply(query, key, value, attention_mask, bool(causal), float(scale), pair), None


def register() -> None:
    """Make "rlvr" a transformers attention implementation (with SDPA's masks). Idempotent."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, rlvr_attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    _registered = True


def set_attention(model, choice: str = "auto") -> str:
    """Apply a training config's `model.attention` choice (auto | rlvr | sdpa | eager) to a transformers model and
    return the implementation it now uses."""
    from rlvr.errors import UserError

    if choice not in ("auto", "rlvr", "sdpa", "eager"):
        raise UserError(f"model.attention must be auto, rlvr, sdpa or eager, got {choice!r}")
    if choice in ("auto", "rlvr"):
        if use_rlvr_attention(model):
            return NAME
        if choice == "rlvr":
            raise UserError("model.attention: rlvr is rlvr's CPU kernel and needs a CPU model and a C++ compiler "
                            "(see the warning above, if any); use auto, sdpa or eager")
    else:
        model.set_attn_implementation(choice)
    return getattr(model.config, "_attn_implementation", None) or "default"


def use_rlvr_attention(model) -> bool:
    """Switch a transformers model on CPU to rlvr's attention kernel where it can be built: True if switched.
    Models that only know their built-in implementations (no attention interface) are left as they are."""
    from rlvr.kernels import attention as ops

    if next(model.parameters()).device.type != "cpu" or ops() is None:
        return False
    register()
    try:
        model.set_attn_implementation(NAME)
    except (ValueError, AttributeError, ImportError):
        return False
    return getattr(model.config, "_attn_implementation", None) == NAME
