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

import functools
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

    h = recipe.history or {}
    unknown = set(h) - {"preset", "overrides", "sub_pool", "source"}
    if unknown:
        raise UserError(f"{recipe.path}: history has unknown keys {sorted(unknown)} (preset, overrides, sub_pool, source)")
    preset = (recipe.path.parent / h.get("preset", "../testbed/pool-grpo.yaml")).resolve()
    overrides = list(h.get("overrides", []))
    if h.get("sub_pool"):  # the first N pool examples, as `rlvr demo` does, to fit a CPU budget
        from rlvr.data import load

        overrides.append(f"data.indices={[p.index for p in load(recipe.pool)[: int(h['sub_pool'])]]}")
    overrides += ["eval.benchmarks=[]", "log_rollouts=false"]
    run_dir = out / f"history-{run_identity(preset, overrides, None)}"  # recipes with the same history share it
    done = run_dir / "acc_history.json"
    if (run_dir / "final" / "config.json").exists() and done.exists():
        return json.loads(done.read_text())
    overrides.append(f"run_dir={run_dir}")
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

def run_identity(preset: Path, overrides: list[str], build: dict | None) -> str:
    """A short hash of the run's resolved training config (and its built training set), so that two arms
    of different experiments with the same config share one run; run_dir and threads are not part of it."""
    from rlvr.config import load_config, to_dict
    from rlvr.trainer.config import TrainConfig

    d = to_dict(load_config(TrainConfig, preset, overrides + (["data.indices=null"] if build else [])))
    d["model_weights"] = weights_digest(d["model"]["path"])  # a rebuilt or replaced model is a new run
    d.pop("run_dir", None)
    d.pop("threads", None)
    if build:
        d["data"].pop("train", None)
        d["build"] = build
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:10]


@functools.lru_cache(maxsize=8)
def weights_digest(name_or_path: str) -> str:
    """sha256 of a local model's weight files (once per process), or the name itself if it is not local."""
    from rlvr.models import resolve_model_path

    try:
        folder = resolve_model_path(name_or_path)
    except UserError:
        return str(name_or_path)
    h = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()[:16]


def run_dir_for(out: Path, arm: str, seed: int, key: str) -> Path:
    """OUT/runs/<arm>-s<seed>-<key>, or the existing folder of another experiment's arm with the same key."""
    existing = sorted((out / "runs").glob(f"*-s{seed}-{key}"))
    if existing:
        return existing[0]
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
            build = json.loads(resolve(json.dumps(arm.build), sel, n)) if arm.build else None
            rd = run_dir_for(out, arm.name, seed, run_identity(recipe.preset, resolved, build))
            if build:
                resolved += [f"data.train={rd / 'train.jsonl'}", "data.indices=null"]
            jobs.append({"arm": arm.name, "seed": seed, "run_dir": rd, "overrides": resolved + [f"run_dir={rd}"],
                         "build": build})
    return jobs


def default_jobs() -> int:
    """Training runs at once: one per CPU core on CPU (each single-threaded), up to 8; one on a GPU."""
    import os

    import torch

    return 1 if torch.cuda.is_available() else max(1, min(os.cpu_count() or 1, 8))


def train_job(preset: str, job: dict, pool: str, threads: int | None = None, log: str | None = None,
              console=None) -> str:
    """One (arm, seed) run, from scratch or resumed; in a worker process when jobs > 1, its output to `log`."""
    from rich.console import Console

    from rlvr.config import load_config
    from rlvr.trainer.config import TrainConfig
    from rlvr.trainer.loop import train

    rd = Path(job["run_dir"])
    if job["build"]:
        build_training_file(job["build"], rd / "train.jsonl", job["seed"], pool)
    overrides = job["overrides"] + ([f"threads={threads}"] if threads else [])
    cfg = load_config(TrainConfig, Path(preset), overrides)
    rd.mkdir(parents=True, exist_ok=True)
    if log is None:
        train(cfg, resume=(rd / "metrics.jsonl").exists(), console=console)
    else:
        with open(log, "a") as f:
            train(cfg, resume=(rd / "metrics.jsonl").exists(), console=Console(file=f, width=120))
    return str(rd)


def run_experiment(name: str, seeds: int = 3, out: Path | None = None, console=None, gpu: bool = False,
                   jobs: int | None = None) -> Path:
    """Run (or resume) every run of the recipe, `jobs` at a time; returns the experiment folder
    (results in results.json, report.md, plots)."""
    import time

    from rich.console import Console

    from rlvr.config import load_config
    from rlvr.experiments.report import summarise, write_experiment_report
    from rlvr.trainer.config import TrainConfig
    from rlvr.utils.io import atomic_write_json

    console = console or Console()
    recipe = load_recipe(name, gpu)
    out = Path(out or Path("runs") / "experiments")
    t0 = time.time()
    sel = selection(recipe, out, console) if needs_selection(recipe) else {}
    planned = plan(recipe, out, list(range(seeds)), sel)
    todo, seen = [], set()
    for job in planned:  # one run per folder: arms with identical configs share it
        if str(job["run_dir"]) in seen:
            continue
        seen.add(str(job["run_dir"]))
        if (job["run_dir"] / "final" / "config.json").exists():
            console.print(f"[dim]{job['arm']} seed {job['seed']}: done ({job['run_dir']}), skipped[/]")
        else:
            todo.append(job)
    jobs = max(1, min(jobs or default_jobs(), len(todo) or 1))
    console.rule(f"{name}: {len(todo)} runs to do ({len(planned)} planned), {jobs} at a time")
    if jobs == 1:
        for i, job in enumerate(todo):
            console.rule(f"{name} [{i + 1}/{len(todo)}] arm {job['arm']}, seed {job['seed']}")
            train_job(str(recipe.preset), job, recipe.pool, console=console)
    else:
        import os

        from rlvr.utils.parallel import Task, run_parallel

        threads = max(1, (os.cpu_count() or 1) // jobs)
        console.print(f"{jobs} runs at a time, {threads} thread(s) each; each run's output: <run>/train.log")
        cfg_steps = {str(j["run_dir"]): load_config(TrainConfig, recipe.preset, j["overrides"]).steps for j in todo}
        tasks = [Task(f"{j['arm']} seed {j['seed']}", train_job, (str(recipe.preset), j, recipe.pool, threads,
                                                                   str(Path(j["run_dir"]) / "train.log")),
                      run_dir=Path(j["run_dir"]), steps=cfg_steps[str(j["run_dir"])]) for j in todo]
        run_parallel(tasks, jobs, console, title=name,
                     on_done=lambda t, c: c.print(f"done: {t.label} ({t.run_dir})"))
    exp_dir = out / recipe.name
    results = summarise(recipe, planned, sel)
    prev = json.loads((exp_dir / "results.json").read_text()) if (exp_dir / "results.json").exists() else {}
    # wall time of the session that ran the runs (a re-run that finds them all done keeps the earlier figure)
    results["wall_s"] = round(time.time() - t0, 1) if todo or "wall_s" not in prev else prev["wall_s"]
    results["jobs"] = jobs if todo or "jobs" not in prev else prev["jobs"]
    results["runs_run"] = len(todo) if todo or "runs_run" not in prev else prev["runs_run"]
    model = load_config(TrainConfig, recipe.preset, []).model.path
    results["model"], results["model_weights"] = model, weights_digest(model)  # the report flags results of other weights
    atomic_write_json(exp_dir / "results.json", results)
    write_experiment_report(recipe, results, exp_dir, planned)
    return exp_dir

