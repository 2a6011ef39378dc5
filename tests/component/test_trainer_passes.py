"""The trainer's per-token passes compute only the response columns and match a full forward."""

import torch

from rlvr.algo import token_logp_from_logits
from rlvr.trainer.loop import forward_logp, response_start
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
    assert logp.shape == ref.shape and ent.shape == ref.shape


def _rollouts(shapes, seed=0):
    torch.manual_seed(seed)
    out = []
    for i, (p, r) in enumerate(shapes):
        ids = torch.randint(5, 90, (p + r,)).tolist()
        out.append(Rollout(0, i, i, f"x/{i}", ids[:p], ids[p:], "", "stop", [-1.0] * r, reward=float(i % 2)))
    return out


def test_micro_batches_group_rows_by_length_and_trim_padding(tiny_model_and_tokenizer):
    from rlvr.trainer.loop import micro_batches

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
