"""The trainer's per-token passes compute only the response columns and match a full forward."""

import torch

from rlvr.algo import entropy_from_logits, token_logp_from_logits
from rlvr.trainer.passes import forward_logp, response_start
from rlvr.trainer.rollout import Rollout, pad_batch


def test_forward_logp_on_response_columns_equals_the_full_forward(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    torch.manual_seed(0)
    rollouts = []
    for i, (p, r) in enumerate([(9, 5), (6, 8), (12, 3)]):  # different prompt and response lengths
        ids = torch.randint(5, 90, (p + r,)).tolist()
        rollouts.append(Rollout(0, i, i, f"x/{i}", ids[:p], ids[p:], "", "stop", [0.0] * r))
    batch = pad_batch(rollouts, tok.pad_token_id)
    assert response_start(batch) == 5  # the shortest prompt (6 tokens) predicts its first response token at 5
    logp, ent = forward_logp(model, batch, temperature=0.7, micro=2, with_entropy=True)
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    ref = token_logp_from_logits(full, batch["input_ids"][:, 1:], 0.7)
    mask = batch["response_mask"].bool()
    torch.testing.assert_close(logp[mask], ref[mask], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent[mask], entropy_from_logits(full, 0.7)[mask], rtol=1e-5, atol=1e-5)
    assert logp.shape == ref.shape and ent.shape == ref.shape


def _rollouts(shapes, seed=0):
    torch.manual_seed(seed)
    out = []
    for i, (p, r) in enumerate(shapes):
        ids = torch.randint(5, 90, (p + r,)).tolist()
        out.append(Rollout(0, i, i, f"x/{i}", ids[:p], ids[p:], "", "stop", [-1.0] * r, reward=float(i % 2)))
    return out


def test_micro_batches_group_rows_by_length_and_trim_padding(tiny_model_and_tokenizer):
    from rlvr.trainer.passes import micro_batches

    _, tok = tiny_model_and_tokenizer
    shapes = [(9, 5), (6, 8), (12, 3), (7, 20), (8, 1)]  # lengths 14, 14, 15, 27, 9
    batch = pad_batch(_rollouts(shapes), tok.pad_token_id)
    mbs = micro_batches(batch, range(0, 5), 2)
    assert len(mbs) == 3  # ceil(5 / 2), as without sorting
    assert [idx.tolist() for idx, _, _ in mbs] == [[3, 2], [0, 1], [4]]  # longest first, ties in row order
    assert [L for _, _, L in mbs] == [27, 14, 9]
    assert [c0 for _, c0, _ in mbs] == [6, 5, 7]  # first response prediction column of the micro-batch's rows
    for idx, c0, L in mbs:
        assert int(batch["attention_mask"][idx, L:].sum()) == 0  # only padding is cut off
        assert int(batch["response_mask"][idx, :c0].sum()) == 0
    # a mini-batch's rows stay in that mini-batch
    assert sorted(i for idx, _, _ in micro_batches(batch, range(2, 5), 2) for i in idx.tolist()) == [2, 3, 4]
    # a token cap: at most 40 padded tokens (rows x longest row), so 1 row of 27 at a time, hence 5 passes;
    # a cap of 60 allows 2 rows of the longest length, and no cap leaves 4 rows per pass
    for cap, n in ((40, 5), (60, 3), (0, 2)):
        mbs = micro_batches(batch, range(0, 5), 4, cap)
        assert len(mbs) == n and sorted(i for idx, _, _ in mbs for i in idx.tolist()) == [0, 1, 2, 3, 4]
        if cap:
            assert all(len(idx) * L <= cap for idx, _, L in mbs)
    assert len(micro_batches(batch, range(0, 5), 4, 10)) == 5  # a row longer than the cap goes alone


def test_update_gradient_does_not_depend_on_micro_batch_size(tiny_model_and_tokenizer):
    """Sorted, trimmed micro-batches accumulate the gradient of the whole batch's loss: one micro-batch
    of 5 rows, micro-batches of 2 rows and of at most 30 tokens give the same update, for each loss
    aggregation."""
    import copy

    from rlvr.trainer.config import TrainConfig
    from rlvr.trainer.loop import update_policy

    model, tok = tiny_model_and_tokenizer
    batch = pad_batch(_rollouts([(9, 5), (6, 8), (12, 3), (7, 20), (8, 1)], seed=1), tok.pad_token_id)
    adv = torch.tensor([1.0, -0.5, 0.3, -1.0, 0.7])
    ref = torch.zeros_like(batch["response_mask"]) - 4.0
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"):
        grads = []
        for micro, cap in ((5, 0), (2, 0), (5, 30)):
            cfg = TrainConfig()
            cfg.optim.micro_batch_seqs, cfg.optim.micro_batch_tokens = micro, cap
            cfg.algo.loss_agg_mode, cfg.algo.kl_coef = mode, 0.1
            m = copy.deepcopy(model)
            opt = torch.optim.SGD(m.parameters(), lr=0.0)
            update_policy(cfg, m, opt, batch, adv, batch["sampling_logp"], ref, on_policy=True)
            grads.append(torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]))
        assert grads[0].abs().sum() > 0
        for g in grads[1:]:
            torch.testing.assert_close(g, grads[0], rtol=1e-4, atol=1e-6)


def _grouped_batch(tok, seed=0):
    """Two GRPO-like groups (prompts of 9 and 11 tokens, 3 samples each) and one lone prompt of 10 tokens,
    responses of different lengths, right-padded."""
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(5, 90, (n,), generator=g).tolist() for n in (9, 11, 10)]
    rollouts = []
    for i, (pi, r) in enumerate([(0, 5), (0, 12), (0, 3), (1, 7), (1, 7), (1, 2), (2, 9)]):
        resp = torch.randint(5, 90, (r,), generator=g).tolist()
        rollouts.append(Rollout(pi, i, pi, f"x/{pi}", prompts[pi], resp, "", "stop", [-1.0] * r, reward=float(i % 2)))
    return pad_batch(rollouts, tok.pad_token_id)


def test_a_shared_prompt_prefix_gives_the_full_passes_log_probs_and_gradients(tiny_model_and_tokenizer):
    from rlvr.trainer.passes import policy_logits, shared_prefix

    model, tok = tiny_model_and_tokenizer
    batch = _grouped_batch(tok)
    ids, attn, plen = batch["input_ids"], batch["attention_mask"], batch["prompt_len"]
    n, uniq, inverse = shared_prefix(ids, plen)
    assert n == 8 and uniq.shape == (3, 8)  # the shortest prompt less one; three distinct prompts
    assert torch.equal(uniq[inverse], ids[:, :8])
    c0 = response_start(batch)
    mask = batch["response_mask"][:, c0:].bool()
    model.train()
    results, calls = [], []
    hook = model.register_forward_hook(lambda m, args, kwargs, out: calls.append(kwargs["input_ids"].shape), with_kwargs=True)
    for share in (False, True):
        model.zero_grad(set_to_none=True)
        calls.clear()
        logits = policy_logits(model, ids, attn, c0, plen if share else None)
        assert calls == ([ids.shape] if not share else [(3, 8), (7, ids.shape[1] - 8)])  # prefixes once, then the rest
        logp = token_logp_from_logits(logits, ids[:, c0 + 1:], 1.0)
        (logp * mask).sum().backward()
        results.append((logp.detach()[mask], {k: p.grad.clone() for k, p in model.named_parameters()}))
    model.gradient_checkpointing_enable()  # transformers keeps no cache then: one plain pass, no wasted prefix run
    calls.clear()
    policy_logits(model, ids, attn, c0, plen)
    assert calls == [ids.shape]
    model.gradient_checkpointing_disable()
    hook.remove()
    (lp0, g0), (lp1, g1) = results
    torch.testing.assert_close(lp1, lp0, rtol=1e-5, atol=1e-5)
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-4, atol=1e-6)
    model.zero_grad(set_to_none=True)
    # and through forward_logp with micro-batches, without gradients
    a, _ = forward_logp(model, batch, temperature=0.7, micro=4, with_entropy=False)
    b, _ = forward_logp(model, batch, temperature=0.7, micro=4, with_entropy=False, share_prefix=True)
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_shared_prefix_is_used_only_where_it_saves_tokens(tiny_model_and_tokenizer):
    from rlvr.trainer.passes import shared_prefix

    _, tok = tiny_model_and_tokenizer
    distinct = pad_batch(_rollouts([(9, 5), (6, 8), (12, 3)]), tok.pad_token_id)
    assert shared_prefix(distinct["input_ids"], distinct["prompt_len"]) is None  # no two prompts alike
    one = pad_batch(_rollouts([(9, 5)]), tok.pad_token_id)
    assert shared_prefix(one["input_ids"], one["prompt_len"]) is None
    p = torch.arange(5, 9).tolist()
    long_resp = pad_batch([Rollout(0, i, 0, "x/0", p, [7] * 200, "", "length", []) for i in range(2)], tok.pad_token_id)
    assert shared_prefix(long_resp["input_ids"], long_resp["prompt_len"]) is None  # 3 of 408 tokens saved
    assert shared_prefix(long_resp["input_ids"], long_resp["prompt_len"], min_saving=0.0)[0] == 3


def test_a_shared_prefix_cache_is_gathered_to_the_rows_with_summed_gradients():
    """The distinct prefixes' KV cache is repeated to the rows by `_GatherRows` (values and gradients as the
    indexing op's, in fp32: repeated rows' gradients summed)."""
    from transformers.cache_utils import DynamicCache

    from rlvr.trainer.passes import _rows_of_cache

    torch.manual_seed(0)
    k, v = torch.randn(3, 2, 5, 4, requires_grad=True), torch.randn(3, 2, 5, 4, requires_grad=True)
    index = torch.tensor([0, 0, 2, 1, 1, 1, 2])
    cache = DynamicCache()
    cache.update(k * 1.0, v * 1.0, 0)
    _rows_of_cache(cache, index)
    layer = cache.layers[0]
    assert type(layer.keys.grad_fn).__name__ == "_GatherRowsBackward" and torch.equal(layer.keys, k[index])
    g = torch.randn(7, 2, 5, 4)
    gk, gv = torch.autograd.grad((layer.keys * g).sum() + (layer.values * g).sum(), (k, v))
    want = torch.autograd.grad((k[index] * g).sum(), k)[0]
    torch.testing.assert_close(gk, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(gv, want, rtol=0, atol=1e-6)
