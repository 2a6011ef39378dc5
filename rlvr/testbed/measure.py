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


def write_card(metrics: dict, model_dir: Path, seconds: float) -> None:
    """Write metrics.json and the model card README.md next to the weights."""
    from rlvr.utils.io import atomic_write_json, atomic_write_text

    info = json.loads((model_dir / "pretrain_log.json").read_text())
    c = info["config"]
    band = (0.15 <= metrics["acc_t0.6"] <= 0.45, metrics["pass@8"] >= 2 * metrics["acc_t0.6"], metrics["no_box_rate"] >= 0.10)
    subj = ", ".join(f"{k} {v:.3f}" for k, v in metrics["by_subject_t0.6"].items())
    styles = ", ".join(f"{k} {metrics['style_share'][k]:.3f} (accuracy {metrics['style_acc'][k]:.3f})" for k in metrics["style_share"])
    atomic_write_json(model_dir / "metrics.json", metrics)
    atomic_write_text(model_dir / "README.md", f"""# rlvr testbed base model

A `Qwen2ForCausalLM` ({info['params'] / 1e6:.2f} M parameters: hidden {c['hidden_size']}, {c['num_layers']} layers,
{c['num_heads']} heads, MLP {c['intermediate_size']}, tied embeddings) with a character-level byte-level BPE tokenizer
(100 symbols) whose chat template renders a user turn as `Q: ...` + newline + `A: `. Pre-trained from scratch by
`rlvr testbed build` (seed {c['seed']}, {c['steps']} steps of {c['batch_seqs']} x {c['seq_len']} packed tokens,
AdamW lr {c['lr']} cosine to {c['min_lr']}, weight decay {c['weight_decay']}, {c['threads']} threads):
{info['tokens'] / 1e6:.1f} M tokens in {info['minutes']} min on 2 CPU cores, final loss {info['final_loss']}.

Corpus: generated problems of six categories (arithmetic, algebra, number theory, counting,
fractions, geometry; levels 1-5), none of them in `testbed/pool` or `testbed/test`, each with a
solution in one of three styles drawn independently of the problem: careful step-by-step working
(share {c['mix']['careful']}; a step with a multi-digit result slips with probability {c['mix']['slip']} x (1 + 0.25 (level - 1)),
and the working carries the slipped value on, as a person's would), careful working with a
"Let me recheck" line that catches 80% of slips ({c['mix']['reflect']}), and a bare guess
({c['mix']['guess']}, right {c['mix']['guess_right']} of the time, otherwise off by a little); {c['mix']['unboxed']} of
all documents end "The answer is N." without a box. Nothing in a problem says which style comes, so
the style is the model's choice at its first response token: what RL can change from one example.

## Measured (`python -m rlvr.testbed.measure --write-card`)
Held-out `testbed/test` (500 problems), graded by `rlvr.reward` (last `\\boxed{{}}`). The sampled rows are
what `rlvr eval --model testbed --benchmarks testbed/test` reports (the paper protocol: 8 samples per problem
at T = 0.6, seed 0); the greedy rows are the same command with `--protocol greedy`.

| metric | value | target band |
|---|---|---|
| accuracy, T = 0.6 (8 samples per problem) | {metrics['acc_t0.6']:.3f} | 0.15-0.45: {'in' if band[0] else 'OUT'} |
| pass@8 | {metrics['pass@8']:.3f} | >= 2 x accuracy: {'yes' if band[1] else 'NO'} |
| responses without a boxed answer, T = 0.6 | {metrics['no_box_rate']:.3f} | >= 0.10: {'yes' if band[2] else 'NO'} |
| maj@8 | {metrics['maj@8']:.3f} | |
| greedy accuracy | {metrics['greedy_acc']:.3f} | |
| greedy responses without a box | {metrics['greedy_no_box']:.3f} | |
| mean response length (tokens) | {metrics['response_len_mean']:.1f} | |

Per category (T = 0.6): {subj}.

Styles in the sampled responses: {styles}.
""")


def main() -> None:
    import time

    from rlvr.models import resolve_model_path

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="testbed")
    p.add_argument("--out", type=Path, default=Path("eval/testbed-base"))
    p.add_argument("--write-card", action="store_true", help="write metrics.json and README.md into the model folder")
    args = p.parse_args()
    t0 = time.time()
    m = measure(args.model, args.out)
    print(json.dumps(m, indent=1))
    if args.write_card:
        write_card(m, resolve_model_path(args.model), time.time() - t0)


if __name__ == "__main__":
    main()
