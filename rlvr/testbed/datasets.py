"""Registers the testbed's datasets with rlvr.data (imported by the registry as a plug-in).

testbed/pool              1,200 training problems (the analog of dsr_sub); `index` = row number
testbed/test              500 held-out problems balanced over categories and levels (the analog of MATH500)
testbed/test/<category>   the test set's problems of one category
No problem text appears in two of them, nor in the pre-training corpus.
"""

from __future__ import annotations

import json
from functools import lru_cache

from rlvr.data.registry import Problem, register_dataset
from rlvr.testbed import ASSETS
from rlvr.testbed.build import POOL_SIZE, TEST_SIZE
from rlvr.testbed.world import CATEGORIES

SOURCE = "rlvr testbed (generated)"


@lru_cache(maxsize=2)
def _rows(split: str) -> tuple[dict, ...]:
    path = ASSETS / "data" / f"{split}.jsonl"
    return tuple(json.loads(line) for line in path.read_text().splitlines() if line.strip())


def _problems(split: str, category: str | None = None) -> list[Problem]:
    out = []
    for r in _rows(split):
        if category and r["subject"] != category:
            continue
        out.append(Problem(id=r["id"], problem=r["problem"], answer=r["answer"], data_source=f"testbed/{split}",
                           index=r.get("index"), subject=r["subject"], level=r["level"]))
    return out


register_dataset("testbed/pool", lambda: _problems("pool"), "train", SOURCE, POOL_SIZE,
                 "testbed training pool (analog of dsr_sub)")
register_dataset("testbed/test", lambda: _problems("test"), "eval", SOURCE, TEST_SIZE,
                 "testbed held-out test set, 6 categories x 5 levels (analog of MATH500)")
for _cat in CATEGORIES:
    register_dataset(f"testbed/test/{_cat}", (lambda c=_cat: _problems("test", c)), "eval", SOURCE, None,
                     f"testbed test problems of category {_cat}")
