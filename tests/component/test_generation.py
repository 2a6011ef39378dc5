import pytest
import torch

from rlvr.generation import SamplingConfig, generate

PROMPTS = ["Q: Compute 12+35*2.\nA: "] * 3 + ["Q: hi\nA: "] * 3


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
    ids = torch.tensor([g.prompt_ids + g.response_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(g.prompt_ids) - 1 : -1]
    ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(g.response_ids)[:, None]).squeeze(-1)
    assert torch.allclose(ref, torch.tensor(g.logp), atol=1e-4)


def test_static_decoder_and_transformers_forward_sample_the_same(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    cfgs = [SamplingConfig(max_new_tokens=16, temperature=1.0, top_p=0.95, seed=3, decoder=d) for d in ("static", "hf")]
    a, b = (generate(model, tok, PROMPTS, c, return_logp=True) for c in cfgs)
    assert [g.response_ids for g in a] == [g.response_ids for g in b]
    for ga, gb in zip(a, b):
        assert ga.logp == pytest.approx(gb.logp, abs=1e-4)


def test_ignore_eos_runs_every_response_to_the_limit(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    gens = generate(model, tok, PROMPTS, SamplingConfig(max_new_tokens=24, temperature=1.0, ignore_eos=True))
    assert all(len(g.response_ids) == 24 and g.finish_reason == "length" for g in gens)
    assert all(tok.eos_token_id not in g.response_ids for g in gens)
