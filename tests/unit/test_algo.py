"""Advantage estimators and loss terms against hand-computed values."""

import math
import random

import pytest
import torch

from rlvr.algo import (
    agg_loss,
    compute_gae_advantages,
    compute_grpo_advantages,
    entropy_from_logits,
    frac_zero_std_groups,
    get_advantage_fn,
    kl_penalty,
    outcome_to_token_rewards,
    ppo_clip_loss,
    token_logp_from_logits,
)
from rlvr.algo.advantages import compute_grpo_advantages_reference
from rlvr.errors import UserError

# 2 prompts x 3 samples: group 0 rewards [1, 0, 0], group 1 rewards [1, 1, 1]
R = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
GRP = torch.tensor([0, 0, 0, 1, 1, 1])


def test_grpo_hand_computed():
    # group 0: mean 1/3, unbiased std sqrt(((2/3)^2 + 2 (1/3)^2) / 2) = sqrt(1/3)
    sd = math.sqrt(1 / 3)
    adv = compute_grpo_advantages(R, GRP)
    expected = [(2 / 3) / (sd + 1e-6), (-1 / 3) / (sd + 1e-6), (-1 / 3) / (sd + 1e-6), 0, 0, 0]
    assert adv.tolist() == pytest.approx(expected, abs=1e-6)


def test_dr_grpo_has_no_std_division():
    adv = compute_grpo_advantages(R, GRP, norm_by_std=False)
    assert adv.tolist() == pytest.approx([2 / 3, -1 / 3, -1 / 3, 0, 0, 0], abs=1e-6)
    assert get_advantage_fn("dr_grpo")(R, GRP).tolist() == pytest.approx(adv.tolist())


def test_groups_need_not_be_adjacent_and_fast_matches_reference():
    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(2, 30)
        rewards = [float(rng.random() < 0.5) for _ in range(n)]
        groups = [rng.randint(0, 4) for _ in range(n)]
        for norm in (True, False):
            fast = compute_grpo_advantages(torch.tensor(rewards), torch.tensor(groups), norm_by_std=norm)
            ref = compute_grpo_advantages_reference(rewards, groups, norm_by_std=norm)
            assert fast.tolist() == pytest.approx(ref, abs=1e-5)


def test_frac_zero_std_groups():
    assert frac_zero_std_groups(R, GRP) == 0.5  # group 1 is all 1s: no signal


def test_unknown_estimator_lists_valid():
    with pytest.raises(UserError, match="grpo"):
        get_advantage_fn("grp")


def test_gae_gamma_lambda_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.2, 0.1], [0.3, 0.4, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = compute_gae_advantages(rewards, values, mask, gamma=1.0, lam=1.0, whiten=False)
    # row 0: reward-to-go [1, 1, 1] - values; row 1 (2 tokens): [1, 1] - values, padding 0
    assert adv[0].tolist() == pytest.approx([0.5, 0.8, 0.9])
    assert adv[1].tolist() == pytest.approx([0.7, 0.6, 0.0])
    assert ret[0].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_gae_discount_hand_computed():
    # one sequence, gamma 0.5, lam 1, values 0: A_t = sum_k 0.5^k r_{t+k}
    adv, _ = compute_gae_advantages(torch.tensor([[0.0, 0.0, 1.0]]), torch.zeros(1, 3), torch.ones(1, 3), 0.5, 1.0, False)
    assert adv[0].tolist() == pytest.approx([0.25, 0.5, 1.0])


def test_outcome_reward_on_last_token():
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    out = outcome_to_token_rewards(torch.tensor([1.0, 2.0]), mask)
    assert out.tolist() == [[0, 0, 1, 0], [0, 0, 0, 2]]


def test_ppo_clip_both_sides():
    old = torch.zeros(1, 4)
    # ratios e^{0.5}=1.65, e^{-0.5}=0.61, e^{0.1}=1.105, e^{-0.1}=0.905
    logp = torch.tensor([[0.5, -0.5, 0.1, -0.1]])
    mask = torch.ones(1, 4)
    pos, st = ppo_clip_loss(logp, old, torch.ones(1), mask, 0.2, 0.2)
    # A>0: min(r, clip(r)) -> 1.2 (clipped), 0.607 (unclipped, below the band the min keeps r), 1.105, 0.905
    assert (-pos).tolist()[0] == pytest.approx([1.2, math.exp(-0.5), math.exp(0.1), math.exp(-0.1)], abs=1e-5)
    assert st["clipfrac"].item() == pytest.approx(0.25)
    neg, _ = ppo_clip_loss(logp, old, -torch.ones(1), mask, 0.2, 0.2)
    # A<0: loss = max(r, clip(r)) -> 1.65 (unclipped), 0.8 (clipped), 1.105, 0.905
    assert neg.tolist()[0] == pytest.approx([math.exp(0.5), 0.8, math.exp(0.1), math.exp(-0.1)], abs=1e-5)


def test_clip_higher_and_dual_clip():
    old = torch.zeros(1, 1)
    logp = torch.tensor([[0.5]])  # ratio 1.6487
    loss, _ = ppo_clip_loss(logp, old, torch.ones(1), torch.ones(1, 1), clip_low=0.2, clip_high=0.28)
    assert -loss.item() == pytest.approx(1.28)
    big = torch.tensor([[2.0]])  # ratio 7.39, negative advantage: unbounded without dual clip
    l1, _ = ppo_clip_loss(big, old, -torch.ones(1), torch.ones(1, 1))
    l2, _ = ppo_clip_loss(big, old, -torch.ones(1), torch.ones(1, 1), dual_clip_c=3.0)
    assert l1.item() == pytest.approx(math.exp(2.0), rel=1e-5) and l2.item() == pytest.approx(3.0)


def test_pg_gradient_sign():
    logp = torch.zeros(1, 1, requires_grad=True)
    loss, _ = ppo_clip_loss(logp, torch.zeros(1, 1), torch.ones(1), torch.ones(1, 1))
    loss.sum().backward()
    assert logp.grad.item() < 0  # raising a positive-advantage token's log-prob lowers the loss


def test_kl_estimators_hand_computed():
    logp, ref = torch.tensor([[-1.0]]), torch.tensor([[-1.5]])  # d = logp - ref = 0.5
    assert kl_penalty(logp, ref, "k1").item() == pytest.approx(0.5)
    assert kl_penalty(logp, ref, "k2").item() == pytest.approx(0.125)
    assert kl_penalty(logp, ref, "k3").item() == pytest.approx(math.exp(-0.5) + 0.5 - 1)
    assert kl_penalty(torch.tensor([[30.0]]), torch.zeros(1, 1), "low_var_kl").item() == pytest.approx(10.0)
    with pytest.raises(UserError):
        kl_penalty(logp, ref, "k4")


def test_entropy_and_logp_from_logits():
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0]]])
    assert entropy_from_logits(logits).item() == pytest.approx(math.log(4))
    lp = token_logp_from_logits(torch.tensor([[[2.0, 0.0]]]), torch.tensor([[0]]), temperature=2.0)
    assert lp.item() == pytest.approx(1 - math.log(math.e + 1))


@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("chunked", [False, True], ids=["one-chunk", "chunks-of-5-positions"])
def test_fused_logp_and_entropy_match_the_plain_functions_and_their_gradients(temperature, chunked, monkeypatch):
    from rlvr.algo import losses, token_logp_and_entropy

    if chunked:
        monkeypatch.setattr(losses, "_CHUNK_BYTES", 4 * 50 * 5)  # 5 positions of a 50-word vocabulary

    torch.manual_seed(0)
    z = torch.randn(2, 5, 11, dtype=torch.float64, requires_grad=True)
    tok = torch.randint(0, 11, (2, 5))
    assert torch.autograd.gradcheck(lambda x: token_logp_and_entropy(x, tok, temperature), (z,))
    # fp32 and bf16 logits (bf16 autocast): values and gradients of the plain autograd functions
    for dtype, tol in ((torch.float32, 1e-6), (torch.bfloat16, 1e-2)):
        x = (torch.randn(3, 4, 50) * 3).to(dtype).requires_grad_(True)
        t = torch.randint(0, 50, (3, 4))
        wl, we = torch.randn(3, 4), torch.randn(3, 4)
        lp, ent = token_logp_and_entropy(x, t, temperature)
        assert lp.dtype == ent.dtype == torch.float32
        (g,) = torch.autograd.grad((lp * wl).sum() + (ent * we).sum(), x)
        lp0, ent0 = token_logp_from_logits(x, t, temperature), entropy_from_logits(x, temperature)
        (g0,) = torch.autograd.grad((lp0 * wl).sum() + (ent0 * we).sum(), x)
        torch.testing.assert_close(lp, lp0, rtol=tol, atol=tol)
        torch.testing.assert_close(ent, ent0, rtol=tol, atol=tol)
        assert g.dtype == dtype
        torch.testing.assert_close(g.float(), g0.float(), rtol=tol, atol=tol)
        # entropy only logged (detached): the gradient is the log-prob's alone
        lp, ent = token_logp_and_entropy(x, t, temperature)
        (g,) = torch.autograd.grad((lp * wl).sum() + (ent.detach() * we).sum(), x)
        (g0,) = torch.autograd.grad((token_logp_from_logits(x, t, temperature) * wl).sum(), x)
        torch.testing.assert_close(g.float(), g0.float(), rtol=tol, atol=tol)


LOSS = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize("mode, expected", [
    ("token-mean", (1 + 2 + 3 + 4) / 4),
    ("seq-mean-token-sum", (6 + 4) / 2),
    ("seq-mean-token-mean", (2 + 4) / 2),
    ("seq-mean-token-sum-norm", (6 / 4 + 4 / 4) / 2),  # constant = T = 4
])
def test_agg_modes_hand_computed(mode, expected):
    assert agg_loss(LOSS, MASK, mode).item() == pytest.approx(expected)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_agg_is_invariant_to_micro_batching(mode):
    torch.manual_seed(0)
    loss = torch.rand(8, 5)
    mask = (torch.rand(8, 5) > 0.3).float()
    full = agg_loss(loss, mask, mode, norm_constant=5.0)
    gt, gs = float(mask.sum()), 8.0
    parts = sum(agg_loss(loss[i:i + 1], mask[i:i + 1], mode, global_tokens=gt, global_seqs=gs, norm_constant=5.0)
                for i in range(8))
    assert parts.item() == pytest.approx(full.item(), rel=1e-6)


def test_unknown_agg_mode():
    with pytest.raises(UserError, match="token-mean"):
        agg_loss(LOSS, MASK, "token_mean")
