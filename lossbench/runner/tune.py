"""`lossbench tune`: every strategy tuned with the same budget on validation, each chosen
setting retrained on fresh seeds, paired, and tune.json for the verdict.

    result = tune(base, ["builtins"], trials=20, seeds=[0, 1], final_seeds=5)

1. Arms (`plan_arms`): `main-only` (L_aux off) and `plain`, and `weighted` (the tuned
   scalarisation) whenever a weighting other than plain is compared, unless `baselines` is
   False; then the strategies asked for. Kurin et al. and Xin et al. (NeurIPS 2022) found
   that most gains of loss weighting vanish once these get the same tuning budget.
2. Spaces (space.py): each arm's tuned settings (default lr), its strategy's parameters with
   a tuning range, and its flood level. A relative flood-level range is in multiples of the
   no-flood baseline's training loss at its best validation epoch: those reference runs
   (`runner.sweep.baseline_level`) run first, on the tuning seeds, at the configured
   settings, and count in the arm's budget.
3. Trials, in rounds: each round proposes the next trial of every arm that needs one
   (study.py: Optuna, deterministic, resumable), and runs them together (arms x tuning
   seeds, through `run_all`: worker processes, fused groups or Ray tasks, the sampler here).
   Every arm gets exactly `trials` trials, each on the same tuning seeds (paired across
   arms and trials). A trial's score is the mean over the tuning seeds of `select` at each
   run's best epoch by `select`; a run that diverged scores chance level
   (`training.metrics.chance_level`): it counts against its arm, never drops out.
4. Choice: the trial with the best score (lowest for a loss, highest otherwise); a tie goes
   to the earlier trial. Validation only: no test metric is read before step 5.
5. Final runs: every arm's chosen setting on `final_seeds` seeds, FINAL_SEED_OFFSET + seed
   + i, disjoint from the tuning seeds and the same for every arm (paired). Their test
   metrics (a diverged run at chance level again) are the verdict's evidence.

Everything lands in `<out>/tune-<task>-<hash>/`: the run folders, Optuna's journal
(`journal.log`) and tune.json. The hash covers the settings, the arms and their spaces, the
selection metric, the tuning seeds and the sampler, not `trials` or `final_seeds`: the same
command continues a killed tune, and a larger budget continues a finished one (its first
trials are the ones the smaller budget ran).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import lossbench
from lossbench import strategies as registry
from lossbench.config import RunConfig, flat, validate, with_settings
from lossbench.errors import ConfigError, LossbenchError
from lossbench.events import Events
from lossbench.results.folders import config_hash, read_json, run_dir_name, write_json
from lossbench.runner.local import (
    Comparison,
    RunOutcome,
    experiment_name,
    make_folder,
    on_ray,
    remove_empty,
    resolve_fuse,
    run_all,
)
from lossbench.runner.plan import plan_setting
from lossbench.runner.space import Dimension, arm_dimensions, check_overrides, parse_space
from lossbench.runner.study import (
    SAMPLERS,
    arm_study,
    complete_trials,
    open_journal,
    propose,
    record_trial,
)
from lossbench.runner.sweep import baseline_level, level_column
from lossbench.runner.workers import resolve_jobs
from lossbench.training.metrics import chance_level
from lossbench.training.trainer import resolve_device

SELECT_METRICS = ("val_loss", "val_acc", "val_hr10", "val_ndcg10")
TEST_METRICS = ("test_loss", "test_acc", "test_hr10", "test_ndcg10")
FINAL_SEED_OFFSET = 10_000
"""Final seeds start here (plus the first seed), whatever the number of tuning seeds: two
tunes of the same settings with different budgets evaluate their choices on the same seeds."""
JOURNAL = "journal.log"
TUNE_JSON = {
    "kind": "`tune`: marks a tune folder for `lossbench report` and `lossbench plot`",
    "lossbench": "the version that wrote it",
    "created": "when it was written",
    "command": "the command line (null through the Python API)",
    "experiment": "the experiment name of the shared settings (task and settings hash)",
    "select": "the validation metric that scores trials, at each run's best epoch by it",
    "verdict_metric": "its test counterpart, which the verdict's sentences are about",
    "lower_is_better": "the direction of `select` and `verdict_metric`",
    "metrics": "the test metrics of the final runs",
    "tuning_seeds": "the seeds every trial trains on",
    "final_seeds": "the seeds every chosen setting is retrained on (disjoint from the "
                   "tuning seeds)",
    "trials": "trials per arm: the equal budget",
    "sampler": "Optuna sampler: name and seed",
    "tuned_settings": "the shared settings tuned for every arm",
    "fixed": "strategy parameters fixed by their options, left out of every space",
    "chance": "the number of items and what a diverged run scores on each metric (a uniform "
              "random ranking)",
    "storage": "Optuna's journal file in the folder (`optuna-dashboard journal.log`)",
    "arms": "one entry per arm, in comparison order (below)",
}
"""tune.json's keys and what each holds (the reference page lists them)."""
ARM_JSON = {
    "arm": "the arm's label: `main-only`, `plain`, `weighted` or a strategy name",
    "strategy": "the registry strategy it runs (`plain` for main-only)",
    "role": "`baseline` (main-only, plain, weighted) or `compared`",
    "fixed": "settings fixed for this arm (`aux = none` for main-only)",
    "space": "what was tuned: name, kind, type, low, high, log, choices, the reference of a "
             "relative range (`relative_to`) and the range as text",
    "trials": "every trial: number, params, score (mean of `select` over the tuning seeds), "
              "per_seed, diverged (tuning seeds whose run diverged: scored at chance), runs",
    "chosen": "the trial chosen on validation, its params and score, and why",
    "final": "the final runs: seeds, runs, diverged seeds, and per metric its value per seed "
             "(a diverged run at chance)",
    "budget": "what the tuning spent: trials, runs, epochs, cpu_seconds, gpu_seconds and "
              "reference_runs (final runs not counted)",
}
"""An arm's keys in tune.json."""


@dataclass(frozen=True)
class Arm:
    """One strategy as the tune compares it: its label, registry strategy, role ("baseline":
    main-only, plain, weighted; "compared": the others) and settings fixed for it."""

    label: str
    strategy: str
    role: str
    fixed: dict = field(default_factory=dict)


def plan_arms(strategies: list[str], baselines: bool, aux: str) -> list[Arm]:
    """The arms in comparison order (module docstring, step 1). Without L_aux in the
    configuration (`aux` none) main-only is plain, and is left out."""
    names = registry.expand(strategies or ["plain"])
    wanted = []
    if baselines:
        wanted = ["main-only"] * (aux != "none") + ["plain"]
        wanted += ["weighted"] * any(registry.split_name(n)[0] != "plain" for n in names)
    wanted += [n for n in names if n not in wanted]
    return [Arm(label, "plain" if label == "main-only" else label,
                "baseline" if label in ("main-only", "plain", "weighted") else "compared",
                {"aux": "none"} if label == "main-only" else {}) for label in wanted]


def tuning_and_final_seeds(first: int, seeds: int, final_seeds: int) -> tuple[list[int], list[int]]:
    """Tuning seeds first .. first + seeds - 1; final seeds FINAL_SEED_OFFSET + first + i."""
    if seeds >= FINAL_SEED_OFFSET:
        raise ConfigError(f"--seeds must be < {FINAL_SEED_OFFSET} (final seeds start there)")
    return ([first + i for i in range(seeds)],
            [FINAL_SEED_OFFSET + first + i for i in range(final_seeds)])


def lower_is_better(metric: str) -> bool:
    return metric.endswith("_loss")


def run_value(outcome: RunOutcome, metric: str, chance: float) -> tuple[float, bool]:
    """A run's `metric` at its best epoch, and whether it diverged (then: `chance`)."""
    value = outcome.summary.get(metric)
    if outcome.summary.get("status") != "complete" or value is None:
        return chance, True
    return float(value), False


def n_items_of(outcome: RunOutcome) -> int:
    """The task's number of items, from the run folder's config.json."""
    return int(read_json(outcome.dir / "config.json")["task_info"]["n_items"])


def spent(folder: Path, names: list[str]) -> dict:
    """Runs, epochs and CPU/GPU wall seconds of the run folders `names` (each counted once)."""
    out = {"runs": 0, "epochs": 0, "cpu_seconds": 0.0, "gpu_seconds": 0.0}
    for name in dict.fromkeys(names):
        summary = read_json(folder / name / "summary.json")
        device = read_json(folder / name / "config.json").get("device_used", "cpu")
        out["runs"] += 1
        out["epochs"] += int(summary.get("epochs_run", 0))
        key = "gpu_seconds" if device.startswith("cuda") else "cpu_seconds"
        out[key] += float(summary.get("wall_seconds", 0.0))
    return out


class Tune:
    """One tune's state while it runs: the arms, their bases and dimensions, the folder and
    how runs are sent (`run_all`'s options)."""

    def __init__(self, base: RunConfig, arms: list[Arm], dims: dict[str, list[Dimension]],
                 folder: Comparison, events: Events, how: dict[str, Any]) -> None:
        self.base, self.arms, self.dims, self.folder = base, arms, dims, folder
        self.events, self.how = events, how
        self.select = base.train.best_by
        self.n_items: int | None = None

    def base_of(self, arm: Arm) -> RunConfig:
        return validate(with_settings(self.base, arm.fixed)) if arm.fixed else self.base

    def run(self, runs: list[RunConfig]) -> dict[str, RunOutcome]:
        """Run (or read back) `runs` together, each distinct run once (two arms' flood
        levels may share their reference runs); their outcomes by run folder name."""
        distinct: dict[str, RunConfig] = {}
        for cfg in runs:
            distinct.setdefault(run_name(cfg), cfg)
        runs = list(distinct.values())
        batch = Comparison(self.folder.dir)
        self.events.runs_planned(runs)
        run_all(runs, batch, self.events, **self.how)
        if self.n_items is None and batch.runs:
            self.n_items = n_items_of(batch.runs[0])
        return {outcome.dir.name: outcome for outcome in batch.runs}

    def chance(self, metric: str) -> float:
        assert self.n_items is not None
        return chance_level(metric, self.n_items)

    def references(self, seeds: list[int]) -> dict[str, tuple[float, list[str]]]:
        """Each arm with a relative flood-level range -> (its reference level, the reference
        run folders): the no-flood baseline's training loss at its best validation epoch."""
        todo = {arm.label: arm for arm in self.arms
                if any(d.kind == "flood level" and d.search.relative for d in self.dims[arm.label])}
        plans = {label: plan_setting(self.base_of(arm), registry.no_flood_baseline(arm.strategy),
                                     {}, seeds) for label, arm in todo.items()}
        outcomes = self.run([cfg for runs in plans.values() for cfg in runs]) if plans else {}
        out = {}
        for label, runs in plans.items():
            names = [run_name(cfg) for cfg in runs]
            level = baseline_level([outcomes[n] for n in names],
                                   level_column(todo[label].strategy), "--space b=LO:HI")
            out[label] = (level, names)
        return out


def run_name(cfg: RunConfig) -> str:
    """The folder name of a run (results/folders.py: from its settings)."""
    return run_dir_name(flat(cfg))


# --- the tune, step by step ---------------------------------------------------------------


def trial_round(t: Tune, studies: dict, seeds: list[int], sampler: str, sampler_seed: int,
                trials: int, on_trial: Any = None) -> bool:
    """Propose, run, score and record the next trial of every arm that has fewer than
    `trials`; False when no arm needs one."""
    lower = lower_is_better(t.select)
    pending = []
    for arm in t.arms:
        done = complete_trials(studies[arm.label])
        if len(done) < trials:
            params, attrs = propose(done, t.dims[arm.label], sampler, sampler_seed, trials, lower)
            runs = plan_setting(t.base_of(arm), arm.strategy, params, seeds)
            pending.append((arm, len(done), params, attrs, runs))
    if not pending:
        return False
    outcomes = t.run([cfg for *_, runs in pending for cfg in runs])
    for arm, number, params, attrs, runs in pending:
        names = [run_name(cfg) for cfg in runs]
        values = [run_value(outcomes[name], t.select, t.chance(t.select)) for name in names]
        score = float(np.mean([value for value, _ in values]))
        record = {"per_seed": {str(cfg.seed): v for cfg, (v, _) in zip(runs, values, strict=True)},
                  "diverged": [cfg.seed for cfg, (_, d) in zip(runs, values, strict=True) if d],
                  "runs": names}
        record_trial(studies[arm.label], t.dims[arm.label], params, score, attrs, record)
        if on_trial is not None:  # `best`: over every complete trial, earlier sessions' too
            best = choose(trial_records(studies[arm.label], trials), t.select)["score"]
            on_trial(arm.label, {"number": number, "params": params, "score": score,
                                 "best": best, **record})
    return True


def trial_records(study: Any, trials: int) -> list[dict]:
    """The arm's first `trials` complete trials as tune.json lists them."""
    return [{"number": trial.number, "params": dict(trial.params), "score": trial.value,
             **trial.user_attrs} for trial in complete_trials(study)[:trials]]


def choose(records: list[dict], select: str) -> dict:
    """The trial with the best score (module docstring, step 4), and why."""
    lower = lower_is_better(select)
    best = records[0]
    for record in records[1:]:
        if (record["score"] < best["score"]) if lower else (record["score"] > best["score"]):
            best = record
    seeds = len(best["per_seed"])
    why = (f"trial {best['number']} has the {'lowest' if lower else 'highest'} mean {select} "
           f"over the {seeds} tuning seed{'s' * (seeds > 1)} ({best['score']:.4f}) of "
           f"{len(records)} trials, each run at its best epoch by {select}; chosen on "
           "validation only, ties to the earlier trial")
    return {"trial": best["number"], "params": best["params"], "score": best["score"],
            "why": why}


def final_record(t: Tune, runs: list[RunConfig], outcomes: dict[str, RunOutcome]) -> dict:
    """An arm's final runs: seeds, folders, diverged seeds and the per-seed metrics (a
    diverged run at chance level)."""
    names = [run_name(cfg) for cfg in runs]
    per_seed: dict[str, list[float]] = {}
    diverged: set[int] = set()
    for metric in (*TEST_METRICS, t.select):
        values = [run_value(outcomes[name], metric, t.chance(metric)) for name in names]
        per_seed[metric] = [value for value, _ in values]
        diverged |= {cfg.seed for cfg, (_, d) in zip(runs, values, strict=True) if d}
    return {"seeds": [cfg.seed for cfg in runs], "runs": names,
            "diverged": sorted(diverged), "per_seed": per_seed}


def tune_folder_name(base: RunConfig, arms: list[Arm], dims: dict[str, list[Dimension]],
                     seeds: list[int], sampler: str, sampler_seed: int) -> str:
    """`tune-<task>-<hash>`: the hash over what makes the tune (module docstring)."""
    experiment = experiment_name(base)
    definition = {"experiment": experiment,
                  "strategy": {"b": base.strategy.b, "b_example": base.strategy.b_example,
                               "params": base.strategy.params},
                  "arms": [dataclasses.asdict(arm) for arm in arms],
                  "space": {label: [(d.name, d.kind, dataclasses.astuple(d.search))
                                    for d in ds] for label, ds in dims.items()},
                  "seeds": seeds, "sampler": [sampler, sampler_seed]}
    return f"tune-{experiment.rsplit('-', 1)[0]}-{config_hash(definition)}"


def check_tune(trials: int, seeds: int, final_seeds: int, select: str, sampler: str,
               sampler_seed: int) -> None:
    """The tune's own options; a ConfigError for the first that is wrong."""
    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if final_seeds < 2:
        raise ConfigError(f"--final-seeds must be >= 2 (a verdict needs a spread), got "
                          f"{final_seeds}")
    if select not in SELECT_METRICS:
        raise ConfigError(f"--select must be one of {', '.join(SELECT_METRICS)}, got '{select}'")
    if sampler not in SAMPLERS:
        raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got '{sampler}'")
    if sampler_seed < 0:
        raise ConfigError(f"--sampler-seed must be >= 0, got {sampler_seed}")


def tune(base: RunConfig, strategies: list[str], *, trials: int = 20, seeds: int = 2,
         final_seeds: int = 5, select: str | None = None, tuned: list[str] | None = None,
         space: list[str] | None = None, fixed: set[str] | None = None, sampler: str = "tpe",
         sampler_seed: int = 0, baselines: bool = True, out: str | Path = "results",
         events: Events | None = None, on_trial: Any = None, jobs: Any = 1,
         threads: int | None = None, restart: bool = False, fuse: bool | None = None,
         command: str | None = None) -> dict:
    """Run the tune of the module docstring and return tune.json's content (plus its folder
    under "dir"). `tuned`: the shared settings tuned for every arm (default ["lr"]; settings
    that `space` gives ranges for join them); `space`: `--space` items; `fixed`: strategy
    parameters given with their own options (not tuned); `on_trial(arm, record)` is called
    as each trial is recorded. `jobs`, `threads`, `restart`, `fuse`: as `run_all`'s."""
    select = select or base.train.best_by
    check_tune(trials, seeds, final_seeds, select, sampler, sampler_seed)
    fixed = set(fixed or ())
    overrides = parse_space(list(space or []))
    tuned = list(dict.fromkeys(["lr"] if tuned is None else tuned))
    tuned += [n for n in overrides if n in flat(base) and n != "b" and n not in tuned]
    base = validate(with_settings(base, {"best_by": select}))
    arms = plan_arms(strategies, baselines, base.losses.aux)
    check_overrides(overrides, fixed, [arm.strategy for arm in arms], tuned)
    dims = {arm.label: arm_dimensions(base, arm.strategy, tuned, overrides, fixed)
            for arm in arms}
    for d in (d for ds in dims.values() for d in ds if not (d.search.relative and d.type is int)):
        d.resolved(1.0 if d.search.relative else None)  # relative ranges checked at scale 1
    tuning, final = tuning_and_final_seeds(base.seed, seeds, final_seeds)
    if not on_ray(jobs):  # a bad --device or --jobs fails before anything is written
        resolve_device(base.device)
        resolve_jobs(jobs, len(arms) * len(tuning), base.device)
    events = events or Events()
    how = {"jobs": jobs, "threads": threads, "restart": restart,
           "fuse": not on_ray(jobs) and resolve_fuse(fuse, base.device)}
    folder = Comparison(Path(out) / tune_folder_name(base, arms, dims, tuning, sampler,
                                                     sampler_seed))
    created = make_folder(folder.dir)
    t = Tune(base, arms, dims, folder, events, how)
    try:
        references = t.references(tuning)
        t.dims = {arm.label: [d.resolved(reference_of(t, arm, d, references)) for d in ds]
                  for arm, ds in zip(arms, dims.values(), strict=True)}
        storage = open_journal(folder.dir / JOURNAL)
        studies = {arm.label: arm_study(storage, arm.label, lower_is_better(select))
                   for arm in arms}
        left = sum(max(0, trials - len(complete_trials(s))) for s in studies.values())
        events.runs_expected(left * len(tuning) + len(arms) * len(final), base.train.epochs)
        while trial_round(t, studies, tuning, sampler, sampler_seed, trials, on_trial):
            pass
        records = {arm.label: trial_records(studies[arm.label], trials) for arm in arms}
        chosen = {label: choose(rs, select) for label, rs in records.items()}
        plans = {arm.label: plan_setting(t.base_of(arm), arm.strategy,
                                         chosen[arm.label]["params"], final) for arm in arms}
        outcomes = t.run([cfg for runs in plans.values() for cfg in runs])
    except LossbenchError:
        remove_empty(created)
        raise
    result = {"kind": "tune", "lossbench": lossbench.__version__,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command,
              "experiment": experiment_name(base), "select": select,
              "verdict_metric": f"test_{select[4:]}", "lower_is_better": lower_is_better(select),
              "metrics": list(TEST_METRICS), "tuning_seeds": tuning, "final_seeds": final,
              "trials": trials, "sampler": {"name": sampler, "seed": sampler_seed},
              "tuned_settings": tuned, "fixed": sorted(fixed),
              "chance": {"n_items": t.n_items, **{m: t.chance(m) for m in
                                                  (*TEST_METRICS, *SELECT_METRICS)}},
              "storage": JOURNAL, "arms": []}
    for arm in arms:
        reference_runs = references.get(arm.label, (None, []))[1]
        trial_runs = [name for record in records[arm.label] for name in record["runs"]]
        result["arms"].append({
            "arm": arm.label, "strategy": arm.strategy, "role": arm.role, "fixed": arm.fixed,
            "space": [d.record() for d in t.dims[arm.label]],
            "trials": records[arm.label], "chosen": chosen[arm.label],
            "final": final_record(t, plans[arm.label], outcomes),
            "budget": {"trials": len(records[arm.label]),
                       **spent(folder.dir, [*reference_runs, *trial_runs]),
                       "reference_runs": len(reference_runs)}})
    write_json(folder.dir / "tune.json", result)
    return {**result, "dir": str(folder.dir)}


def reference_of(t: Tune, arm: Arm, dim: Dimension,
                 references: dict[str, tuple[float, list[str]]]) -> float | None:
    """What a relative range of `dim` multiplies: the flood level's baseline loss, or the
    setting's or parameter's configured value."""
    if not dim.search.relative:
        return None
    if dim.kind == "flood level":
        return references[arm.label][0]
    if dim.kind == "setting":
        return float(flat(t.base_of(arm))[dim.name])
    return float(registry.run_params(arm.strategy, t.base.strategy.params)[dim.name])
