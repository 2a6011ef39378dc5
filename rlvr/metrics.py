"""Every logged metric name is built here (verl-style names for training, `eval/<benchmark>/<metric>`)."""

from __future__ import annotations

SCORE_MEAN = "critic/score/mean"
SCORE_STD = "critic/score/std"
ADV_MEAN = "critic/advantages/mean"
VALUE_LOSS = "critic/vf_loss"
PG_LOSS = "actor/pg_loss"
KL_LOSS = "actor/kl_loss"
ENTROPY = "actor/entropy"
PG_CLIPFRAC = "actor/pg_clipfrac"
PPO_KL = "actor/ppo_kl"
GRAD_NORM = "actor/grad_norm"
LR = "actor/lr"
RESP_LEN_MEAN = "response_length/mean"
RESP_LEN_MAX = "response_length/max"
RESP_CLIP_RATIO = "response_length/clip_ratio"
FRAC_ZERO_STD = "train/frac_zero_std_groups"
NO_ANSWER_RATE = "train/no_answer_rate"
TIMEOUT_RATE = "train/verify_timeout_rate"
REFLECTION_RATE = "train/reflection_rate"
TOKENS_PER_S = "perf/tokens_per_s"
STEP = "step"
EPOCH = "train/epoch"

TRAIN_KEYS = [SCORE_MEAN, SCORE_STD, ADV_MEAN, PG_LOSS, KL_LOSS, ENTROPY, PG_CLIPFRAC, PPO_KL, GRAD_NORM, LR,
              RESP_LEN_MEAN, RESP_LEN_MAX, RESP_CLIP_RATIO, FRAC_ZERO_STD, NO_ANSWER_RATE, TIMEOUT_RATE,
              REFLECTION_RATE, TOKENS_PER_S, EPOCH]
STAGES = ["gen", "reward", "old_log_prob", "ref", "adv", "update_critic", "update_actor", "sync", "eval", "save", "step"]


def timing(stage: str) -> str:
    if stage not in STAGES:
        raise KeyError(f"unknown timing stage {stage!r}; add it to rlvr.metrics.STAGES")
    return f"timing/{stage}"


def eval_key(benchmark: str, metric: str) -> str:
    return f"eval/{benchmark}/{metric}"
