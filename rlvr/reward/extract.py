"""Answer extraction from untrusted model output.

`extract_answer(text, mode="boxed")` returns the content of the LAST `\\boxed{...}` or `\\fbox{...}`
(the paper's training reward reads only the last box), or None when there is none. Rules:
- braces are matched with a counter, so nested braces (`\\boxed{\\frac{1}{2}}`) work;
- `\\boxed 5` (a box with no braces) takes the following token;
- a box that is never closed (`\\boxed{12` cut by the length limit) is not an answer;
- an absurdly long box (more than MAX_ANSWER_CHARS characters) is not an answer either: no real
  answer is that long, and grading it would only waste the time budget.

`mode="lenient"` adds fallbacks for models that do not box (used to evaluate base models the way the
Qwen2.5-Math evaluation kit does): "the answer is X" / "final answer: X", then the last number in
the text. Lenient extraction never applies to training rewards.
"""

from __future__ import annotations

import re
from typing import Literal

ExtractMode = Literal["boxed", "lenient"]

MAX_ANSWER_CHARS = 1000
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
_ANSWER_IS_RE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*(.{1,200}?)(?:\.\s|\.$|\n|$)", re.IGNORECASE
)
_NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")


def _box_content(text: str, start: int) -> str | None:
    """Content of the box whose command ends at `start` (just after `\\boxed`)."""
    i = start
    n = len(text)
    while i < n and text[i] == " ":
        i += 1
    if i >= n:
        return None
    if text[i] != "{":
        # `\boxed 5` / `\boxed5`: the next run of non-space characters up to `$` or whitespace.
        m = re.match(r"[^\s$]+", text[i : i + MAX_ANSWER_CHARS + 1])
        if not m or len(m.group(0)) > MAX_ANSWER_CHARS:
            return None
        return m.group(0)
    depth = 0
    for j in range(i, min(n, i + MAX_ANSWER_CHARS + 2)):
        c = text[j]
        if c == "{" and (j == 0 or text[j - 1] != "\\"):
            depth += 1
        elif c == "}" and text[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None  # never closed, or longer than MAX_ANSWER_CHARS


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{}` / `\\fbox{}` in `text`, or None."""
    last = None
    for m in _BOX_RE.finditer(text):
        last = m
    if last is None:
        return None
    content = _box_content(text, last.end())
    return content.strip() if content is not None else None


def extract_answer(text: str, mode: ExtractMode = "boxed") -> str | None:
    """The final answer in `text` (see module docstring), or None when absent."""
    if not isinstance(text, str):
        return None
    boxed = last_boxed(text)
    if boxed is not None or mode == "boxed":
        return boxed if boxed else None
    if mode != "lenient":
        raise ValueError(f"unknown extraction mode {mode!r}; use 'boxed' or 'lenient'")
    tail = text[-5000:]  # a final answer is stated near the end; bounds the regex work
    matches = list(_ANSWER_IS_RE.finditer(tail))
    if matches:
        ans = matches[-1].group(1).strip().strip("$ ").rstrip(".")
        if ans:
            return ans
    nums = _NUMBER_RE.findall(tail)
    return nums[-1] if nums else None
