"""RMSNorm and the SiLU-gated MLP activation of training and scoring passes on CPU, each one C++ pass over
memory forward and one backward (`rlvr/kernels/layers.cpp`).

Why: at the hidden sizes RL runs on a CPU, a transformers RMSNorm (about six elementwise operations forward and
a dozen backward) and the MLP's `silu(gate) * up` (three forward, three backward) spend more time reading and
writing whole activations than the matrix products around them spend computing. The kernels read each input
once and write each output once, in fp32 arithmetic for fp32 or bf16 tensors.

`use_fused_layers(model)` switches the RMSNorm and MLP modules of the Llama-family models rlvr's decoder
knows (Qwen2, Qwen3, Llama, Mistral) to them, leaving their weights, hooks and linear layers as they are;
calls the kernels cannot take (a GPU tensor, another dtype, a weight of another dtype than its input) run the
module's own code unchanged, so switching is always safe. `restore_layers(model)` undoes it.
"""

from __future__ import annotations

import types

import torch

# classes whose forward is exactly what the kernels compute (transformers' code, checked by the tests)
NORMS = ("Qwen2RMSNorm", "Qwen3RMSNorm", "LlamaRMSNorm", "MistralRMSNorm")
MLPS = ("Qwen2MLP", "Qwen3MLP", "LlamaMLP", "MistralMLP")


class _RMSNorm(torch.autograd.Function):
    """x (..., N), w (N,) of x's dtype -> w * x / sqrt(mean(x^2) + eps), in x's dtype."""

    @staticmethod
    def forward(ctx, x, w, eps, ops):
        y, rstd = ops.rms_norm_forward(x, w, eps)
        ctx.save_for_backward(x, w, rstd)
        ctx.ops = ops
        return y

    @staticmethod
    def backward(ctx, dy):
        x, w, rstd = ctx.saved_tensors
        dx, dw = ctx.ops.rms_norm_backward(dy, x, w, rstd)
        return dx, dw, None, None


class _SwiGLU(torch.autograd.Function):
    """gate, up (same shape and dtype) -> silu(gate) * up."""

    @staticmethod
    def forward(ctx, g, u, ops):
        ctx.save_for_backward(g, u)
        ctx.ops = ops
        return ops.swiglu_forward(g, u)

    @staticmethod
    def backward(ctx, dh):
        g, u = ctx.saved_tensors
        dg, du = ctx.ops.swiglu_backward(dh, g, u)
        return dg, du, None


def _ops():
    from rlvr.kernels import layers

    return layers()


def _takes(*ts: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype == ts[0].dtype for t in ts) and ts[0].dtype in (torch.float32,
                                                                                               torch.bfloat16)


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of the last dimension by the kernel (with autograd); raises if it cannot be built."""
    ops = _ops()
    if ops is None:
        raise RuntimeError("rlvr's CPU kernels could not be built on this machine (see the warning)")
    return _RMSNorm.apply(x, w, float(eps), ops)


def swiglu(g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """silu(g) * u by the kernel (with autograd); raises if it cannot be built."""
    ops = _ops()
    if ops is None:
        raise RuntimeError("rlvr's CPU kernels could not be built on this machine (see the warning)")
    return _SwiGLU.apply(g, u, ops)


def _norm_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    ops = _ops()
    if ops is None or not _takes(hidden_states, self.weight):
        return type(self).forward(self, hidden_states)
    return _RMSNorm.apply(hidden_states, self.weight, float(self.variance_epsilon), ops)


def _mlp_forward(self, x: torch.Tensor) -> torch.Tensor:
    g, u = self.gate_proj(x), self.up_proj(x)
    ops = _ops()
    if ops is None or not _takes(g, u):
        return self.down_proj(self.act_fn(g) * u)
    return self.down_proj(_SwiGLU.apply(g, u, ops))


def _silu(act) -> bool:
    from transformers import activations

    kinds = tuple(k for k in (getattr(activations, "SiLUActivation", None), torch.nn.SiLU) if k is not None)
    return isinstance(act, kinds)


def use_fused_layers(model) -> int:
    """Switch a CPU model's RMSNorm and gated-MLP modules to rlvr's kernels where they can be built: the number
    of modules switched (0 on a GPU, without a compiler, or for a model of another family)."""
    if next(model.parameters()).device.type != "cpu" or _ops() is None:
        return 0
    n = 0
    for m in model.modules():
        name = type(m).__name__
        if name in NORMS and hasattr(m, "variance_epsilon"):
            m.forward = types.MethodType(_norm_forward, m)
            n += 1
        elif name in MLPS and _silu(getattr(m, "act_fn", None)):
            m.forward = types.MethodType(_mlp_forward, m)
            n += 1
    return n


def restore_layers(model) -> None:
    """Undo `use_fused_layers`: every module runs its class's own forward again."""
    for m in model.modules():
        if "forward" in vars(m) and getattr(m.forward, "__func__", None) in (_norm_forward, _mlp_forward):
            del m.forward
