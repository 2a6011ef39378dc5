"""Toy rewards for benchmarks and smoke tests (`reward_fn: rlvr.reward.toy:contains_answer`).

Not math grading: use `rlvr.reward.grade` for that. These exist so that a throughput benchmark can
run the same reward as a peer library's script, and so that custom rewards have an example.
"""

from __future__ import annotations


def contains_answer(response: str, answer: str) -> float:
    """1.0 if the gold answer string occurs anywhere in the response, else 0.0."""
    return 1.0 if answer and answer in response else 0.0
