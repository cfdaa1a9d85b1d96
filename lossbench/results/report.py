"""Compares strategies over seeds, from run folders read from disk. Trains nothing; strategy
names, baselines and order come from the registry (lossbench/strategies/).

    runs = load_runs("results/synthetic-91f440ad")       # one run, an experiment or a sweep
    summary = summarize(runs, window=5)                    # a JSON-able dict

Reading the folders (Run, load_runs, latest_results) is lossbench/results/runs.py's job.
Writing it out (report.json, report.md, rich tables) is lossbench/results/tables.py's job.

The statistics (mean_ci, paired_test, holm, curve_band) are pure functions in stats.py.
Groups are (strategy, b) plus every setting that differs across the runs that have it (a
strategy parameter such as w or alpha, or a task setting). Each group is compared seed by
seed with the plain (b = 0) group of the same settings, or without one with its own
weighting unflooded (reweight for reweight-flood): find_baseline.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from lossbench import strategies as registry
from lossbench.errors import DataError
from lossbench.results.curves import double_descent, noise_std, overconfident_epochs, spans
from lossbench.results.folders import settings_of
from lossbench.results.runs import (  # noqa: F401  (report.load_runs etc. stay importable)
    RUN_FILES,
    Run,
    latest_results,
    load_run,
    load_runs,
    load_sweep,
)
from lossbench.results.stats import WILCOXON_MIN_N, holm_across, mean_ci, paired_test

METRICS = ("val_loss", "final_val_loss", "val_acc", "val_hr10", "val_ndcg10",
           "test_loss", "test_acc", "test_hr10", "test_ndcg10")
"""summary.json keys compared across strategies: val_* and test_* at the best validation
epoch (val_loss there is the best validation loss when best_by = val_loss), final_val_loss at
the last epoch."""
NOISE_RULE = 4.0
"""A double descent is *clear* when its rise P - m1 is at least this many times the curve's
epoch-to-epoch noise (curves.noise_std): issue 13's rule, reported beside `found`."""
IGNORED = ("seed", "strategy", "b", "device", "data_dir", "eval_batch_size")
"""Settings that never split runs into groups."""


# --- summary ---------------------------------------------------------------------------


def varying_settings(runs: list[Run]) -> list[str]:
    """Settings (RunConfig fields and strategy parameters), other than IGNORED, with more than
    one value among the runs that have them (a parameter of one strategy does not vary just
    because other strategies lack it)."""
    flat = [settings_of(r.config) for r in runs]
    keys = sorted({k for f in flat for k in f} - set(IGNORED))
    return [k for k in keys
            if len({json.dumps(f[k], sort_keys=True) for f in flat if k in f}) > 1]


def group_label(config: dict, varying: list[str]) -> str:
    """`flood b=0.1` (b shown for strategies flooded at one level, or b != 0), then the
    varying settings this run has (`weighted w=0.3`, `adaflood adaflood_gamma=0.2`)."""
    flat = settings_of(config)
    label = config["strategy"]
    if registry.split_name(label)[1] not in ("none", "adaflood") or config["b"]:
        label += f" b={config['b']:g}"
    return " ".join([label, *(f"{k}={flat[k]}" for k in varying if k in flat)])


def shared_settings(runs: list[Run]) -> dict:
    """Settings with one value across all runs (for titles), plus the seeds used."""
    varying = set(varying_settings(runs)) | {"seed", "strategy", "b"}
    varying |= set(registry.all_params())
    first = settings_of(runs[0].config)
    return {**{k: v for k, v in first.items() if k not in varying},
            "seeds": sorted({r.config["seed"] for r in runs})}


def find_baseline(group: dict, groups: list[dict], varying: list[str]) -> dict | None:
    """The group compared with `group` seed by seed: plain b = 0; without one, the same
    strategy without flooding at b = 0 (reweight for reweight-flood, as sweep-b runs it;
    flood b = 0 is plain since |L - 0| + 0 = L). Its settings must match, ignoring strategy
    parameters; an exact match is preferred. None when there is no such group."""
    params = registry.all_params()
    context = [k for k in varying if k not in params]
    for strategy in ("plain", registry.no_flood_baseline(group["strategy"]),
                     group["strategy"]):
        same = [g for g in groups if g["strategy"] == strategy and g["b"] == 0
                and all(g["settings"][k] == group["settings"][k] for k in context)]
        exact = [g for g in same if g["settings"] == group["settings"]]
        if exact or same:
            return (exact or same)[0]
    return None


def summarize(runs: list[Run], window: int = 5, rise: float = 1.03, recover: float = 0.3,
              confidence: float = 0.95) -> dict:
    """Statistics over seeds for every group of runs, as a JSON-able dict (nan -> None).

    Keys: settings (shared), groups (mean/CI per METRICS), paired (differences against
    the plain b = 0 baseline matched by seed, with tests and Holm-adjusted p across
    groups, per metric), double_descent (per run with b > 0: curves.double_descent on its
    val_loss and frac_below_b, the mean of flood_frac over epochs), diverged and
    incomplete (listed, excluded from statistics), notes (plain-language caveats)."""
    done = [r for r in runs if r.summary is not None]
    if not done:
        raise DataError("no complete runs to summarize")
    varying = varying_settings(done)
    notes: list[str] = []
    groups = build_groups(done, varying, confidence, notes)
    paired = compare_groups(groups, varying, confidence, notes)
    diverged = [{"run": r.dir.name, "label": group_label(r.config, varying),
                 "seed": r.config["seed"], **(r.summary.get("diverged_at") or {})}
                for r in done if r.diverged]
    if diverged:
        notes.append(f"{len(diverged)} diverged run(s) are listed and excluded from the "
                     "statistics")
    incomplete = [{"run": str(r.dir), "problem": r.problem} for r in runs if r.summary is None]
    if incomplete:
        notes.append(f"{len(incomplete)} incomplete run folder(s) skipped; see 'incomplete'")
    dd = [describe_descent(r, varying, window, rise, recover) for r in done
          if r.config["b"] > 0 and not r.diverged]
    notes += flood_notes(done, varying)
    short = [d["run"] for d in dd if d["epochs"] < window + 2]
    if short:
        notes.append(f"{len(short)} flood run(s) have fewer than window + 2 = {window + 2} "
                     "epochs: too short to test for a double descent")
    return jsonable({"settings": shared_settings(done), "varying": varying,
                     "options": {"window": window, "rise": rise, "recover": recover,
                                 "confidence": confidence},
                     "metrics": list(METRICS), "groups": groups, "paired": paired,
                     "double_descent": dd,
                     "overconfidence": describe_overconfidence(done, varying, window),
                     "diverged": diverged, "incomplete": incomplete, "notes": notes})


def build_groups(done: list[Run], varying: list[str], confidence: float,
                 notes: list[str]) -> list[dict]:
    """Complete runs grouped by label, in the registry's order, each with its seeds, the
    per-seed METRICS values ({seed: value}) and their mean_ci. Diverged runs are counted in
    diverged_seeds only; a repeated seed keeps its first run."""
    by_label: dict[str, dict] = {}
    for run in done:
        label, seed = group_label(run.config, varying), run.config["seed"]
        group = by_label.setdefault(label, {
            "label": label, "strategy": run.config["strategy"], "b": run.config["b"],
            "settings": {k: settings_of(run.config).get(k) for k in varying}, "runs": [],
            "seeds": [],
            "diverged_seeds": [], "values": {m: {} for m in METRICS}})
        if seed in group["seeds"] or seed in group["diverged_seeds"]:
            notes.append(f"{label}: seed {seed} twice; ignored {run.dir.name}")
        elif run.diverged:
            group["diverged_seeds"].append(seed)
        else:
            group["runs"].append(run.dir.name)
            group["seeds"].append(seed)
            for m in METRICS:
                group["values"][m][seed] = as_float(run.summary.get(m))
    groups = sorted(by_label.values(), key=lambda g: (registry.order_key(g["strategy"]),
                                                      g["b"], g["label"]))
    for g in groups:
        g["stats"] = {m: mean_ci(list(g["values"][m].values()), confidence) for m in METRICS}
        if len(g["seeds"]) < 2:
            why = (f"{len(g['diverged_seeds'])} diverged" if g["diverged_seeds"]
                   else "run with --seeds 3 or more")
            notes.append(f"{g['label']}: {len(g['seeds'])} usable seed(s), so no confidence "
                         f"interval ({why})")
    return groups


def compare_groups(groups: list[dict], varying: list[str], confidence: float,
                   notes: list[str]) -> list[dict]:
    """Per group (not a baseline): per-seed differences against its baseline for each
    metric, mean_ci and paired_test of them, then Holm across the groups per metric."""
    paired = []
    for g in groups:
        base = find_baseline(g, groups, varying)
        if base is None:
            notes.append(f"{g['label']}: no plain (b = 0) runs with the same settings; "
                         "no paired differences")
        if base is None or g is base or g["strategy"] == "plain":
            continue
        entry = {"label": g["label"], "baseline": base["label"], "metrics": {}}
        for m in METRICS:
            a, z = g["values"][m], base["values"][m]
            seeds = sorted(s for s in a if s in z and np.isfinite(a[s]) and np.isfinite(z[s]))
            diffs = [a[s] - z[s] for s in seeds]
            entry["metrics"][m] = {"seeds": seeds, "diffs": diffs,
                                   **mean_ci(diffs, confidence), **paired_test(diffs)}
        n = entry["metrics"]["val_loss"]["n"]
        if n < 2:
            notes.append(f"{g['label']} vs {base['label']}: {n} paired seed(s): too few "
                         "seeds for a test (need >= 2)")
        elif n < WILCOXON_MIN_N:
            notes.append(f"{g['label']} vs {base['label']}: {n} paired seeds: paired t-test "
                         f"only (Wilcoxon needs >= {WILCOXON_MIN_N})")
        paired.append(entry)
    holm_across(paired, METRICS)
    return paired


def train_loss_at_best(rows: list[dict], best_epoch: int | None) -> float:
    """`train_loss` (the total before flooding) at the best validation epoch; nan without
    one."""
    if not best_epoch or best_epoch > len(rows):
        return math.nan
    return float(rows[best_epoch - 1]["train_loss"])


def never_flooded(curves: list[list[dict]]) -> bool:
    """True when no step of any epoch of any curve was below b (flood_frac 0 throughout)."""
    return all(row["flood_frac"] == 0 for rows in curves for row in rows)


def flood_advice(label: str, b: float, curves: list[list[dict]], reference: float,
                 baseline: str) -> str | None:
    """One plain line when flooding at `b` did nothing useful on every seed, else None.

    `curves`: the metrics.csv rows of each seed's run. Flooding never acted when flood_frac
    is 0 at every epoch (the run then equals its no-flood `baseline`, number for number);
    it acted from the start when every step of the first epoch was below b (the objective
    was |L - b| + b = 2b - L: gradient ascent from the first step). `reference` is the
    baseline's training loss at its best validation epoch (mean over seeds; nan when
    unknown); the hint suggests 0.9 x that, the rule of thumb of Ishida et al. and the
    seed (b a little below the training loss you want to stop at)."""
    if b <= 0 or not curves or not all(curves):
        return None
    hint = (f"Try b near 0.9 × {baseline}'s training loss at its best epoch "
            f"(≈ {0.9 * reference:.3g} here) or run lossbench sweep-b."
            if math.isfinite(reference) else "Run lossbench sweep-b to choose b.")
    if never_flooded(curves):
        lowest = min(row["train_loss"] for rows in curves for row in rows)
        return (f"{label} never acted: the training loss stayed above b (lowest "
                f"{lowest:.3g}); this run equals {baseline}. {hint}")
    if all(rows[0]["flood_frac"] == 1.0 for rows in curves):
        first = max(rows[0]["train_loss"] for rows in curves)
        return (f"{label} acted from the first epoch: the training loss ({first:.3g} in "
                f"epoch 1) was below b at every step, so training climbed the loss "
                f"(gradient ascent) from the start. {hint}")
    return None


def flood_notes(done: list[Run], varying: list[str]) -> list[str]:
    """flood_advice for every flooded group of the complete (non-diverged) runs `done`.

    The reference training loss (the one rule, whoever calls: `run` passes the runs of its
    command, `report` those of the whole folder) is the mean over the group's seeds of
    `reference_level`, the seed's own no-flood baseline run; seeds without one are left
    out (nan when no seed has one). Runs of seeds outside the group never enter, so the
    same flooded runs get the same suggested b from `run` and from `report`."""
    notes = []
    flooded = [r for r in done if r.config["b"] > 0 and not r.diverged]
    for label in dict.fromkeys(group_label(r.config, varying) for r in flooded):
        group = [r for r in flooded if group_label(r.config, varying) == label]
        levels = np.array([reference_level(r, done, varying) for r in group], dtype=float)
        reference = float(np.nanmean(levels)) if np.isfinite(levels).any() else math.nan
        baseline = registry.no_flood_baseline(group[0].config["strategy"])
        advice = flood_advice(label, group[0].config["b"], [r.rows for r in group],
                              reference, baseline)
        if advice:
            notes.append(advice)
    return notes


def reference_level(run: Run, done: list[Run], varying: list[str]) -> float:
    """The training loss that flood advice for the flooded `run` scales: train_loss at the
    best validation epoch of the run it is paired with, its weighting without flooding
    (b = 0) on the same seed and settings (`paired_run`, plain not substituted); without
    one, of `run` itself when it never flooded (it then trained exactly as that run);
    else nan."""
    live = [r for r in done if not r.diverged]
    base = paired_run(run, live, varying, plain_too=False)
    if base is None and never_flooded([run.rows]):
        base = run
    return math.nan if base is None else train_loss_at_best(base.rows,
                                                             base.summary.get("best_epoch"))


def describe_descent(run: Run, varying: list[str], window: int, rise: float,
                     recover: float) -> dict:
    """double_descent on the run's val_loss, and the fraction of steps spent below b."""
    val = np.array([row["val_loss"] for row in run.rows], dtype=float)
    below = np.array([row["flood_frac"] for row in run.rows], dtype=float)
    found = double_descent(val, window, rise, recover)
    noise = noise_std(val, window)
    ratio = (found.peak - found.m1) / noise if noise > 0 else math.nan
    return {"run": run.dir.name, "label": group_label(run.config, varying),
            "seed": run.config["seed"], "b": run.config["b"], "epochs": len(val),
            **found.as_dict(), "noise": noise, "rise_over_noise": ratio,
            "clear": bool(found.found and ratio >= NOISE_RULE),
            "frac_below_b": float(below.mean()) if len(below) else math.nan}


def describe_overconfidence(done: list[Run], varying: list[str], window: int) -> list[dict]:
    """The seed's puzzle per run (curves.overconfident_epochs on the moving averages of
    val_loss, val_acc and val_ndcg10) and, for a flooded run, the same for its paired run of
    the same seed (its no-flood baseline, else plain): `removed` when that run has such
    epochs and the flooded one none, `reduced` when it has fewer."""
    def epochs_of(run: Run) -> list[int]:
        columns = [np.array([row.get(k, math.nan) for row in run.rows], dtype=float)
                   for k in ("val_loss", "val_acc", "val_ndcg10")]
        return overconfident_epochs(*columns, window=window)

    live = [r for r in done if not r.diverged]
    out = []
    for run in live:
        epochs = epochs_of(run)
        entry = {"run": run.dir.name, "label": group_label(run.config, varying),
                 "seed": run.config["seed"], "n_epochs": len(epochs),
                 "spans": [list(span) for span in spans(epochs)], "baseline": None,
                 "baseline_n_epochs": None, "verdict": ""}
        if registry.split_name(run.config["strategy"])[1] != "none" and run.config["b"] > 0:
            base = paired_run(run, live, varying)
            if base is not None:
                n_base = len(epochs_of(base))
                entry.update(baseline=group_label(base.config, varying), baseline_n_epochs=n_base,
                             verdict=("removed" if n_base and not epochs else
                                      "reduced" if len(epochs) < n_base else
                                      "not present" if not n_base else "not removed"))
        out.append(entry)
    return out


def paired_run(run: Run, runs: list[Run], varying: list[str], plain_too: bool = True
               ) -> Run | None:
    """The run of the same seed that a flooded run is paired with: its weighting without
    flooding (b = 0), else (when `plain_too`) plain, with the same non-strategy settings."""
    params = registry.all_params()
    context = [k for k in varying if k not in params]
    mine = settings_of(run.config)
    baseline = registry.no_flood_baseline(run.config["strategy"])
    for strategy in (baseline, "plain") if plain_too else (baseline,):
        for other in runs:
            theirs = settings_of(other.config)
            if (other.config["strategy"] == strategy and other.config["b"] == 0
                    and other.config["seed"] == run.config["seed"]
                    and all(theirs.get(k) == mine.get(k) for k in context)):
                return other
    return None


def as_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def jsonable(obj: Any) -> Any:
    """Replace nan/inf by None and NumPy scalars by Python ones, recursively."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
