"""Datasets, prompt templates, verl parquet, and the 1-/few-shot builder.

- registry.py  `Problem`, `load(name)`, `list_datasets()`, `register_dataset(...)`, named examples
- templates.py the prompt strings (the only copy), `render_prompt`
- verl.py      verl parquet/JSONL in and out
- build.py     the training-set builder behind `rlvr data build`
"""

from rlvr.data.build import build_rows, plausible_wrong_label, resolve_picks
from rlvr.data.registry import (
    SIX,
    DatasetInfo,
    Problem,
    asset_path,
    dataset_names,
    list_datasets,
    load,
    named_example,
    paper_accuracy_history,
    paper_ranking,
    pool_verl_row,
    register_dataset,
)
from rlvr.data.templates import TEMPLATES, Template, get_template, render_prompt
from rlvr.data.verl import (
    load_problems_from_file,
    problem_from_verl_row,
    read_verl,
    verl_row_from_problem,
    write_verl,
)

__all__ = [
    "SIX", "TEMPLATES", "DatasetInfo", "Problem", "Template", "asset_path", "build_rows", "dataset_names",
    "get_template", "list_datasets", "load", "load_problems_from_file", "named_example", "paper_accuracy_history",
    "paper_ranking", "plausible_wrong_label", "pool_verl_row", "problem_from_verl_row", "read_verl",
    "register_dataset", "render_prompt", "resolve_picks", "verl_row_from_problem", "write_verl",
]
