"""rlvr's CPU attention kernel for training passes (rlvr.attention): the values and gradients of softmax
attention, and as a transformers attention implementation the same logits and gradients as SDPA."""

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from rlvr.attention import attention, set_attention
from rlvr.errors import UserError


def _kernel_or_skip():
    from rlvr.kernels import attention as ops

    if ops() is None:
        pytest.skip("rlvr's C++ kernels could not be built on this machine (see the warning)")


def _reference(q, k, v, mask, causal, scale):
    """Plain softmax attention in fp64: (B, H, Lq, D) ... -> (B, Lq, H, D); a query that sees nothing gets 0."""
    q, k, v = q.double(), k.double(), v.double()
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    Lq, Lk = q.shape[2], k.shape[2]
    if mask is None and causal:
        mask = torch.ones(Lq, Lk, dtype=torch.bool).tril(Lk - Lq)[None, None]
    s = (q @ k.transpose(-1, -2)) * scale
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    p = torch.softmax(s, -1).nan_to_num(0.0)
    return (p @ v).transpose(1, 2)


CASES = {  # B, H, Hkv, Lq, Lk, kind
    "causal": (2, 4, 2, 9, 9, "causal"),
    "causal-after-prefix": (3, 2, 1, 7, 23, "causal"),  # Lq < Lk: query i sees keys up to i + Lk - Lq
    "bool-mask": (2, 4, 4, 10, 13, "mask"),  # padding-like holes, one query that sees nothing
    "full": (2, 2, 2, 5, 19, "full"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("D", [32, 40, 48, 64, 128])  # compiled sizes (tiles of 8, 4 and 2 queries) and the generic loop
def test_values_and_gradients_match_plain_attention(case, D):
    _kernel_or_skip()
    torch.manual_seed(0)
    B, H, Hkv, Lq, Lk, kind = CASES[case]
    # transformers' layouts: q and v are transposed views of (B, L, heads, D) projections
    q = torch.randn(B, Lq, H, D).transpose(1, 2).requires_grad_()
    k = torch.randn(B, Hkv, Lk, D).requires_grad_()
    v = torch.randn(B, Lk, Hkv, D).transpose(1, 2).requires_grad_()
    mask = None
    if kind == "mask":
        mask = torch.rand(B, 1, Lq, Lk) > 0.4
        mask[1, 0, 3] = False  # sees nothing: zeros, no gradient
    scale = D ** -0.5
    out = attention(q, k, v, mask, kind == "causal", scale)
    want = _reference(q, k, v, mask, kind == "causal", scale)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
    g = torch.randn(B, Lq, H, D)
    got = torch.autograd.grad((out * g).sum(), (q, k, v))
    ref = torch.autograd.grad((want * g.double()).sum(), (q, k, v))
    for a, b, name in zip(got, ref, "qkv"):
        assert a.shape == b.shape, name
        torch.testing.assert_close(a.double(), b.double(), rtol=1e-4, atol=1e-5)
    if kind == "mask":
        assert out[1, 3].abs().max() == 0 and got[0][1, :, 3].abs().max() == 0


def test_bf16_tensors_are_computed_in_fp32():
    """bf16 q/k/v (a bf16 reference model, bf16 autocast): the fp32 result rounded once to bf16, and gradients in bf16."""
    _kernel_or_skip()
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 17, 32).bfloat16().requires_grad_() for _ in range(3))
    out = attention(q, k, v, None, True, 32 ** -0.5)
    assert out.dtype == torch.bfloat16
    want = _reference(q, k, v, None, True, 32 ** -0.5)
    torch.testing.assert_close(out.double(), want, rtol=8e-3, atol=8e-3)  # bf16's rounding of the output
    g = torch.randn(2, 17, 4, 32).bfloat16()
    got = torch.autograd.grad((out * g).float().sum(), (q, k, v))
    ref = torch.autograd.grad((want * g.double()).sum(), (q, k, v))
    for a, b in zip(got, ref):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.double(), b.double(), rtol=2e-2, atol=2e-2)


def test_results_do_not_depend_on_the_thread_count():
    _kernel_or_skip()
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 4, 21, 32, requires_grad=True) for _ in range(3))
    g = torch.randn(3, 21, 4, 32)
    before = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = attention(q, k, v, None, True, 0.2)
            runs.append((out, *torch.autograd.grad((out * g).sum(), (q, k, v))))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def _qwen2():
    cfg = Qwen2Config(vocab_size=50, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    return Qwen2ForCausalLM(cfg)


START = 5  # logits from column 5 on (the responses'), as the update computes them


def _logits_and_grads(model, ids, attn, prompt_len=None):
    from rlvr.trainer.passes import policy_logits

    model.zero_grad()
    logits = policy_logits(model, ids, attn, START, prompt_len)  # (B, L - 1 - START, V)
    (logits.float().log_softmax(-1)[..., 7] * attn[:, START + 1:]).sum().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("shared_prefix", [False, True], ids=["plain", "shared-prefix"])
def test_as_a_transformers_attention_it_gives_sdpas_logits_and_gradients(shared_prefix):
    """A right-padded training batch (rows of different lengths) through a Qwen2 model with grouped KV heads,
    as one pass or with the prompt prefix the rows share run once (rlvr's update and reference passes)."""
    _kernel_or_skip()
    ids = torch.randint(3, 50, (6, 14))
    ids[:, :5] = ids[0, :5]  # a prompt the rows share
    attn = torch.ones_like(ids)
    attn[1, 10:] = 0  # right padding
    attn[4, 12:] = 0
    prompt_len = torch.full((6,), 6) if shared_prefix else None  # shared: the first 5 tokens run once
    if shared_prefix:
        from rlvr.trainer.passes import shared_prefix as split

        assert split(ids, prompt_len)[0] <= START  # the prefix pass is taken
    sdpa = _qwen2().train()
    sdpa.set_attn_implementation("sdpa")
    ours = _qwen2().train()
    assert set_attention(ours, "auto") == "rlvr"
    la, ga = _logits_and_grads(sdpa, ids, attn, prompt_len)
    lb, gb = _logits_and_grads(ours, ids, attn, prompt_len)
    keep = attn[:, START + 1:, None].bool()
    torch.testing.assert_close(lb * keep, la * keep, rtol=1e-5, atol=1e-5)
    for name in ga:
        torch.testing.assert_close(gb[name], ga[name], rtol=1e-4, atol=1e-6, msg=name)


def test_under_bf16_autocast_the_kernel_takes_the_call(monkeypatch):
    """Under bf16 autocast (model.mixed_precision: bf16) the rotated q/k come out fp32 and v bf16: the kernel takes
    the call with all three in bf16, as SDPA would cast them, instead of leaving it to SDPA; logits and gradients
    as SDPA's under the same autocast, to bf16 precision."""
    _kernel_or_skip()
    import transformers.integrations.sdpa_attention as sdpa_module

    ids = torch.randint(3, 50, (4, 14))
    attn = torch.ones_like(ids)
    attn[1, 10:] = 0
    sdpa = _qwen2().train()
    sdpa.set_attn_implementation("sdpa")
    ours = _qwen2().train()
    assert set_attention(ours, "auto") == "rlvr"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        la, ga = _logits_and_grads(sdpa, ids, attn)

    def refuse(*a, **k):
        raise AssertionError("the kernel left a bf16-autocast call to SDPA")

    monkeypatch.setattr(sdpa_module, "sdpa_attention_forward", refuse)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lb, gb = _logits_and_grads(ours, ids, attn)
    keep = attn[:, START + 1:, None].bool()
    torch.testing.assert_close(lb * keep, la * keep, rtol=0, atol=2e-2)
    for name in ga:
        scale = float(ga[name].abs().max())
        torch.testing.assert_close(gb[name], ga[name], rtol=0, atol=5e-2 * scale, msg=name)


def test_calls_it_cannot_take_go_to_sdpa():
    """A dtype the kernel does not take (float64 here) runs transformers' SDPA unchanged: the same logits."""
    _kernel_or_skip()
    ids = torch.randint(3, 50, (2, 9))
    models = []
    for choice in ("sdpa", "rlvr"):
        m = _qwen2().to(torch.float64).eval()
        set_attention(m, choice)
        models.append(m)
    with torch.no_grad():
        a, b = (m(input_ids=ids).logits for m in models)
    assert torch.equal(a, b)


def test_choices_are_checked(monkeypatch):
    import rlvr.kernels as kernels

    with pytest.raises(UserError, match="auto, rlvr, sdpa or eager"):
        set_attention(_qwen2(), "flash")
    assert set_attention(_qwen2(), "eager") == "eager"
    monkeypatch.setattr(kernels, "_state", {"module": None})  # as on a machine without a compiler
    with pytest.raises(UserError, match="needs a CPU model and a C\\+\\+ compiler"):
        set_attention(_qwen2(), "rlvr")
    assert set_attention(_qwen2(), "auto") in ("sdpa", "default")  # auto: the model's own
