"""rlvr: reinforcement learning with verifiable rewards for math reasoning, from one example.

Modules, one per concept:
  rlvr.reward    the 0/1 answer verifier (extraction, equivalence, a time-limited worker pool)
  rlvr.data      named datasets, prompt templates, verl parquet, the 1-/few-shot builder
  rlvr.eval      benchmark evaluation with the paper's protocol
  rlvr.testbed   the embedded synthetic math world and its tiny pre-trained base model
  rlvr.algo      advantage estimators and loss terms (pure tensor functions)
  rlvr.trainer   the GRPO/PPO training loop
  rlvr.select    example selection (historical variance)
  rlvr.analysis  response analysis and plots (reads run folders only)
"""

__version__ = "0.1.0"
