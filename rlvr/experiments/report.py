"""Aggregate an experiment's runs (mean and 95% interval over seeds), decide its verdict from the
numbers, and write its markdown table and PNG plots; `gather` puts every experiment into one page.

Reads run folders only (metrics.jsonl and eval/step_N/summary.json written by the trainer).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

# two-sided 95% Student t quantiles by degrees of freedom
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def mean_ci(xs: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t interval); the half-width is nan for a single value."""
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return float("nan"), float("nan")
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, float("nan")
    return m, _T95.get(len(xs) - 1, 1.96) * statistics.stdev(xs) / math.sqrt(len(xs))


def fmt(mc: tuple[float, float], pct: bool = True) -> str:
    m, h = mc
    if math.isnan(m):
        return "-"
    k = 100 if pct else 1
    return f"{k * m:.1f}" + ("" if math.isnan(h) else f" ± {k * h:.1f}")


def _metrics(run_dir: Path) -> list[dict]:
    p = run_dir / "metrics.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


def _eval_summary(run_dir: Path, step: int, benchmark: str) -> dict | None:
    p = run_dir / "eval" / f"step_{step}" / "summary.json"
    if not p.exists():
        return None
    return json.loads(p.read_text())["benchmarks"].get(benchmark)


def run_summary(run_dir: Path, benchmark: str = "testbed/test") -> dict:
    """Per-run numbers: base (step 0) and final accuracy overall and per subject, curves, saturation."""
    rows = _metrics(run_dir)
    key = f"eval/{benchmark}/acc"
    evals = [(r["step"], r[key]) for r in rows if key in r]
    steps = sorted({int(p.name.split("_")[1]) for p in (run_dir / "eval").glob("step_*")}) if (run_dir / "eval").exists() else []
    first, last = (steps[0], steps[-1]) if steps else (None, None)
    s0 = _eval_summary(run_dir, first, benchmark) if first is not None else None
    s1 = _eval_summary(run_dir, last, benchmark) if last is not None else None
    train = [(r["step"], r["critic/score/mean"]) for r in rows if "critic/score/mean" in r]
    sat = next((s for s, v in train if v >= 0.99), None)
    return {
        "run_dir": str(run_dir), "base_acc": s0["acc"] if s0 else None, "final_acc": s1["acc"] if s1 else None,
        "base_by_subject": (s0 or {}).get("by_subject", {}), "final_by_subject": (s1 or {}).get("by_subject", {}),
        "base_no_answer": (s0 or {}).get("no_answer_rate"), "final_no_answer": (s1 or {}).get("no_answer_rate"),
        "eval_curve": evals, "train_curve": train, "saturation_step": sat,
        "acc_at_saturation": next((a for s, a in evals if sat is not None and s >= sat), None),
        "reflection_curve": [(r["step"], r["train/reflection_rate"]) for r in rows if "train/reflection_rate" in r],
        "length_curve": [(r["step"], r["response_length/mean"]) for r in rows if "response_length/mean" in r],
        "final_step": rows[-1]["step"] if rows else 0,
        "run_s": round(sum(r.get("timing/step", 0.0) for r in rows), 1),  # training + periodic evals, this run's own time
    }


def summarise(recipe, jobs: list[dict], sel: dict) -> dict:
    """Per arm: the per-seed run summaries and their aggregates."""
    arms: dict[str, dict] = {}
    for job in jobs:
        arms.setdefault(job["arm"], {"runs": []})["runs"].append(
            dict(run_summary(Path(job["run_dir"]), recipe.benchmark), seed=job["seed"]))
    base_all = [r["base_acc"] for a in arms.values() for r in a["runs"] if r["base_acc"] is not None]
    for a in arms.values():
        runs = a["runs"]
        a["final"] = mean_ci([r["final_acc"] for r in runs])
        a["gain"] = mean_ci([r["final_acc"] - r["base_acc"] for r in runs if r["final_acc"] is not None and r["base_acc"] is not None])
        subjects = sorted({s for r in runs for s in r["final_by_subject"]})
        a["by_subject"] = {s: mean_ci([r["final_by_subject"].get(s) for r in runs]) for s in subjects}
        a["gain_by_subject"] = {s: mean_ci([r["final_by_subject"][s] - r["base_by_subject"][s] for r in runs
                                            if s in r["final_by_subject"] and s in r["base_by_subject"]]) for s in subjects}
        a["saturation_step"] = [r["saturation_step"] for r in runs]
        a["gain_after_saturation"] = mean_ci([r["final_acc"] - r["acc_at_saturation"] for r in runs
                                              if r["acc_at_saturation"] is not None and r["final_acc"] is not None])
        a["no_answer"] = (mean_ci([r["base_no_answer"] for r in runs]), mean_ci([r["final_no_answer"] for r in runs]))
    return {"name": recipe.name, "title": recipe.title, "finding": recipe.finding, "selection": sel and
            {k: v for k, v in sel.items() if k in ("pi1", "pi2", "pi13") or k.startswith("top:")},
            "base": mean_ci(base_all), "arms": arms, "verdict": verdict(recipe.name, arms, mean_ci(base_all))}


def tenths(curve: list) -> tuple[float, float] | None:
    """(mean of the first tenth of a [(step, value), ...] curve, mean of its last tenth); None if empty."""
    if not curve:
        return None
    k = max(1, len(curve) // 10)
    return statistics.fmean(v for _, v in curve[:k]), statistics.fmean(v for _, v in curve[-k:])


def _sig(mc: tuple[float, float]) -> bool:
    m, h = mc
    return not math.isnan(m) and not math.isnan(h) and m - h > 0


def verdict(name: str, arms: dict, base) -> dict:
    """A plain verdict from explicit rules on the numbers (stated with the verdict)."""
    g = {k: a["gain"][0] for k, a in arms.items()}

    def out(v, rule):
        return {"verdict": v, "rule": rule}

    if name == "one-shot":
        if "pi1" not in arms:
            return out("n/a", "needs arm pi1")
        full = g.get("full-pool", float("nan"))
        rnd = [g[k] for k in g if k.startswith("random")]
        rule = ("reproduces: pi1's gain is significant (95% interval above 0) and at least 80% of the full pool's; "
                "partly: significant but smaller; contradicts: not significant")
        if not _sig(arms["pi1"]["gain"]):
            return out("contradicts", rule)
        v = "reproduces" if not math.isnan(full) and g["pi1"] >= 0.8 * full else "partly reproduces"
        d = out(v, rule)
        d["random_mean_gain"] = statistics.fmean(rnd) if rnd else None
        return d
    if name == "post-saturation":
        a = arms.get("pi1") or next(iter(arms.values()))
        rule = ("reproduces: training reward saturates (>= 0.99) in every seed and held-out accuracy rises after it "
                "(95% interval above 0); partly: it rises but not significantly; contradicts: no rise or no saturation")
        if any(s is None for s in a["saturation_step"]):
            return out("contradicts (no saturation in some seed)", rule)
        m, h = a["gain_after_saturation"]
        return out("reproduces" if _sig(a["gain_after_saturation"]) else "partly reproduces" if m > 0 else "contradicts", rule)
    if name == "cross-category":
        rule = ("reproduces: each 1-shot arm gains significantly on categories other than its own in most cases; "
                "partly: in some; contradicts: in none")
        hits = total = 0
        for k, a in arms.items():
            own = k.split(":")[-1]
            for s, mc in a["gain_by_subject"].items():
                if s != own:
                    total += 1
                    hits += _sig(mc)
        frac = hits / total if total else 0.0
        d = out("reproduces" if frac >= 0.5 else "partly reproduces" if hits else "contradicts", rule)
        d["significant_cross_gains"] = f"{hits}/{total}"
        return d
    if name == "loss-ablation":
        rule = ("reproduces: policy-gradient-only gains significantly (95% interval above 0), adding weight decay "
                "and then the KL loss changes the gain by less than the intervals, and the entropy term alone gains "
                "significantly too; partly: the policy-gradient gain holds but another part does not; contradicts: "
                "policy-gradient-only does not gain")
        pg, wd, kl, ent = (arms.get(k) for k in ("pg-only", "pg+wd", "pg+wd+kl", "entropy-only"))
        if pg is None or not _sig(pg["gain"]):
            return out("contradicts", rule)

        def close(x, y) -> bool:  # the two arms' gains differ by less than their intervals combined
            return x is not None and y is not None and abs(x["gain"][0] - y["gain"][0]) <= \
                (0 if math.isnan(x["gain"][1]) else x["gain"][1]) + (0 if math.isnan(y["gain"][1]) else y["gain"][1])
        parts = {"weight decay not needed": close(pg, wd), "KL matters little": close(wd, kl),
                 "entropy alone gains": ent is not None and _sig(ent["gain"])}
        d = out("reproduces" if all(parts.values()) else "partly reproduces", rule)
        d["holds"] = ", ".join(k for k, v in parts.items() if v) or "none"
        d["fails"] = ", ".join(k for k, v in parts.items() if not v) or "none"
        return d
    if name == "label-noise":
        rule = ("reproduces: with a wrong label the single example gains much less than with its right label, and "
                "a small set with moderate noise keeps most of the clean gain; partly: one of the two")
        clean, wrong = arms.get("pi1"), arms.get("pi1-wrong-label")
        a_ok = clean is not None and wrong is not None and wrong["gain"][0] < 0.5 * clean["gain"][0]
        s0, s1 = arms.get("set-clean"), arms.get("set-noise-40")
        b_ok = s0 is not None and s1 is not None and s1["gain"][0] >= 0.5 * s0["gain"][0] and _sig(s1["gain"])
        return out("reproduces" if a_ok and b_ok else "partly reproduces" if a_ok or b_ok else "contradicts", rule)
    if name == "reflection":
        rule = ("reproduces: the self-reflection rate and the response length both rise from the first tenth of the "
                "training steps to the last tenth in every seed; partly: one of them; contradicts: neither")
        a = arms.get("pi1") or next(iter(arms.values()))
        def up(curve: list) -> bool:  # mean of the last tenth of the steps above that of the first tenth
            t = tenths(curve)
            return t is not None and t[1] > t[0]

        r = all(up(x["reflection_curve"]) for x in a["runs"])
        ln = all(up(x["length_curve"]) for x in a["runs"])
        return out("reproduces" if r and ln else "partly reproduces" if r or ln else "contradicts", rule)
    return out("n/a", "no rule for this experiment")


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot(results: dict, exp_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    panels = [("eval_curve", "held-out accuracy"), ("train_curve", "training reward"),
              ("reflection_curve", "self-reflection rate (training samples)"), ("length_curve", "response length (tokens)")]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    for ax, (key, title) in zip(axes, panels):
        for arm, a in results["arms"].items():
            curves = [r[key] for r in a["runs"] if r[key]]
            if not curves:
                continue
            steps = sorted({s for c in curves for s, _ in c})
            ys = [statistics.fmean([dict(c)[s] for c in curves if s in dict(c)]) for s in steps]
            ax.plot(steps, ys, label=arm)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    paths.append(_save(fig, exp_dir / f"{results['name']}-curves.png"))

    # gain over base per arm, overall and per category, with 95% intervals over seeds
    arms = list(results["arms"])
    subjects = sorted({s for a in results["arms"].values() for s in a["gain_by_subject"]})
    groups = ["overall", *subjects]
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(groups)), 4))
    width = 0.8 / max(1, len(arms))
    for i, arm in enumerate(arms):
        a = results["arms"][arm]
        mcs = [tuple(a["gain"])] + [tuple(a["gain_by_subject"].get(s, (float("nan"),) * 2)) for s in subjects]
        xs = [g + (i - (len(arms) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [100 * m for m, _ in mcs], width, label=arm,
               yerr=[0 if math.isnan(h) else 100 * h for _, h in mcs], capsize=2)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("held-out gain over base (points)")
    ax.set_title(f"{results['name']}: final minus step 0, mean and 95% interval over seeds")
    ax.legend(fontsize=7)
    paths.append(_save(fig, exp_dir / f"{results['name']}-gains.png"))
    return paths


def _kept_notes(text: str) -> dict[str, str]:
    """Hand-written notes of a results page, `<!-- notes:NAME -->...<!-- /notes -->`, kept when it is regenerated."""
    import re

    return {m.group(1): m.group(0) for m in re.finditer(r"<!-- notes:([a-z0-9_-]+) -->.*?<!-- /notes -->", text, re.S)}


def model_mismatch(results: dict) -> str:
    """Why `results` may not describe the model its preset now loads ('' when they match)."""
    from rlvr.experiments.runner import weights_digest

    model = results.get("model", "testbed")
    now = weights_digest(model)
    if now == str(model):  # not a model on this machine (e.g. a GPU preset's path): nothing to compare
        return ""
    if "model_weights" not in results:
        return (f"these results do not record which weights of `{model}` they were measured on; re-run "
                f"`rlvr experiment {results['name']}` to measure the current ones (weights {now}).")
    if results["model_weights"] != now:
        return (f"measured on weights {results['model_weights']} of `{model}`, which now has weights {now} "
                f"(rebuilt or replaced); re-run `rlvr experiment {results['name']}` to measure them.")
    return ""


def experiment_markdown(results: dict, plots: list[Path], rel_to: Path, commands: list[str], notes: str = "") -> str:
    arms = results["arms"]
    subjects = sorted({s for a in arms.values() for s in a["by_subject"]})
    n_seeds = max((len(a["runs"]) for a in arms.values()), default=0)
    lines = [f'<a id="{results["name"]}"></a>', "", f"## {results['name']}: {results['title']}", "", f"Paper's finding: {results['finding']}", "",
             f"**Verdict on the testbed: {results['verdict']['verdict']}** (rule: {results['verdict']['rule']}).", ""]
    stale = model_mismatch(results)
    if stale:
        lines += [f"**Stale:** {stale}", ""]
    if notes:
        lines += [notes, ""]
    extra = {k: v for k, v in results["verdict"].items() if k not in ("verdict", "rule") and v is not None}
    if extra:
        lines += [", ".join(f"{k}: {v if not isinstance(v, float) else f'{100 * v:.1f} points'}" for k, v in extra.items()), ""]
    if results.get("selection"):
        lines += ["Selected pool examples: " + ", ".join(f"{k} = {v}" for k, v in results["selection"].items()), ""]
    lines += [f"Held-out `testbed/test` accuracy in %, mean ± 95% interval over {n_seeds} seeds; base (step 0, same "
              f"harness) {fmt(results['base'])}.", "",
              "| arm | final | gain over base | no-box rate base -> final | " + " | ".join(subjects) + " |",
              "|---|---|---|---|" + "---|" * len(subjects)]
    for name, a in arms.items():
        nb0, nb1 = a["no_answer"]
        lines.append(f"| {name} | {fmt(a['final'])} | {fmt(a['gain'])} | {fmt(nb0)} -> {fmt(nb1)} | " +
                     " | ".join(fmt(a["gain_by_subject"].get(s, (float('nan'),) * 2)) for s in subjects) + " |")
    lines += ["", "(per-category columns: gain over base in points)", ""]
    if results["name"] == "reflection":
        for name, a in arms.items():
            for key, what in (("reflection_curve", "self-reflection rate"), ("length_curve", "response length")):
                ts = [t for t in (tenths(r[key]) for r in a["runs"]) if t is not None]
                firsts, lasts = [t[0] for t in ts], [t[1] for t in ts]
                lines.append(f"- {name}: {what} (training samples), first tenth of the steps "
                             f"{fmt(mean_ci(firsts), key == 'reflection_curve')} -> last tenth "
                             f"{fmt(mean_ci(lasts), key == 'reflection_curve')}{' %' if key == 'reflection_curve' else ' tokens'}")
        lines.append("")
    if "wall_s" in results:
        runs = {r["run_dir"]: r.get("run_s", 0.0) for a in arms.values() for r in a["runs"]}
        ran = results.get("runs_run", len(runs))
        how = (f"its command ran {ran} of them in {results['wall_s'] / 60:.1f} min wall, {results.get('jobs', 1)} at a "
               "time (the others were finished by an earlier experiment with the same config and reused)" if ran else
               "every run was finished by an earlier experiment with the same config and reused")
        lines += [f"Time: {len(runs)} runs, {sum(runs.values()) / 60:.1f} run-minutes in all (each run's own training "
                  f"and evaluation time); {how}.", ""]
    if results["name"] in ("post-saturation",):
        for name, a in arms.items():
            lines.append(f"- {name}: training reward first >= 0.99 at steps {a['saturation_step']}; held-out change "
                         f"after that step {fmt(a['gain_after_saturation'])} points")
        lines.append("")
    for p in plots:
        lines += [f"![{p.stem}]({p.relative_to(rel_to)})", ""]
    lines += ["Reproduce:", "", "```bash", *commands, "```", ""]
    return "\n".join(lines)


def write_experiment_report(recipe, results: dict, exp_dir: Path, jobs: list[dict]) -> Path:
    from rlvr.utils.io import atomic_write_text

    exp_dir.mkdir(parents=True, exist_ok=True)
    plots = _plot(results, exp_dir)
    seeds = len({j["seed"] for j in jobs})
    md = experiment_markdown(results, plots, exp_dir, [f"rlvr experiment {recipe.name} --seeds {seeds}"])
    atomic_write_text(exp_dir / "report.md", md)
    return exp_dir / "report.md"


def gather(out: Path, dest: Path) -> Path:
    """docs/results.md from every finished experiment under `out` (plots copied next to it)."""
    import shutil

    from rlvr.utils.io import atomic_write_text

    notes = _kept_notes(dest.read_text()) if dest.exists() else {}
    figs = dest.parent / "results"
    figs.mkdir(parents=True, exist_ok=True)
    parts = ["# rlvr on the testbed: the paper's findings", "",
             "Generated by `rlvr experiment report` from the runs of `rlvr experiment NAME --seeds 3` on the testbed "
             "model; a section measured on other weights than the model has now is marked stale. Each section "
             "states the paper's finding, a verdict decided by the stated rule from the numbers, the table and the "
             "plots. Notes between `<!-- notes:NAME -->` and `<!-- /notes -->` are written "
             "by hand and kept when the page is regenerated.", ""]
    found = sorted(out.glob("*/results.json"))
    if found:
        parts += ["| experiment | verdict on the testbed | runs | run-minutes | wall (min) |", "|---|---|---|---|---|"]
        for rj in found:
            r = json.loads(rj.read_text())
            runs = {x["run_dir"]: x.get("run_s", 0.0) for a in r["arms"].values() for x in a["runs"]}
            wall = (f"{r['wall_s'] / 60:.1f} ({r.get('runs_run', len(runs))} runs, {r.get('jobs', 1)} at a time)"
                    if "wall_s" in r and r.get("runs_run", 1) else "0 (all reused)" if "wall_s" in r else "-")
            stale = " (stale: other model weights)" if model_mismatch(r) else ""
            parts.append(f"| [{r['name']}](#{r['name']}) | {r['verdict']['verdict']}{stale} | {len(runs)} | "
                         f"{sum(runs.values()) / 60:.1f} | {wall} |")
        parts += ["", "Run-minutes: the sum of each run's own training and evaluation time; wall: what the experiment's "
                  "command took (runs it shares with an experiment run before it are reused, not re-run).", ""]
    if "overview" in notes:  # hand-written notes on the whole page
        parts += [notes["overview"], ""]
    for rj in found:
        results = json.loads(rj.read_text())
        plots = []
        for p in sorted(rj.parent.glob("*.png")):
            shutil.copy2(p, figs / p.name)
            plots.append(figs / p.name)
        seeds = max((len(a["runs"]) for a in results["arms"].values()), default=0)
        results["arms"] = {k: {**a, **{f: tuple(a[f]) for f in ("final", "gain")}} for k, a in results["arms"].items()}
        parts.append(experiment_markdown(results, plots, dest.parent, [f"rlvr experiment {results['name']} --seeds {seeds}"],
                                         notes.get(results["name"], "")))
    atomic_write_text(dest, "\n".join(parts))
    return dest
