"""rlvr's C++ RMSNorm and SiLU-gated activation for training passes (rlvr.fused): their values and gradients, and
inside each model family they switch, the same logits and gradients as the family's own modules."""

import copy
import subprocess
import sys

import pytest
import torch
import transformers

from rlvr.fused import restore_layers, rms_norm, swiglu, use_fused_layers


def _kernels_or_skip():
    from rlvr.kernels import layers

    if layers() is None:
        pytest.skip("rlvr's C++ kernels could not be built on this machine (see the warning)")


def _with_fp64_reference(fn, reference, *inputs):
    """fn(*inputs) and the input gradients of a random cotangent, with the same from `reference` run in fp64:
    (out, want, [(grad, grad in fp64) per input])."""
    out = fn(*inputs)
    cot = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, cot)
    fp64 = [t.detach().double().requires_grad_() for t in inputs]
    want = reference(*fp64)
    return out, want, list(zip(grads, torch.autograd.grad(want, fp64, cot.double())))


@pytest.mark.parametrize("N", [40, 128, 1000])
def test_rms_norm_values_and_gradients(N):
    _kernels_or_skip()
    torch.manual_seed(0)
    x = (torch.randn(3, 7, N) * 3).requires_grad_()
    w = (1 + 0.3 * torch.randn(N)).requires_grad_()
    y, want, [(dx, dxw), (dw, dww)] = _with_fp64_reference(
        lambda x, w: rms_norm(x, w, 1e-6), lambda x, w: w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6), x, w)
    assert y.dtype == dx.dtype == dw.dtype == torch.float32
    torch.testing.assert_close(y.double(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx.double(), dxw, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(dw.double(), dww, rtol=1e-4, atol=1e-4)


def test_swiglu_values_and_gradients():
    _kernels_or_skip()
    torch.manual_seed(0)
    g = (torch.randn(5, 9, 300) * 6).requires_grad_()  # large |g|: the sigmoid's both tails
    u = torch.randn(5, 9, 300).requires_grad_()
    h, want, [(dg, dgw), (du, duw)] = _with_fp64_reference(swiglu, lambda g, u: torch.nn.functional.silu(g) * u, g, u)
    torch.testing.assert_close(h.double(), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dg.double(), dgw, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(du.double(), duw, rtol=1e-5, atol=1e-5)


def test_bf16_tensors_are_computed_in_fp32_and_rounded_once():
    _kernels_or_skip()
    torch.manual_seed(0)
    x, w = torch.randn(4, 64).bfloat16(), (1 + 0.3 * torch.randn(64)).bfloat16()
    y = rms_norm(x, w, 1e-6)
    xf, wf = x.float(), w.float()
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, (wf * xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).bfloat16())
    x[1, 3] = float("nan")
    x[2, 5] = float("inf")
    y = rms_norm(x, w, 1e-6)
    xf = x.float()
    want = (wf * xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).bfloat16()
    assert y[1].isnan().all() and y[2].isnan().any()  # NaN survives the rounding (an inf row: inf * 0)
    torch.testing.assert_close(y, want, rtol=0, atol=0, equal_nan=True)
    g, u = torch.randn(4, 64).bfloat16(), torch.randn(4, 64).bfloat16()
    h = swiglu(g, u)
    want = (torch.nn.functional.silu(g.float()) * u.float()).bfloat16()
    assert h.dtype == torch.bfloat16
    assert (h.float() - want.float()).abs().max() <= 1e-2 * want.float().abs().max()  # at most a last-bit difference


def test_results_do_not_depend_on_the_thread_count():
    """The weight gradient sums over rows in fixed chunks, added in order: the same bits on 1 or 2 threads (a
    training run's metrics do not change with `threads`)."""
    _kernels_or_skip()
    torch.manual_seed(0)
    x, w = torch.randn(300, 64), 1 + 0.3 * torch.randn(64)
    g, u, dy = torch.randn(300, 96), torch.randn(300, 96), torch.randn(300, 64)
    runs = []
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
            gs, us = g.clone().requires_grad_(), u.clone().requires_grad_()
            y = rms_norm(xs, ws, 1e-6)
            h = swiglu(gs, us)
            runs.append([y, h, *torch.autograd.grad((y * dy).sum() + h.square().sum(), (xs, ws, gs, us))])
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*runs):
        assert torch.equal(a, b)


FAMILIES = {  # config class, extra config: every family use_fused_layers switches
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {"head_dim": 16}),  # Qwen3 also normalises q and k per head
    "llama": ("LlamaConfig", {"mlp_bias": True}),
    "mistral": ("MistralConfig", {}),
}


def _model(family):
    name, extra = FAMILIES[family]
    cfg = getattr(transformers, name)(vocab_size=50, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, **extra)
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(cfg)


def _logits_and_grads(model, ids):
    model.zero_grad()
    logits = model(input_ids=ids).logits
    (logits.float().log_softmax(-1)[..., 7]).sum().backward()
    return logits.detach().float(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_in_each_family_the_same_logits_and_gradients(family):
    _kernels_or_skip()
    ids = torch.randint(3, 50, (3, 11))
    plain, fused = _model(family).train(), _model(family).train()
    layers = fused.config.num_hidden_layers
    norms = 2 * layers + 1 + (2 * layers if family == "qwen3" else 0)
    assert use_fused_layers(fused) == norms + layers  # every RMSNorm and every MLP
    la, ga = _logits_and_grads(plain, ids)
    lb, gb = _logits_and_grads(fused, ids)
    torch.testing.assert_close(lb, la, rtol=1e-5, atol=1e-5)
    for name in ga:
        torch.testing.assert_close(gb[name], ga[name], rtol=1e-4, atol=1e-6, msg=name)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # model.mixed_precision: bf16
        la, _ = _logits_and_grads(plain, ids)
        lb, _ = _logits_and_grads(fused, ids)
    torch.testing.assert_close(lb, la, rtol=0, atol=3e-2)
    restore_layers(fused)
    assert not any("forward" in vars(m) for m in fused.modules())
    lc, _ = _logits_and_grads(fused, ids)
    torch.testing.assert_close(lc, _logits_and_grads(plain, ids)[0], rtol=0, atol=0)


def test_copies_stay_switched_and_calls_it_cannot_take_run_the_modules_code():
    """The trainer's reference and rollout copies are deep copies of the switched policy; a float64 copy (a
    dtype the kernels do not take) runs the modules' own code: exactly the plain model's logits."""
    _kernels_or_skip()
    ids = torch.randint(3, 50, (2, 9))
    plain, fused = _model("qwen2").eval(), _model("qwen2").eval()
    use_fused_layers(fused)
    ref = copy.deepcopy(fused).to(torch.bfloat16)
    norm = ref.model.norm
    assert norm.forward.__self__ is norm  # bound to the copy, not to the policy's module
    with torch.no_grad():
        torch.testing.assert_close(ref(input_ids=ids).logits.float(), plain(input_ids=ids).logits, rtol=0, atol=5e-2)
        a = plain.double()(input_ids=ids).logits
        b = copy.deepcopy(fused).double()(input_ids=ids).logits
    assert torch.equal(a, b)


def test_without_the_kernels_nothing_is_switched(monkeypatch):
    import rlvr.kernels as kernels

    monkeypatch.setattr(kernels, "_state", {"module": None})  # as on a machine without a compiler
    model = _model("qwen2")
    assert use_fused_layers(model) == 0
    assert not any("forward" in vars(m) for m in model.modules())


_FAULTS = """
import resource, sys, torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from rlvr.utils.memory import retain_freed_memory
retain_freed_memory()
torch.manual_seed(0)
model = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2))
ids = torch.randint(0, 64, (32, 128))
def step():  # a training pass: activations of a few MB each, allocated and freed
    model(input_ids=ids).logits.logsumexp(-1).mean().backward()
for _ in range(3):
    step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) // 5)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator settings: Linux only")
def test_training_passes_reuse_freed_memory_without_page_faults():
    """rlvr.utils.memory.retain_freed_memory, which the trainer applies on CPU: passes after the first reuse the
    memory the previous ones freed instead of faulting fresh pages in (here about 2,900 faults per pass
    without it, 150 with it)."""
    import os

    def faults(retain: str) -> int:
        env = dict(os.environ, RLVR_RETAIN_MEMORY=retain)
        out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, env=env, check=True)
        return int(out.stdout.strip())

    off, on = faults("0"), faults("1")
    assert off > 1000  # the problem is real here
    assert on < off / 5
