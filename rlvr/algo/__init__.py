"""Advantage estimators and loss terms: small pure tensor functions with registries by paper name."""

from rlvr.algo.advantages import (
    ADVANTAGES,
    compute_gae_advantages,
    compute_grpo_advantages,
    frac_zero_std_groups,
    get_advantage_fn,
    outcome_to_token_rewards,
)
from rlvr.algo.losses import (
    KL_KINDS,
    LOSS_AGG_MODES,
    agg_loss,
    entropy_from_logits,
    kl_penalty,
    ppo_clip_loss,
    token_logp_and_entropy,
    token_logp_from_logits,
    value_loss,
)

__all__ = ["ADVANTAGES", "KL_KINDS", "LOSS_AGG_MODES", "agg_loss", "compute_gae_advantages", "compute_grpo_advantages",
           "entropy_from_logits", "frac_zero_std_groups", "get_advantage_fn", "kl_penalty", "outcome_to_token_rewards",
           "ppo_clip_loss", "token_logp_and_entropy", "token_logp_from_logits", "value_loss"]
