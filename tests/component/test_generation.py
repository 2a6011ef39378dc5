import pytest
import torch

from rlvr.generation import SamplingConfig, generate

PROMPTS = ["Q: Compute 12+35*2.\nA: "] * 3 + ["Q: hi\nA: "] * 3


def _full_forward_logp(model, g) -> torch.Tensor:
    """Log-probs of g's response tokens under one forward of the model over prompt + response (temperature 1)."""
    ids = torch.tensor([g.prompt_ids + g.response_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(g.prompt_ids) - 1:-1]
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(g.response_ids)[:, None]).squeeze(-1)


def test_greedy_matches_hf_generate(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    gens = generate(model, tok, PROMPTS[:1] + PROMPTS[-1:], SamplingConfig(max_new_tokens=16, temperature=0))
    for prompt, g in zip(PROMPTS[:1] + PROMPTS[-1:], gens):
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        ref = model.generate(**enc, max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
        ref_new = ref[0, enc.input_ids.shape[1]:].tolist()
        assert g.response_ids == ref_new[: len(g.response_ids)]


def test_sampling_is_seeded_and_batch_invariant(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    cfg = SamplingConfig(max_new_tokens=20, temperature=1.0, top_p=0.9, seed=5)
    a = generate(model, tok, PROMPTS, cfg, batch_size=6)
    b = generate(model, tok, PROMPTS, cfg, batch_size=2)
    c = generate(model, tok, PROMPTS, SamplingConfig(max_new_tokens=20, temperature=1.0, top_p=0.9, seed=6))
    assert [g.response_ids for g in a] == [g.response_ids for g in b]
    assert [g.response_ids for g in a] != [g.response_ids for g in c]


def test_lengths_logp_and_finish(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    gens = generate(model, tok, PROMPTS, SamplingConfig(max_new_tokens=10, temperature=1.0), return_logp=True)
    for g in gens:
        assert len(g.response_ids) <= 10 and len(g.logp) == len(g.response_ids)
        assert all(lp <= 0 for lp in g.logp)
        if g.finish_reason == "stop":
            assert g.response_ids[-1] == tok.eos_token_id
        else:
            assert len(g.response_ids) == 10 and tok.eos_token_id not in g.response_ids
    # the returned log-probs are those of a full forward pass at the sampling temperature
    g = gens[0]
    assert torch.allclose(_full_forward_logp(model, g), torch.tensor(g.logp), atol=1e-4)


def test_static_decoder_and_transformers_forward_sample_the_same(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    cfgs = [SamplingConfig(max_new_tokens=16, temperature=1.0, top_p=0.95, seed=3, decoder=d) for d in ("static", "hf")]
    a, b = (generate(model, tok, PROMPTS, c, return_logp=True) for c in cfgs)
    assert [g.response_ids for g in a] == [g.response_ids for g in b]
    for ga, gb in zip(a, b):
        assert ga.logp == pytest.approx(gb.logp, abs=1e-4)


def test_a_bf16_kv_cache_samples_from_nearly_the_same_policy(tiny_model_and_tokenizer):
    """kv_cache_dtype=bfloat16 under the fp32 model: each returned log-prob is within bf16 rounding of a full fp32
    forward's on the same tokens; a typo is an error that names the choices."""
    model, tok = tiny_model_and_tokenizer
    gens = generate(model, tok, PROMPTS, SamplingConfig(max_new_tokens=16, temperature=1.0, kv_cache_dtype="bfloat16"),
                    return_logp=True)
    for g in gens:
        assert torch.allclose(_full_forward_logp(model, g), torch.tensor(g.logp), atol=5e-2)
    with pytest.raises(ValueError, match="kv_cache_dtype must be one of"):
        generate(model, tok, PROMPTS[:1], SamplingConfig(max_new_tokens=2, kv_cache_dtype="bf16"))


def test_ignore_eos_runs_every_response_to_the_limit(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    gens = generate(model, tok, PROMPTS, SamplingConfig(max_new_tokens=24, temperature=1.0, ignore_eos=True))
    assert all(len(g.response_ids) == 24 and g.finish_reason == "length" for g in gens)
    assert all(tok.eos_token_id not in g.response_ids for g in gens)


def test_sampler_draws_follow_the_distribution_and_depend_only_on_seed_and_step():
    import torch

    from rlvr.generation import sample_from_logits, uniform_noise

    seeds = torch.arange(20000)
    u = uniform_noise(seeds, 3)
    assert 0 < float(u.min()) and float(u.max()) < 1
    # a sequence's draw is the same whatever else is in its batch, and differs between steps
    assert torch.equal(uniform_noise(seeds[5:6], 3), u[5:6])
    assert not torch.equal(uniform_noise(seeds, 4), u)
    logits = torch.tensor([0.0, 1.0, 2.0, float("-inf")]).repeat(len(seeds), 1)
    freq = torch.bincount(sample_from_logits(logits, u), minlength=4).float() / len(seeds)
    torch.testing.assert_close(freq, torch.softmax(logits[0], -1), atol=0.015, rtol=0)
    assert freq[3] == 0  # zero-mass tokens (top-p, banned EOS) are never drawn
