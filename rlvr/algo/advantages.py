"""Advantage estimators (pure tensor functions). Shapes: P prompts, G samples per prompt,
B = P*G sequences, T response tokens.

Registry `ADVANTAGES`:
- `grpo`    GRPO (Shao et al. 2024, DeepSeekMath, Sec. 4.1.2): outcome reward normalised within its
            group, A_i = (r_i - mean(r_group)) / (std(r_group) + eps), std unbiased as in verl.
- `dr_grpo` Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training", Sec. 3.1): the same
            without the division by the group std ("Dr. GRPO Modification 1").
- `gae`     PPO's generalised advantage estimation (Schulman et al. 2016) with a value model,
            `compute_gae_advantages`.
Groups are given by an explicit `group_index` (B,) (verl's convention): rows of a group need not be
adjacent. In the 1-shot setting each copy of the example is its own group of G samples.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlvr.errors import UserError, closest


def _group_stats(rewards: torch.Tensor, group_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row group mean, unbiased group std and group size, each (B,)."""
    _, inv = torch.unique(group_index, return_inverse=True)
    n_groups = int(inv.max()) + 1
    size = torch.zeros(n_groups, dtype=rewards.dtype).index_add_(0, inv, torch.ones_like(rewards))
    total = torch.zeros(n_groups, dtype=rewards.dtype).index_add_(0, inv, rewards)
    mean = total / size
    sq = torch.zeros(n_groups, dtype=rewards.dtype).index_add_(0, inv, (rewards - mean[inv]) ** 2)
    std = torch.where(size > 1, (sq / (size - 1).clamp(min=1)).sqrt(), torch.zeros_like(sq))
    return mean[inv], std[inv], size[inv]


def compute_grpo_advantages(rewards: torch.Tensor, group_index: torch.Tensor, norm_by_std: bool = True,
                            eps: float = 1e-6) -> torch.Tensor:
    """Outcome advantages (B,) from rewards (B,) and group ids (B,). A group of one gets 0."""
    if rewards.shape != group_index.shape or rewards.dim() != 1:
        raise ValueError(f"rewards {tuple(rewards.shape)} and group_index {tuple(group_index.shape)} must both be (B,)")
    rewards = rewards.float()
    mean, std, size = _group_stats(rewards, group_index)
    adv = rewards - mean
    if norm_by_std:
        adv = adv / (std + eps)
    return torch.where(size > 1, adv, torch.zeros_like(adv))


def compute_grpo_advantages_reference(rewards: list[float], group_index: list[int], norm_by_std: bool = True,
                                      eps: float = 1e-6) -> list[float]:
    """Per-sample loop version of `compute_grpo_advantages`, kept to test the vectorised one."""
    groups: dict[int, list[float]] = {}
    for r, g in zip(rewards, group_index):
        groups.setdefault(g, []).append(r)
    out = []
    for r, g in zip(rewards, group_index):
        xs = groups[g]
        if len(xs) < 2:
            out.append(0.0)
            continue
        m = sum(xs) / len(xs)
        sd = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5
        out.append((r - m) / (sd + eps) if norm_by_std else r - m)
    return out


def frac_zero_std_groups(rewards: torch.Tensor, group_index: torch.Tensor) -> float:
    """Share of groups whose rewards are all equal: they carry no GRPO signal (their advantage is 0)."""
    _, std, _ = _group_stats(rewards.float(), group_index)
    _, inv = torch.unique(group_index, return_inverse=True)
    per_group = torch.zeros(int(inv.max()) + 1).scatter_(0, inv, (std == 0).float())  # rows of a group agree
    return float(per_group.mean())


def compute_gae_advantages(token_rewards: torch.Tensor, values: torch.Tensor, response_mask: torch.Tensor,
                           gamma: float = 1.0, lam: float = 1.0, whiten: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over response tokens. All inputs (B, T); returns (advantages, returns), each (B, T).

    delta_t = r_t + gamma * V_{t+1} - V_t (V after the last valid token is 0);
    A_t = delta_t + gamma * lam * A_{t+1}; returns = A + V. Masked positions are 0.
    With whiten, advantages are shifted and scaled to zero mean / unit variance over valid tokens.
    """
    mask = response_mask.float()
    B, T = token_rewards.shape
    adv = torch.zeros_like(token_rewards, dtype=torch.float32)
    last = torch.zeros(B)
    next_value = torch.zeros(B)
    for t in reversed(range(T)):
        m = mask[:, t]
        delta = token_rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        last = last * m  # padding after the end contributes nothing and resets the recursion
        adv[:, t] = last
        next_value = values[:, t] * m
    returns = (adv + values) * mask
    if whiten:
        n = mask.sum().clamp(min=1)
        mean = (adv * mask).sum() / n
        var = (((adv - mean) * mask) ** 2).sum() / n
        adv = (adv - mean) * torch.rsqrt(var + 1e-8) * mask
    return adv * mask, returns


def outcome_to_token_rewards(rewards: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Place each sequence's outcome reward (B,) on its last response token -> (B, T)."""
    last = response_mask.long().cumsum(-1).argmax(-1)  # index of the last 1
    out = torch.zeros(response_mask.shape, dtype=torch.float32)
    out[torch.arange(len(rewards)), last] = rewards.float()
    return out * response_mask.float()


ADVANTAGES: dict[str, Callable] = {
    "grpo": lambda rewards, group_index, **kw: compute_grpo_advantages(rewards, group_index, norm_by_std=True, **kw),
    "dr_grpo": lambda rewards, group_index, **kw: compute_grpo_advantages(rewards, group_index, norm_by_std=False, **kw),
    "gae": compute_gae_advantages,
}


def get_advantage_fn(name: str) -> Callable:
    if name not in ADVANTAGES:
        raise UserError(f"unknown advantage estimator {name!r}{closest(name, ADVANTAGES)} (valid: {', '.join(ADVANTAGES)})")
    return ADVANTAGES[name]
