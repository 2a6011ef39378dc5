"""Run a named experiment recipe: arms x seeds of `rlvr train`, shared and resumable.

A recipe (configs/experiments/NAME.yaml) names a training preset, overrides common to every arm,
and its arms (more overrides, or a training set to build). Placeholders in overrides are filled
from the selection the paper's method makes: `{pi1}`, `{pi13}` (the k-th pool example by historical
variance of a full-pool history run, run once per experiment folder), `{random1}`, `{random2}`, ...
(seeded draws from the pool), `{top:CATEGORY}` (the highest-variance example of a category).

Each (arm, seed) is one training run in OUT/runs/<arm>-s<seed>-<hash of its resolved config>, so
runs with identical configs are shared between experiments and a re-run skips finished runs and
resumes an interrupted one from its checkpoint. The step-0 evaluation of every run is the base
model's score from the same harness.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rlvr.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "configs" / "experiments"


@dataclass
class Arm:
    name: str
    overrides: list[str] = field(default_factory=list)
    build: dict | None = None  # a training set to build: {indices, repeat, wrong_label, label_noise}


@dataclass
class Recipe:
    name: str
    title: str
    finding: str
    preset: Path
    overrides: list[str]
    arms: list[Arm]
    analyses: list[str]
    history: dict
    path: Path
    pool: str = "testbed/pool"
    benchmark: str = "testbed/test"


def recipe_names(gpu: bool = False) -> list[str]:
    folder = RECIPES / "gpu" if gpu else RECIPES
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_recipe(name: str, gpu: bool = False) -> Recipe:
    """A recipe by name (configs/experiments[/gpu]/NAME.yaml) or by the path of a YAML file."""
    folder = RECIPES / "gpu" if gpu else RECIPES
    path = Path(name) if name.endswith((".yaml", ".yml")) else folder / f"{name}.yaml"
    if not path.exists():
        from rlvr.errors import closest

        raise UserError(f"unknown experiment {name!r}{closest(name, recipe_names(gpu))}; "
                        f"known: {', '.join(recipe_names(gpu))}")
    d = yaml.safe_load(path.read_text()) or {}
    missing = [k for k in ("title", "finding", "preset", "arms") if k not in d]
    if missing:
        raise UserError(f"{path}: missing {', '.join(missing)}")
    arms = []
    for arm_name, spec in d["arms"].items():
        spec = spec or {}
        if isinstance(spec, list):
            spec = {"overrides": spec}
        unknown = set(spec) - {"overrides", "build"}
        if unknown:
            raise UserError(f"{path}: arm {arm_name!r} has unknown keys {sorted(unknown)} (overrides, build)")
        arms.append(Arm(arm_name, list(spec.get("overrides", [])), spec.get("build")))
    return Recipe(name=path.stem, title=d["title"], finding=d["finding"], preset=(path.parent / d["preset"]).resolve(),
                  overrides=list(d.get("overrides", [])), arms=arms, analyses=list(d.get("analyses", ["final"])),
                  history=d.get("history", {}), path=path, pool=d.get("pool", "testbed/pool"),
                  benchmark=d.get("benchmark", "testbed/test"))


# --- selection placeholders ----------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([a-z]+)(\d*)(?::([a-z_]+))?\}")


def needs_selection(recipe: Recipe) -> bool:
    text = " ".join(recipe.overrides + [o for a in recipe.arms for o in a.overrides] +
                    [json.dumps(a.build) for a in recipe.arms if a.build])
    return bool(re.search(r"\{(pi\d+|top:[a-z_]+)\}", text))


def history_run(recipe: Recipe, out: Path, console) -> dict[str, list[float]]:
    """The full-pool run whose per-example accuracy history ranks the pool (run once per OUT), or the
    paper's own record (`history: {source: paper}`, for the dsr_sub pool)."""
    if (recipe.history or {}).get("source") == "paper":
        from rlvr.data import paper_accuracy_history

        return paper_accuracy_history()
    from rlvr.config import load_config
    from rlvr.trainer.config import TrainConfig
    from rlvr.trainer.loop import train

    run_dir = out / "history"
    done = run_dir / "acc_history.json"
    if (run_dir / "final" / "config.json").exists() and done.exists():
        return json.loads(done.read_text())
    h = recipe.history or {}
    preset = (recipe.path.parent / h.get("preset", "../testbed/pool-grpo.yaml")).resolve()
    overrides = [*h.get("overrides", []), f"run_dir={run_dir}", "eval.benchmarks=[]", "log_rollouts=false"]
    console.rule("selection: full-pool history run")
    train(load_config(TrainConfig, preset, overrides), resume=run_dir.exists(), console=console)
    return json.loads(done.read_text())


def selection(recipe: Recipe, out: Path, console) -> dict[str, int]:
    """{'pi1': index, 'pi13': index, 'top:algebra': index, ...} from the history run's ranking."""
    from rlvr.data import load
    from rlvr.select.scores import rank_examples

    history = history_run(recipe, out, console)
    ranking = [int(k) for k, _ in rank_examples(history, "variance")]
    subject = {p.index: p.subject for p in load(recipe.pool)}
    sel = {f"pi{k + 1}": idx for k, idx in enumerate(ranking)}
    for idx in ranking:
        sel.setdefault(f"top:{subject.get(idx)}", idx)
    return sel


def resolve(text: str, sel: dict[str, int], pool_size: int, seed: int = 0) -> str:
    def sub(m: re.Match) -> str:
        kind, num, cat = m.group(1), m.group(2), m.group(3)
        if kind == "random":
            return str(random.Random(f"experiment-random-{num}").randrange(pool_size))
        key = f"top:{cat}" if kind == "top" else f"{kind}{num}"
        if key not in sel:
            raise UserError(f"placeholder {m.group(0)} has no value (selection has {len(sel)} ranked examples)")
        return str(sel[key])

    return _PLACEHOLDER.sub(sub, text)


# --- running --------------------------------------------------------------------------------------

def run_dir_for(out: Path, arm: str, seed: int, resolved: list[str], preset: Path) -> Path:
    key = hashlib.sha256(json.dumps([str(preset.name), sorted(resolved)]).encode()).hexdigest()[:8]
    return out / "runs" / f"{re.sub(r'[^A-Za-z0-9_.+-]', '_', arm)}-s{seed}-{key}"


def build_training_file(spec: dict, dest: Path, seed: int, pool: str = "testbed/pool") -> Path:
    """A verl file for an arm's `build:` spec; `wrong_label: auto` draws a plausible wrong label."""
    from rlvr.data import load
    from rlvr.data.build import build_rows, plausible_wrong_label
    from rlvr.data.verl import write_verl

    indices = [int(i) for i in spec["indices"]]
    wrong = spec.get("wrong_label")
    if wrong == "auto":
        problems = load(pool)
        gold = next(p.answer for p in problems if p.index == indices[0])
        wrong = plausible_wrong_label(gold, random.Random(f"wrong-label-{seed}"), [p.answer for p in problems])
    rows = build_rows(pool, indices, repeat=int(spec.get("repeat", 8)),
                      label_noise=float(spec.get("label_noise", 0.0)), wrong_label=wrong, seed=seed)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_verl(rows, dest, force=True)
    return dest


def plan(recipe: Recipe, out: Path, seeds: list[int], sel: dict[str, int]) -> list[dict]:
    """[{arm, seed, run_dir, overrides}] with every placeholder resolved."""
    from rlvr.data import load

    n = len(load(recipe.pool))
    jobs = []
    for seed in seeds:
        for arm in recipe.arms:
            resolved = [resolve(o, sel, n) for o in recipe.overrides + arm.overrides] + [f"seed={seed}"]
            build = None
            if arm.build:
                build = json.loads(resolve(json.dumps(arm.build), sel, n))
                resolved.append(f"build={json.dumps(build, sort_keys=True)}")  # part of the run's identity
            rd = run_dir_for(out, arm.name, seed, resolved, recipe.preset)
            resolved = [o for o in resolved if not o.startswith("build=")]
            if build:
                resolved += [f"data.train={rd / 'train.jsonl'}", "data.indices=null"]
            jobs.append({"arm": arm.name, "seed": seed, "run_dir": rd, "overrides": resolved + [f"run_dir={rd}"],
                         "build": build})
    return jobs


def run_experiment(name: str, seeds: int = 3, out: Path | None = None, console=None, gpu: bool = False) -> Path:
    """Run (or resume) every job of the recipe; returns the experiment folder (results in results.json)."""
    from rich.console import Console

    from rlvr.config import load_config
    from rlvr.trainer.config import TrainConfig
    from rlvr.trainer.loop import train
    from rlvr.utils.io import atomic_write_json

    console = console or Console()
    recipe = load_recipe(name, gpu)
    out = Path(out or Path("runs") / "experiments")
    sel = selection(recipe, out, console) if needs_selection(recipe) else {}
    jobs = plan(recipe, out, list(range(seeds)), sel)
    for i, job in enumerate(jobs):
        rd = job["run_dir"]
        console.rule(f"{name} [{i + 1}/{len(jobs)}] arm {job['arm']}, seed {job['seed']}")
        if (rd / "final" / "config.json").exists():
            console.print(f"[dim]{rd}: done, skipped[/]")
            continue
        if job["build"]:
            build_training_file(job["build"], rd / "train.jsonl", job["seed"], recipe.pool)
        cfg = load_config(TrainConfig, recipe.preset, job["overrides"])
        train(cfg, resume=(rd / "metrics.jsonl").exists(), console=console)
    from rlvr.experiments.report import summarise

    exp_dir = out / recipe.name
    results = summarise(recipe, jobs, sel)
    atomic_write_json(exp_dir / "results.json", results)
    from rlvr.experiments.report import write_experiment_report

    write_experiment_report(recipe, results, exp_dir, jobs)
    return exp_dir
