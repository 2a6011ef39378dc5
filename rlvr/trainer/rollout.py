"""The rollout and scoring stages: which prompts a step uses, sampling, and grading.

Data order is a pure function of (seed, step): slot j of step s is row perm_e[(s * P + j) mod N] of
epoch e = (s * P + j) // N, with perm_e a seeded permutation. Sample k of slot j is drawn with seed
crc32(seed, step, j, k). Nothing here has state, so a resumed run replays nothing and skips nothing,
and the split of slots across ranks does not change what any slot samples.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from rlvr.data import Problem


@dataclass
class Rollout:
    """One sampled response and its grade. `slot` is the prompt slot in the step, `index` the example's
    pool index (extra_info.index), `group` the GRPO group (= the global slot)."""

    slot: int
    sample: int
    index: int | None
    problem_id: str
    prompt_ids: list[int]
    response_ids: list[int]
    text: str
    finish_reason: str
    logp: list[float]
    reward: float = 0.0
    pred: str | None = None
    reason: str = ""


def step_slots(step: int, prompts_per_step: int, n_rows: int, seed: int, shuffle: bool) -> list[tuple[int, int]]:
    """[(epoch, row)] for the step's prompt slots."""
    out = []
    for j in range(prompts_per_step):
        pos = step * prompts_per_step + j
        epoch, k = divmod(pos, n_rows)
        perm = np.random.default_rng([seed, epoch]).permutation(n_rows) if shuffle else np.arange(n_rows)
        out.append((epoch, int(perm[k])))
    return out


def sample_seed(seed: int, step: int, slot: int, sample: int) -> int:
    return zlib.crc32(f"{seed}/{step}/{slot}/{sample}".encode())


def generate_rollouts(model, tokenizer, rows: list[Problem], prompts: list[str], slots: list[int], step: int,
                      cfg) -> list[Rollout]:
    """Sample G responses for each of this rank's slots. rows/prompts are indexed like `slots`."""
    from rlvr.generation import SamplingConfig, generate

    G = cfg.rollout.samples_per_prompt
    flat_prompts, seeds, meta = [], [], []
    for slot, p, text in zip(slots, rows, prompts):
        for k in range(G):
            flat_prompts.append(text)
            seeds.append(sample_seed(cfg.seed, step, slot, k))
            meta.append((slot, k, p))
    sc = SamplingConfig(max_new_tokens=cfg.rollout.max_response_tokens, temperature=cfg.rollout.temperature,
                        top_p=cfg.rollout.top_p, seed=cfg.seed, ignore_eos=cfg.rollout.ignore_eos,
                        cuda_graphs=cfg.rollout.cuda_graphs, compile=cfg.rollout.compile,
                        cpu_kernel=cfg.rollout.cpu_kernel, kv_cache_dtype=cfg.rollout.kv_cache_dtype)
    gens = generate(model, tokenizer, flat_prompts, sc, batch_size=cfg.rollout.generation_batch_seqs,
                    return_logp=True, seeds=seeds)
    return [Rollout(slot, k, p.index, p.id, g.prompt_ids, g.response_ids, g.text, g.finish_reason, g.logp or [])
            for (slot, k, p), g in zip(meta, gens)]


def load_reward_fn(spec: str):
    """`module:function` -> the function; errors name what is missing."""
    import importlib

    from rlvr.errors import UserError

    mod_name, _, fn_name = spec.partition(":")
    if not mod_name or not fn_name:
        raise UserError(f"reward_fn {spec!r}: write it as `module:function`, e.g. `my_rewards:contains_seven`")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise UserError(f"reward_fn {spec!r}: cannot import {mod_name!r} ({e}); is it on PYTHONPATH?") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise UserError(f"reward_fn {spec!r}: {mod_name!r} has no function {fn_name!r}")
    return fn


def score_rollouts(rollouts: list[Rollout], answers: dict[str, str], grader, reward_fn=None) -> None:
    """Grade every rollout with the training reward (last \\boxed{}, time-limited workers), in place.
    With `reward_fn(response, answer) -> float`, that function scores instead, in this process."""
    if reward_fn is not None:
        for r in rollouts:
            r.reward, r.pred, r.reason = float(reward_fn(r.text, answers[r.problem_id])), None, "custom"
        return
    results = grader.grade_batch([(r.text, answers[r.problem_id]) for r in rollouts], mode="boxed")
    for r, g in zip(rollouts, results):
        r.reward, r.pred, r.reason = g.score, g.pred, g.reason


def pad_batch(rollouts: list[Rollout], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt+response tensors for a forward pass.

    Returns input_ids (B, L), attention_mask (B, L), response_mask (B, L-1) marking the positions whose
    NEXT-token prediction is a response token, targets (B, L-1), sampling_logp (B, L-1) from sampling, and
    prompt_len (B,).
    """
    L = max(len(r.prompt_ids) + len(r.response_ids) for r in rollouts)
    B = len(rollouts)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.zeros((B, L), dtype=torch.long)
    resp_mask = torch.zeros((B, L - 1), dtype=torch.float32)
    samp_logp = torch.zeros((B, L - 1), dtype=torch.float32)
    for i, r in enumerate(rollouts):
        seq = r.prompt_ids + r.response_ids
        n, p = len(seq), len(r.prompt_ids)
        input_ids[i, :n] = torch.tensor(seq)
        attn[i, :n] = 1
        resp_mask[i, p - 1 : n - 1] = 1.0
        if r.logp:
            samp_logp[i, p - 1 : n - 1] = torch.tensor(r.logp)
    return {"input_ids": input_ids, "attention_mask": attn, "response_mask": resp_mask,
            "targets": input_ids[:, 1:], "sampling_logp": samp_logp,
            "prompt_len": torch.tensor([len(r.prompt_ids) for r in rollouts], dtype=torch.long)}
