"""Response analysis shared across rlvr: format errors, self-reflection words, length.

Self-reflection vocabulary: the paper tracks how often responses use words such as "rethink",
"recheck" and "recalculate" over training. `REFLECTION_WORDS` holds those three (the `paper` set)
plus common variants (`extended`); counts are case-insensitive whole-word matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rlvr.reward.extract import last_boxed

PAPER_REFLECTION_WORDS = ("rethink", "recheck", "recalculate")
EXTENDED_REFLECTION_WORDS = PAPER_REFLECTION_WORDS + ("re-evaluate", "reevaluate", "double-check", "verify",
                                                      "check again", "wait")
_WORD_RE = {w: re.compile(r"(?<![a-z])" + re.escape(w) + r"(?![a-z])", re.IGNORECASE) for w in EXTENDED_REFLECTION_WORDS}


def has_boxed_answer(text: str) -> bool:
    """False is a format error: no complete \\boxed{} answer."""
    return last_boxed(text) is not None


def reflection_counts(text: str, words: Iterable[str] = EXTENDED_REFLECTION_WORDS) -> dict[str, int]:
    return {w: len(_WORD_RE[w].findall(text)) for w in words}


def analyse_responses(texts: list[str], lengths: list[int] | None = None) -> dict[str, float]:
    """Aggregate statistics over a list of responses (lengths in tokens if given, else characters)."""
    n = max(len(texts), 1)
    lengths = lengths if lengths is not None else [len(t) for t in texts]
    per_word = {w: 0 for w in EXTENDED_REFLECTION_WORDS}
    with_paper_word = 0
    for t in texts:
        c = reflection_counts(t)
        for w, k in c.items():
            per_word[w] += k
        with_paper_word += any(c[w] for w in PAPER_REFLECTION_WORDS)
    out = {
        "responses": float(len(texts)),
        "format_error_rate": sum(not has_boxed_answer(t) for t in texts) / n,
        "reflection_rate": with_paper_word / n,  # share of responses with a paper reflection word
        "reflection_words_per_response": sum(per_word[w] for w in PAPER_REFLECTION_WORDS) / n,
        "length_mean": sum(lengths) / n,
        "length_max": float(max(lengths, default=0)),
    }
    out.update({f"word/{w}": k / n for w, k in per_word.items()})
    return out
