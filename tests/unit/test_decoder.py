"""rlvr.decoder's static-KV-cache forward gives transformers' logits, step by step, with left padding."""

import warnings

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rlvr.decoder import StaticDecoder, supports


def _qwen2():
    cfg = Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, tie_word_embeddings=True)
    m = Qwen2ForCausalLM(cfg).eval()
    for name, p in m.named_parameters():  # q/k/v biases are zero at init; make them matter
        if name.endswith("bias"):
            torch.nn.init.normal_(p, std=0.5)
    return m


def _llama_gqa():
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, rope_theta=500.0)
    return LlamaForCausalLM(cfg).eval()


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])  # cuda: on a GPU machine


def _steps_agree(a: StaticDecoder, b: StaticDecoder, rows: int, steps: int, tol: float, drop=None, device="cpu"):
    """Feed both decoders the same random tokens for `steps` steps and compare their logits; drop = (step,
    kept rows): both keep those rows from that step on."""
    for t in range(steps):
        if drop is not None and t == drop[0]:
            a.keep(drop[1])
            b.keep(drop[1])
            rows = len(drop[1])
        nxt = torch.randint(3, 50, (rows,), device=device)
        torch.testing.assert_close(a.step(nxt), b.step(nxt), rtol=tol, atol=tol)
    return rows


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make", [_qwen2, _llama_gqa], ids=["qwen2-bias", "llama-gqa"])
@pytest.mark.parametrize("rows", [None, [0, 1, 0, 0, 1], [1, 1, 1, 0, 0, 0]], ids=["distinct", "scattered", "groups"])
@pytest.mark.parametrize("cpu_kernel", [True, False], ids=["kernel", "torch-ops"])
def test_prefill_and_steps_match_transformers(make, device, rows, cpu_kernel):
    if cpu_kernel and device != "cpu":
        pytest.skip("the C++ attention kernel is for CPU decoding")
    torch.manual_seed(0)
    model = make().to(device)
    assert supports(model)
    B, L, N = 3, 6, 5
    ids = torch.randint(3, 50, (B, L)).to(device)
    attn = torch.ones(B, L, dtype=torch.long, device=device)
    attn[0, :3] = 0  # left padding of different lengths
    attn[1, :1] = 0
    ids[attn == 0] = 0
    if rows:  # rows sharing prompts: each distinct prompt is prefilled once; consecutive groups of equal
        ids, attn, B = ids[rows], attn[rows], len(rows)  # size also share the prompt's keys in decode steps
    dec = StaticDecoder(model, B, L + N, cpu_kernel=cpu_kernel)
    if cpu_kernel and dec.kernel is None:
        pytest.skip("rlvr's C++ kernel could not be built on this machine (see the warning)")
    rows_run = []
    real_forward = dec._forward
    dec._forward = lambda ids_, *a, **k: (rows_run.append(ids_.shape[0]), real_forward(ids_, *a, **k))[1]
    logits = dec.prefill(ids, attn)
    assert rows_run == [2 if rows else B]
    assert (dec.shared is not None) == (rows == [1, 1, 1, 0, 0, 0] and device == "cpu")  # exact mode only
    seq, mask = ids, attn
    for _ in range(N):
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            ref = model(input_ids=seq, attention_mask=mask, position_ids=pos).logits[:, -1]
        tol = 1e-5 if device == "cpu" else 1e-4
        torch.testing.assert_close(logits, ref, rtol=tol, atol=tol)
        nxt = torch.randint(3, 50, (B,)).to(device)
        seq = torch.cat([seq, nxt[:, None]], 1)
        mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.long, device=device)], 1)
        logits = dec.step(nxt)


def test_unsupported_models_are_declined():
    from transformers import GPT2Config, GPT2LMHeadModel

    assert not supports(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=20)))
    biased_mlp = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                             num_attention_heads=4, mlp_bias=True)
    assert not supports(LlamaForCausalLM(biased_mlp))  # the decoder's MLP has no biases: transformers' forward runs it


@pytest.mark.parametrize("make", [_qwen2, _llama_gqa], ids=["qwen2-bias", "llama-gqa"])
def test_span_steps_match_exact_steps(make):
    """The graph-ready step (device write index, fixed attention span, rope table) is the exact step:
    across a span boundary, with left padding, and after rows are dropped."""
    torch.manual_seed(0)
    model = make()
    B, L, N = 4, 5, 11
    ids = torch.randint(3, 50, (B, L))
    attn = torch.ones(B, L, dtype=torch.long)
    attn[0, :2] = 0
    ids[attn == 0] = 0
    exact = StaticDecoder(model, B, L + N, mode="exact", cpu_kernel=False)  # the same torch ops
    span = StaticDecoder(model, B, L + N, mode="span", span_block=4)  # spans 8, 12, 16 over the run
    torch.testing.assert_close(span.prefill(ids, attn), exact.prefill(ids, attn), rtol=0, atol=0)
    rows = _steps_agree(span, exact, B, N, 1e-6, drop=(6, torch.tensor([3, 0, 2])))
    with pytest.raises(IndexError, match="all are filled"):
        span.step(torch.zeros(rows, dtype=torch.long))


@pytest.mark.parametrize("mode", ["exact", "span"])
def test_compiled_steps_match_plain_steps(mode):
    """compile=True runs a decode step's per-layer pieces through torch.compile: the same logits, with
    grouped prompts (shared keys in exact mode), left padding and dropped rows."""
    torch.manual_seed(0)
    model = _llama_gqa()
    B, L, N = 6, 5, 9
    ids = torch.randint(3, 50, (B // 2, L)).repeat_interleave(2, 0)
    attn = torch.ones(B, L, dtype=torch.long)
    attn[:2, :2] = 0
    ids[attn == 0] = 0
    plain = StaticDecoder(model, B, L + N, mode=mode)
    fast = StaticDecoder(model, B, L + N, mode=mode, compile=True)
    with torch.inference_mode():
        torch.testing.assert_close(fast.prefill(ids, attn), plain.prefill(ids, attn), rtol=0, atol=0)  # prefill: not compiled
        _steps_agree(fast, plain, B, N, 1e-5, drop=(5, torch.tensor([4, 0, 3])))
    if fast._pre_step.compiled is None:
        pytest.skip("torch.compile is not available on this machine (the decoder fell back to eager, with a warning)")


def test_a_failed_compile_falls_back_to_eager_with_a_warning():
    from rlvr.decoder import _Compiled

    def fn(x):
        torch._dynamo.graph_break()  # fullgraph=True cannot compile this
        return x * 2

    f = _Compiled(fn)
    with pytest.warns(UserWarning, match="decoding eagerly"):
        assert torch.equal(f(torch.ones(3)), torch.full((3,), 2.0))
    assert f.compiled is None and torch.equal(f(torch.ones(2)), torch.full((2,), 2.0))  # eager from then on


def test_shared_prompt_attention_survives_dropping_rows():
    """Groups of 4 rows share a prompt (keys read once per group); after rows are dropped, each row reads its
    own copy: the logits are those of a decoder that never shares, throughout."""
    torch.manual_seed(0)
    model = _llama_gqa()
    L, N = 6, 8
    prompts = torch.randint(3, 50, (3, L))
    prompts[2, :2] = 0
    ids = prompts.repeat_interleave(4, 0)  # 12 rows, 3 groups
    attn = (ids != 0).long()
    shared = StaticDecoder(model, 12, L + N)
    plain = StaticDecoder(model, 12, L + N, share_prompts=False)
    torch.testing.assert_close(shared.prefill(ids, attn), plain.prefill(ids, attn), rtol=1e-6, atol=1e-6)
    assert shared.shared is not None and shared.shared["k"][0].shape[0] == 3 and plain.shared is None
    _steps_agree(shared, plain, 12, N - 1, 1e-5, drop=(4, torch.tensor([0, 5, 6, 11, 2])))
    assert shared.shared is None


def _grouped_batch(L: int) -> tuple[torch.Tensor, torch.Tensor]:
    """12 rows in 3 groups of 4 sharing a random prompt of L tokens, the second group's left-padded by 3:
    ids, attention mask."""
    prompts = torch.randint(3, 50, (3, L))
    prompts[1, :3] = 0
    ids = prompts.repeat_interleave(4, 0)
    return ids, (ids != 0).long()


def _kernel_or_skip():
    from rlvr.kernels import decode_attention

    op = decode_attention()
    if op is None:
        pytest.skip("rlvr's C++ kernel could not be built on this machine (see the warning)")
    return op


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_decoding_matches_torch_op_decoding(dtype):
    """The C++ attention step against the torch-ops step: groups sharing prompts, left padding, dropped
    rows (after which each row reads its own prompt copy), in fp32 and bf16 (fp32 accumulation both)."""
    _kernel_or_skip()
    torch.manual_seed(0)
    model = _llama_gqa().to(dtype)
    L, N = 7, 12
    ids, attn = _grouped_batch(L)
    fast = StaticDecoder(model, 12, L + N)
    plain = StaticDecoder(model, 12, L + N, cpu_kernel=False)
    assert fast.kernel is not None and plain.kernel is None and fast.k.shape[-1] == 16  # keys in transposed blocks
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(fast.prefill(ids, attn), plain.prefill(ids, attn), rtol=tol, atol=tol)
    assert fast.shared is not None
    _steps_agree(fast, plain, 12, N - 1, tol, drop=(5, torch.tensor([0, 5, 6, 11, 2])))


@pytest.mark.parametrize("cpu_kernel", [True, False], ids=["kernel", "torch-ops"])
def test_a_bf16_kv_cache_under_an_fp32_model(cpu_kernel):
    """kv_dtype=bfloat16: keys and values cached rounded to bf16, the arithmetic fp32. The kernel and torch ops
    read the same rounded cache (they agree to fp32 rounding); against the fp32 cache the logits move by about
    bf16's precision, with grouped prompts, left padding and dropped rows."""
    if cpu_kernel:
        _kernel_or_skip()
    torch.manual_seed(0)
    model = _llama_gqa()
    L, N = 7, 10
    ids, attn = _grouped_batch(L)
    narrow = StaticDecoder(model, 12, L + N, kv_dtype=torch.bfloat16, cpu_kernel=cpu_kernel)
    same = StaticDecoder(model, 12, L + N, kv_dtype=torch.bfloat16, cpu_kernel=not cpu_kernel)
    wide = StaticDecoder(model, 12, L + N, cpu_kernel=cpu_kernel)
    assert narrow.k.dtype == narrow.v.dtype == torch.bfloat16 and wide.k.dtype == torch.float32
    a, b, c = (d.prefill(ids, attn) for d in (narrow, same, wide))
    torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)  # prefill attends over its own, unrounded k/v
    for t in range(N - 1):
        if t == 4:
            for d in (narrow, same, wide):
                d.keep(torch.tensor([0, 5, 6, 11, 2]))
        nxt = torch.randint(3, 50, (12 if t < 4 else 5,))
        a, b, c = narrow.step(nxt), same.step(nxt), wide.step(nxt)
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(a, c, rtol=0, atol=3e-2)
    assert (a - c).abs().max() > 0  # the cache really is narrower
    with pytest.raises(ValueError, match="kv_dtype"):
        StaticDecoder(model, 2, 8, kv_dtype=torch.int8)
    with pytest.raises(ValueError, match="under an fp32 model"):
        StaticDecoder(model.to(torch.bfloat16), 2, 8, kv_dtype=torch.float16)


@pytest.mark.parametrize("head_dim", [32, 40])  # a size the kernel is compiled for, and the generic loop
@pytest.mark.parametrize("cache_dtype", [torch.float32, torch.bfloat16])  # bf16: fp32 queries, narrow cache
def test_kernel_op_writes_the_cache_and_attends_like_torch_ops(head_dim, cache_dtype):
    from rlvr.decoder import _attend, _attend_shared, _bias, _blocked

    op = _kernel_or_skip()
    torch.manual_seed(0)
    B, H, Hkv, P, Lc, U = 6, 6, 2, 9, 37, 2
    q = torch.randn(B, H, 1, head_dim)
    pk, pv = torch.randn(U, Hkv, P, head_dim), torch.randn(U, Hkv, P, head_dim)
    pmask = torch.ones(U, P, dtype=torch.bool)
    pmask[1, :4] = False
    k, v = torch.randn(B, Hkv, Lc, head_dim), torch.randn(B, Hkv, Lc, head_dim)
    valid = torch.ones(B, Lc, dtype=torch.bool)
    valid[2, :5] = False
    scale = head_dim ** -0.5
    rk, rv, rpk, rpv = (x.to(cache_dtype).float() for x in (k, v, pk, pv))  # what the cache holds
    no_pk, no_pv = torch.zeros(1, Hkv, 0, head_dim, 16, dtype=cache_dtype), torch.zeros(1, Hkv, 0, head_dim, dtype=cache_dtype)
    for pos in (P, 15, 16, Lc - 1):  # block boundaries; the cache holds [0, pos), the call writes pos
        kc = _blocked(torch.cat([k[:, :, :pos], torch.zeros_like(k[:, :, pos:])], 2)).to(cache_dtype)
        vc = v.clone()
        vc[:, :, pos:] = 0
        vc = vc.to(cache_dtype)
        got = op(q.view(B, H, head_dim), k[:, :, pos], v[:, :, pos], _blocked(pk).to(cache_dtype), pv.to(cache_dtype),
                 pmask, kc, vc, valid, P, pos, scale)
        assert got.dtype == torch.float32
        want = _attend_shared(q, rpk, rpv, _bias(pmask), rk[:, :, P:pos + 1], rv[:, :, P:pos + 1], scale)
        torch.testing.assert_close(got.view(B, H, 1, head_dim), want, rtol=1e-5, atol=1e-5)
        written = torch.cat([k[:, :, :pos + 1], torch.zeros_like(k[:, :, pos + 1:])], 2)
        assert torch.equal(kc, _blocked(written).to(cache_dtype)) and torch.equal(vc[:, :, pos], v[:, :, pos].to(cache_dtype))
        # no shared prompt: every position from 0, with the row's padding masked
        got = op(q.view(B, H, head_dim), k[:, :, pos], v[:, :, pos], no_pk, no_pv, torch.zeros(1, 0, dtype=torch.bool),
                 kc, vc, valid, 0, pos, scale)
        want = _attend(q, rk[:, :, :pos + 1], rv[:, :, :pos + 1], _bias(valid[:, None, None, :pos + 1]), scale)
        torch.testing.assert_close(got.view(B, H, 1, head_dim), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="whole units"):
        op(q.view(B, H, head_dim), k[:, :, 0], v[:, :, 0], torch.zeros(4, Hkv, 0, head_dim, 16, dtype=cache_dtype),
           torch.zeros(4, Hkv, 0, head_dim, dtype=cache_dtype), torch.zeros(4, 0, dtype=torch.bool), kc, vc, valid, 0, 3, scale)
    with pytest.raises(RuntimeError, match="same dtype"):  # bf16 queries over an fp32 cache: not a supported pair
        op(q.view(B, H, head_dim).bfloat16(), k[:, :, 0].bfloat16(), v[:, :, 0].bfloat16(), no_pk.float(), no_pv.float(),
           torch.zeros(1, 0, dtype=torch.bool), kc.float(), vc.float(), valid, 0, 3, scale)


def _llama_biased_generic_head():
    """q/k/v and o biases (attention_bias), head size 40 (the kernel's generic loop), 2 query heads per KV head."""
    cfg = LlamaConfig(vocab_size=50, hidden_size=80, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, head_dim=40, attention_bias=True)
    m = LlamaForCausalLM(cfg).eval()
    for name, p in m.named_parameters():
        if name.endswith("bias"):
            torch.nn.init.normal_(p, std=0.5)
    return m


def _qwen2_ragged():
    """Widths that are not multiples of the packed weights' 32-column panels (q/k/v 528, o 264, gate/up 600) and
    products over more than 256 inputs (264, 300: two blocks of the panel product's in-register sums)."""
    cfg = Qwen2Config(vocab_size=50, hidden_size=264, intermediate_size=300, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg).eval()


@pytest.mark.parametrize("make", [_qwen2, _llama_gqa, _llama_biased_generic_head, _qwen2_ragged],
                         ids=["qwen2", "llama-gqa", "llama-bias-40", "qwen2-ragged"])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("kv_dtype", [None, torch.bfloat16], ids=["fp32-cache", "bf16-cache"])
def test_fused_decode_step_matches_torch_ops(make, threads, kv_dtype):
    """An fp32 model decodes each step in C++ over every layer (`decode_layers`, each thread its own block of
    rows): the same logits as the torch-ops step, for groups sharing prompts, left padding, dropped rows (an odd
    count, so the threads' blocks differ in size), any thread count, a narrow cache; prefill stays in torch ops."""
    _kernel_or_skip()
    torch.manual_seed(0)
    model = make()
    L, N = 7, 12
    ids, attn = _grouped_batch(L)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fused = StaticDecoder(model, 12, L + N, kv_dtype=kv_dtype)
        plain = StaticDecoder(model, 12, L + N, kv_dtype=kv_dtype, cpu_kernel=False)
        assert fused.fused is not None and plain.fused is None
        torch.testing.assert_close(fused.prefill(ids, attn), plain.prefill(ids, attn), rtol=1e-5, atol=1e-5)
        assert fused.shared is not None
        # a narrow cache: the two paths' keys and values can differ in their last fp32 bit, which now and then rounds
        # one to the neighbouring bf16 value (the attention op itself is compared on equal inputs above)
        tol = 1e-5 if kv_dtype is None else 5e-4
        _steps_agree(fused, plain, 12, N - 1, tol, drop=(5, torch.tensor([0, 5, 6, 11, 2])))
    finally:
        torch.set_num_threads(before)


def test_fused_step_only_for_fp32_models_and_checks_its_inputs():
    _kernel_or_skip()
    from rlvr.kernels import decode_layers

    model = _qwen2()
    assert StaticDecoder(model, 2, 8).fused is not None
    bf16 = StaticDecoder(_qwen2().to(torch.bfloat16), 2, 8)
    assert bf16.kernel is not None and bf16.fused is None  # bf16 models: the attention kernel, layers in torch ops
    dec = StaticDecoder(model, 2, 8)
    dec.prefill(torch.randint(3, 50, (2, 3)), torch.ones(2, 3, dtype=torch.long))
    no_pk, no_pv, no_mask = dec._no_prompt
    args = [torch.randn(2, 32), dec._flat, dec.norm_w, *dec.rope_table, dec.pos, 4, dec.eps, [no_pk] * 2, [no_pv] * 2,
            no_mask, dec.k, dec.v, dec.valid, 0, 3, dec.scale]
    assert decode_layers()(*args).shape == (2, 32)
    bad = list(args)
    qkv = dec._flat[9]  # layer 1's q/k/v weight (packed or not), one input column short
    bad[1] = dec._flat[:9] + [qkv.narrow(1, 0, qkv.shape[1] - 1).contiguous()] + dec._flat[10:]
    with pytest.raises(RuntimeError, match="layer 1's weights have unexpected shapes"):
        decode_layers()(*bad)
    plain = list(args)  # the projection weights as nn.Linear holds them: ATen's products, the same step
    none = torch.zeros(0)
    plain[1] = [t if t is not None else none for w in dec.layers
                for t in (w["ln1"], w["qkv_w"], w["qkv_b"], w["o_w"], w["o_b"], w["ln2"], w["gu_w"], w["down_w"])]
    torch.testing.assert_close(decode_layers()(*plain), decode_layers()(*args), rtol=1e-5, atol=1e-5)
    bad = list(args)
    bad[0] = torch.randn(2, 32).bfloat16()
    with pytest.raises(RuntimeError, match="float32"):
        decode_layers()(*bad)
    bad = list(args)
    bad[5] = torch.tensor([0, 99])
    with pytest.raises(RuntimeError, match="outside the rotary table"):
        decode_layers()(*bad)


def test_packed_weights_are_panels_of_32_output_columns():
    """pack_panels lays (N, K) out as (ceil(N / 32), K, 32), zero-padded (on CPUs with AVX-512; elsewhere the
    weight comes back as it is and the step multiplies by it directly)."""
    _kernel_or_skip()
    from rlvr.kernels import pack_panels

    w = torch.randn(70, 9)
    p = pack_panels()(w)
    if p.dim() == 2:
        assert p is w
        return
    assert p.shape == (3, 9, 32)
    padded = torch.cat([w, torch.zeros(26, 9)])
    for n in range(96):
        assert torch.equal(p[n // 32, :, n % 32], padded[n])


def test_without_a_compiler_the_decoder_warns_once_and_uses_torch_ops(monkeypatch):
    import rlvr.kernels as kernels

    def no_compiler():
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setattr(kernels, "_build", no_compiler)
    with pytest.warns(UserWarning, match="decoding with torch ops instead"):
        dec = StaticDecoder(_qwen2(), 2, 8)
    assert dec.kernel is None and dec.k.shape[-2:] == (8, 8)  # keys in the torch ops' layout (positions, head_dim)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tried once per process: no second warning
        assert StaticDecoder(_qwen2(), 2, 8).kernel is None
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setenv("RLVR_NATIVE", "0")
    assert kernels.decode_attention() is None


def test_decoder_modes_are_checked():
    model = _qwen2()
    with pytest.raises(ValueError, match="exact, span or graph"):
        StaticDecoder(model, 1, 4, mode="fast")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA device"):
            StaticDecoder(model, 1, 4, mode="graph")
    assert StaticDecoder(model, 1, 4).mode == "exact"  # auto on CPU
    dynamic = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                           num_attention_heads=4, rope_parameters={"rope_type": "dynamic", "factor": 2.0,
                                                                                   "rope_theta": 10000.0}))
    dec = StaticDecoder(dynamic, 1, 4)  # cos/sin depend on the length seen: per-step rotary, no graphs
    assert dec.mode == "exact" and dec.rope_table is None
    with pytest.raises(ValueError, match="position-only rope"):
        StaticDecoder(dynamic, 1, 4, mode="span")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("make,compile", [(_qwen2, False), (_llama_gqa, False), (_llama_gqa, True)],
                         ids=["qwen2-bias", "llama-gqa", "llama-gqa-compiled"])
def test_cuda_graph_steps_match_exact_steps(make, compile):
    torch.manual_seed(0)
    model = make().cuda()
    B, L, N = 4, 5, 20
    ids = torch.randint(3, 50, (B, L), device="cuda")
    attn = torch.ones(B, L, dtype=torch.long, device="cuda")
    attn[1, :3] = 0
    ids[attn == 0] = 0
    exact = StaticDecoder(model, B, L + N, mode="exact")
    graph = StaticDecoder(model, B, L + N, mode="graph", span_block=8, compile=compile)
    assert StaticDecoder(model, B, L + N).mode == "graph"  # auto on CUDA
    with torch.inference_mode():
        torch.testing.assert_close(graph.prefill(ids, attn), exact.prefill(ids, attn))
        _steps_agree(graph, exact, B, N - 1, 1e-4, device="cuda")
    assert len(graph._graphs) == 3  # spans 8, 16, 24: one recording each, replayed after
    assert not compile or graph._pre_step.compiled is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_generate_with_cuda_graphs_samples_what_eager_decoding_samples():
    from rlvr.generation import SamplingConfig, generate
    from rlvr.utils.tiny_models import make_char_tokenizer

    tok = make_char_tokenizer(chat_template=None)
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, eos_token_id=tok.eos_token_id)
    model = Qwen2ForCausalLM(cfg).cuda()
    prompts = ["1+1=", "Compute 12*3.", "x"] * 3
    outs = [generate(model, tok, prompts, SamplingConfig(max_new_tokens=40, temperature=1.0, cuda_graphs=g), return_logp=True)
            for g in (False, True)]
    assert [g.response_ids for g in outs[0]] == [g.response_ids for g in outs[1]]
    for a, b in zip(*outs):
        torch.testing.assert_close(torch.tensor(a.logp), torch.tensor(b.logp), rtol=1e-4, atol=1e-4)
