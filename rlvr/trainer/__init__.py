"""The GRPO/PPO trainer: config.py (typed config), rollout.py (data order, sampling, grading),
loop.py (`train`), checkpoint.py (atomic checkpoints, exact resume)."""

from rlvr.trainer.config import TrainConfig

__all__ = ["TrainConfig"]
