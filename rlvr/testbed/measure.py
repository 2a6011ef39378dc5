"""Measure the testbed base model against its target band and write the model card.

    python -m rlvr.testbed.measure [--model testbed] [--out eval/testbed-base]

Band (sampled at T = 0.6 on the 500-problem test set): accuracy 15-45 %, pass@8 at least twice the
accuracy, at least 10 % of responses without a boxed answer. Style shares are read off the samples:
`reflect` (a "Let me recheck" line), `careful` (worked lines with "="), `guess` (a bare answer).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def style_of(response: str) -> str:
    if "recheck" in response:
        return "reflect"
    return "careful" if "=" in response else "guess"


def measure(model: str = "testbed", out: Path = Path("eval/testbed-base"), seed: int = 0) -> dict:
    from rlvr.eval import EvalConfig, evaluate
    from rlvr.models import load_model_and_tokenizer
    from rlvr.utils.io import read_jsonl

    m, tok = load_model_and_tokenizer(model)
    sampled = evaluate(m, tok, ["testbed/test"], EvalConfig(protocol="paper", seed=seed), out_dir=out / "sampled",
                       model_name=model)["benchmarks"]["testbed/test"]
    greedy = evaluate(m, tok, ["testbed/test"], EvalConfig(protocol="greedy", seed=seed), out_dir=out / "greedy",
                      model_name=model)["benchmarks"]["testbed/test"]
    rows = read_jsonl(out / "sampled" / "testbed__test" / "samples.jsonl")
    styles: dict[str, list[float]] = {}
    for r in rows:
        styles.setdefault(style_of(r["response"]), []).append(r["score"])
    return {
        "acc_t0.6": sampled["acc"], "pass@8": sampled["pass@8"], "maj@8": sampled["maj@8"],
        "no_box_rate": sampled["no_answer_rate"], "greedy_acc": greedy["acc"], "greedy_no_box": greedy["no_answer_rate"],
        "by_subject_t0.6": sampled["by_subject"],
        "style_share": {k: len(v) / len(rows) for k, v in sorted(styles.items())},
        "style_acc": {k: sum(v) / len(v) for k, v in sorted(styles.items())},
        "response_len_mean": sampled["response_len_mean"],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="testbed")
    p.add_argument("--out", type=Path, default=Path("eval/testbed-base"))
    args = p.parse_args()
    print(json.dumps(measure(args.model, args.out), indent=1))


if __name__ == "__main__":
    main()
