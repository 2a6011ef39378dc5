"""Reports and plots from run folders (reads files only; never imports the trainer)."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_runs(runs: dict[str, Path], out: Path) -> list[Path]:
    """PNG plots of training curves for several runs (one line per run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    panels = [("critic/score/mean", "training reward"), ("response_length/mean", "response length (tokens)"),
              ("train/no_answer_rate", "format errors (no boxed answer)"), ("train/reflection_rate", "self-reflection rate"),
              ("actor/entropy", "policy entropy"), ("train/frac_zero_std_groups", "groups with no signal")]
    paths = []
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for ax, (key, title) in zip(axes.flat, panels):
        for name, run in runs.items():
            rows = [r for r in read_metrics(run) if key in r]
            if rows:
                ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=name)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    p = out / "training_curves.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths


def demo_report(out: Path, results: dict[str, dict], picks: dict[str, int], commands: list[str]) -> str:
    plots = plot_runs({"full-pool": out / "pool", "pi1": out / "pi1", "random": out / "random"}, out / "plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = sorted(next(iter(results.values()))["by_subject"])
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(results)
    for i, (name, m) in enumerate(results.items()):
        ax.bar([j + i * width for j in range(len(cats))], [m["by_subject"][c] for c in cats], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cats))], cats)
    ax.set_ylabel("held-out accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "plots" / "accuracy_by_category.png", dpi=110)
    plt.close(fig)
    base = results["base"]
    lines = ["# rlvr demo: 1-shot RLVR on the embedded testbed", "",
             f"pi1 = pool index {picks['pi1']} (top historical variance); random control = index {picks['random']}.", "",
             "| policy | overall | " + " | ".join(cats) + " | no answer | mean length |",
             "|---|---|" + "---|" * len(cats) + "---|---|"]
    for name, m in results.items():
        lines.append(f"| {name} | {m['acc']:.3f} | " + " | ".join(f"{m['by_subject'][c]:.3f}" for c in cats)
                     + f" | {m['no_answer_rate']:.3f} | {m['response_len_mean']:.0f} |")
    if "pi1" in results:
        pi1 = results["pi1"]
        lines += ["", f"Gain of pi1 over base: **{pi1['acc'] - base['acc']:+.3f}** overall; per category: "
                  + ", ".join(f"{c} {pi1['by_subject'][c] - base['by_subject'][c]:+.3f}" for c in cats) + "."]
    lines += ["", "Plots: " + ", ".join(f"`{p.relative_to(out)}`" for p in plots + [out / "plots" / "accuracy_by_category.png"]),
              "", "## Commands that reproduce each step", "", "```bash", *commands, "```"]
    return "\n".join(lines) + "\n"
