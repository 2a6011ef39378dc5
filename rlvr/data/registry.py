"""Named datasets: a typed problem record and a registry of loaders.

Built in: the paper's six evaluation sets (math500, aime24, aime25, amc23, minerva_math,
olympiadbench), the paper's in-training validation copy of MATH500 (math500_verl), the 1,209-example
training pool (dsr_sub), and the paper's named examples (pi1, pi2, pi13, pi1209, and any `pi<k>`:
the k-th example of the pool ranked by historical variance on the paper's accuracy record).
Plug-ins (the embedded testbed) register more on first use; see `_PLUGINS`.

Gold answers are the strings the paper's evaluation compares with: the Qwen2.5-Math evaluation kit's
parsed ground truth (`harness_golds`), except MATH500 row 97, whose `\\text{east}` the kit parses to
an empty string: there the last `\\boxed{}` of the solution is used. The raw fields stay in `extra`.
"""

from __future__ import annotations

import gzip
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from rlvr.errors import UserError, closest

Kind = Literal["eval", "train", "example"]
_PLUGINS = ["rlvr.testbed.datasets"]


@dataclass
class Problem:
    """One math problem with its gold answer. `index` is the pool index (verl `extra_info.index`)."""

    id: str
    problem: str
    answer: str
    data_source: str
    index: int | None = None
    subject: str | None = None
    level: int | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class DatasetInfo:
    name: str
    kind: Kind
    rows: int | None  # expected row count, checked on load (None: not fixed)
    source: str
    description: str
    loader: Callable[[], list[Problem]]


_REGISTRY: dict[str, DatasetInfo] = {}
_plugins_loaded = False


def register_dataset(name: str, loader: Callable[[], list[Problem]], kind: Kind = "eval", source: str = "",
                     rows: int | None = None, description: str = "") -> None:
    """Register a dataset under `name` (later registrations replace earlier ones)."""
    _REGISTRY[name] = DatasetInfo(name, kind, rows, source, description, loader)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for mod in _PLUGINS:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:  # the plug-in exists but one of its imports is missing: say so
                raise


def asset_path(name: str) -> Path:
    """Path of a vendored data file under rlvr/data/assets/."""
    return Path(str(resources.files("rlvr.data") / "assets" / name))


def read_asset_jsonl(name: str) -> list[dict]:
    with gzip.open(asset_path(name), "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def paper_accuracy_history() -> dict[str, list[float]]:
    """The paper repo's per-example accuracy record of its full-pool run (`acc_step_500.json`)."""
    with gzip.open(asset_path("acc_step_500.json.gz"), "rt", encoding="utf-8") as f:
        return json.load(f)


def list_datasets() -> list[DatasetInfo]:
    _load_plugins()
    return list(_REGISTRY.values())


def dataset_names() -> list[str]:
    return [d.name for d in list_datasets()]


def load(name: str) -> list[Problem]:
    """The records of a registered dataset (or `pi<k>`), with the row count checked."""
    _load_plugins()
    if name not in _REGISTRY:
        if name.startswith("pi") and name[2:].isdigit():
            return [named_example(int(name[2:]))]
        raise UserError(f"dataset {name!r} is not registered{closest(name, _REGISTRY)}; "
                        f"`rlvr data list` shows the {len(_REGISTRY)} registered sets")
    info = _REGISTRY[name]
    rows = info.loader()
    if info.rows is not None and len(rows) != info.rows:
        raise UserError(f"dataset {name!r} has {len(rows)} rows, expected {info.rows}: its files are damaged; "
                        "reinstall rlvr (pip install -e .)")
    return rows


# --- the paper's data ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _harness_golds() -> dict[tuple[str, int], str]:
    return {(r["dataset"], r["row"]): r["gold"] for r in read_asset_jsonl("harness_golds.jsonl.gz")}


def _gold(dataset: str, row: int, fallback: str) -> str:
    g = _harness_golds().get((dataset, row), "")
    return g if g.strip() else fallback


def _load_math500() -> list[Problem]:
    from rlvr.reward.extract import last_boxed

    out = []
    for i, r in enumerate(read_asset_jsonl("math500.jsonl.gz")):
        out.append(Problem(id=r["unique_id"], problem=r["problem"],
                           answer=_gold("math500", i, last_boxed(r["solution"]) or r["answer"]),
                           data_source="math500", subject=r["subject"], level=int(r["level"]),
                           extra={"answer_field": r["answer"], "solution": r["solution"]}))
    return out


def _load_simple(name: str, question_key: str, answer_key: str) -> Callable[[], list[Problem]]:
    def load_rows() -> list[Problem]:
        out = []
        for i, r in enumerate(read_asset_jsonl(f"{name}.jsonl.gz")):
            raw = r[answer_key]
            raw_s = str(raw[0] if isinstance(raw, list) else raw)
            out.append(Problem(id=f"{name}/{r.get('id', r.get('idx', i))}", problem=r[question_key],
                               answer=_gold(name, i, raw_s), data_source=name,
                               subject=r.get("type") or r.get("subfield"),
                               extra={k: v for k, v in r.items() if k not in (question_key,)}))
        return out
    return load_rows


def _load_minerva() -> list[Problem]:
    from rlvr.reward.extract import last_boxed

    out = []
    for i, r in enumerate(read_asset_jsonl("minerva_math.jsonl.gz")):
        out.append(Problem(id=f"minerva_math/{r['idx']}", problem=r["problem"],
                           answer=_gold("minerva_math", i, last_boxed(r["solution"]) or ""),
                           data_source="minerva_math", subject=r["type"], extra={"solution": r["solution"]}))
    return out


def _load_math500_verl() -> list[Problem]:
    from rlvr.data.verl import problem_from_verl_row

    return [problem_from_verl_row(r) for r in read_asset_jsonl("math500_verl.jsonl.gz")]


@lru_cache(maxsize=1)
def _pool_rows() -> tuple[dict, ...]:
    return tuple(read_asset_jsonl("dsr_sub.jsonl.gz"))


def _load_dsr_sub() -> list[Problem]:
    from rlvr.data.verl import problem_from_verl_row

    return [problem_from_verl_row(r) for r in _pool_rows()]


def pool_verl_row(index: int) -> dict:
    """The verl row of pool example `index` (a copy)."""
    rows = _pool_rows()
    if not 0 <= index < len(rows):
        raise UserError(f"pool index {index} is out of range: dsr_sub has indices 0..{len(rows) - 1}")
    return json.loads(json.dumps(rows[index]))


@lru_cache(maxsize=1)
def paper_ranking() -> tuple[int, ...]:
    """Pool indices ranked by historical variance on the paper's record: pi1 first."""
    from rlvr.select.scores import rank_examples

    return tuple(int(k) for k, _ in rank_examples(paper_accuracy_history(), "variance"))


def named_example(k: int) -> Problem:
    """pi_k: the k-th pool example by historical variance (pi1 = index 124, the sail problem)."""
    ranking = paper_ranking()
    if not 1 <= k <= len(ranking):
        raise UserError(f"pi{k} does not exist: the pool ranking has pi1..pi{len(ranking)}")
    from rlvr.data.verl import problem_from_verl_row

    p = problem_from_verl_row(pool_verl_row(ranking[k - 1]))
    p.extra["name"] = f"pi{k}"
    return p


SIX = ["math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench"]
_SRC = "One-Shot-RLVR@21ed529"

register_dataset("math500", _load_math500, "eval", _SRC, 500, "MATH500 (Lightman et al.), greedy in the paper")
register_dataset("aime24", _load_simple("aime24", "problem", "answer"), "eval", _SRC, 30, "AIME 2024, avg@8 at T=0.6")
register_dataset("aime25", _load_simple("aime25", "problem", "answer"), "eval", _SRC, 30, "AIME 2025, avg@8 at T=0.6")
register_dataset("amc23", _load_simple("amc23", "problem", "answer"), "eval", _SRC, 40, "AMC 2023, avg@8 at T=0.6")
register_dataset("minerva_math", _load_minerva, "eval", _SRC, 272, "Minerva Math (MIT OCW), greedy")
register_dataset("olympiadbench", _load_simple("olympiadbench", "question", "final_answer"), "eval", _SRC, 675,
                 "OlympiadBench (English, text-only math), greedy")
register_dataset("math500_verl", _load_math500_verl, "eval", _SRC, 500,
                 "MATH500 in verl format: the paper's in-training validation set (bare problems)")
register_dataset("dsr_sub", _load_dsr_sub, "train", _SRC, 1209, "DSR-sub: 1,209 DeepScaleR problems, the selection pool")
for _k, _idx in [(1, 124), (2, 267), (13, 682), (1209, 789)]:
    register_dataset(f"pi{_k}", (lambda k=_k: [named_example(k)]), "example", _SRC, 1,
                     f"the paper's pi{_k}: pool index {_idx} (rank {_k} by historical variance)")
