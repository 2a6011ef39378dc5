"""Benchmark evaluation with the paper's protocol (see protocol.py); `evaluate` is the entry point."""

from rlvr.eval.evaluate import EvalConfig, evaluate, summary_markdown
from rlvr.eval.metrics import benchmark_metrics, breakdown, majority_correct, pass_at_k
from rlvr.eval.protocol import PROTOCOLS, BenchmarkSettings, settings_for

__all__ = ["PROTOCOLS", "BenchmarkSettings", "EvalConfig", "benchmark_metrics", "breakdown", "evaluate",
           "majority_correct", "pass_at_k", "settings_for", "summary_markdown"]
