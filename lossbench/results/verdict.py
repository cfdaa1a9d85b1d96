"""The verdict of a tune folder: what `lossbench report` says about the folder `lossbench tune`
wrote. A pure function of its tune.json (the contract: what the runner writes); trains
nothing, reads no run folder.

    tune = load_tune(folder)                  # tune.json as a dict; None for other folders
    summary = summarize_tune(tune)            # a JSON-able dict (nan -> None)
    paths = verdict_tables.write_verdict(summary, folder)    # report.json, report.md

Every arm (a strategy, or a baseline lossbench adds: main-only, plain, weighted) was tuned
with the same number of Optuna trials on validation, then its chosen setting retrained on the
final seeds, paired across arms: final seed i of every arm shares data, initial weights and
batch order. So arms are compared seed by seed (arm - baseline, same final seed) against the
tuned `plain` and the tuned `weighted` arm, and the test metrics come from the final runs
only. A diverged final run holds the chance value of each metric: it is counted, never left
out, and the tables say how many diverged.

The statistics are stats.py's: mean_ci, paired_test, holm, iqm with bootstrap_ci,
probability_of_improvement, minimal_detectable_effect. Rendering is verdict_tables.py's.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lossbench.errors import DataError
from lossbench.results.folders import read_json
from lossbench.results.report import jsonable
from lossbench.results.stats import (
    WILCOXON_MIN_N,
    bootstrap_ci,
    holm_across,
    iqm,
    mean_ci,
    minimal_detectable_effect,
    paired_test,
    probability_of_improvement,
)

ALPHA = 0.05
"""Level of the verdict sentences: a difference counts when its Holm-adjusted t-test p is at
most ALPHA. The minimal detectable effect is for this level and POWER."""
POWER = 0.8
BASELINES = ("plain", "weighted")
"""The tuned arms every other arm is paired with, seed by seed (each when it exists)."""
MAIN_ONLY = "main-only"
"""The arm without the auxiliary loss (strategy plain, aux none)."""
TUNE_KEYS = ("select", "verdict_metric", "metrics", "tuning_seeds", "final_seeds", "trials",
             "arms")
ARM_KEYS = ("arm", "strategy", "trials", "chosen", "final")
FINAL_KEYS = ("seeds", "per_seed")
BUDGET_KEYS = ("trials", "runs", "epochs", "cpu_seconds", "gpu_seconds", "reference_runs")


def lower_is_better(metric: str) -> bool:
    """The direction of a metric, from its name: `*_loss` lower is better; any other
    (acc, hr10, ndcg10) higher."""
    return metric.endswith("loss")


# --- reading -----------------------------------------------------------------------------


def load_tune(folder: str | Path) -> dict | None:
    """`folder/tune.json` (or the file itself when `folder` names a tune.json), checked by
    check_tune; None when the folder has none (it is not a tune folder). A malformed file is
    a DataError of one line naming it."""
    path = Path(folder)
    if path.is_dir():
        path = path / "tune.json"
    if path.name != "tune.json" or not path.exists():
        return None
    return check_tune(read_json(path), str(path))


def check_tune(tune: dict, where: str = "tune.json") -> dict:
    """`tune` itself when it has what summarize_tune and plot_tune read (the keys of the
    contract, every arm with its trials, chosen setting and final per-seed values, one per
    final seed); else a DataError of one line naming `where` and the first problem."""
    def fail(problem: str) -> DataError:
        return DataError(f"{where} is not a valid tune.json: {problem}")

    if not isinstance(tune, dict):
        raise fail("not a JSON object")
    if tune.get("kind", "tune") != "tune":
        raise fail(f"kind is {tune.get('kind')!r}, not 'tune'")
    missing = [k for k in TUNE_KEYS if k not in tune]
    if missing:
        raise fail(f"lacks {', '.join(missing)}")
    if not isinstance(tune["arms"], list) or not tune["arms"]:
        raise fail("'arms' is not a non-empty list")
    for i, arm in enumerate(tune["arms"]):
        name = arm.get("arm", f"#{i}") if isinstance(arm, dict) else f"#{i}"
        lacks = ([k for k in ARM_KEYS if k not in arm] if isinstance(arm, dict) else
                 ["everything (not an object)"])
        if not lacks:
            final = arm["final"] if isinstance(arm["final"], dict) else {}
            lacks = [f"final.{k}" for k in FINAL_KEYS if k not in final]
        if lacks:
            raise fail(f"arm {name} lacks {', '.join(lacks)}")
        if not all(isinstance(arm[k], t) for k, t in (("trials", list), ("chosen", dict))):
            raise fail(f"arm {name}: 'trials' is not a list or 'chosen' not an object")
        if not isinstance(arm["final"]["per_seed"], dict):
            raise fail(f"arm {name}: final.per_seed is not an object")
        n = len(arm["final"]["seeds"])
        for metric in dict.fromkeys([*tune["metrics"], tune["verdict_metric"]]):
            values = arm["final"]["per_seed"].get(metric)
            if not isinstance(values, list) or len(values) != n:
                raise fail(f"arm {name}: final.per_seed.{metric} is not a list of {n} values "
                           "(one per final seed)")
    return tune


# --- statistics --------------------------------------------------------------------------


def seed_values(arm: dict, metric: str) -> dict[int, float]:
    """{final seed: the metric of its run} of an arm (null -> nan)."""
    values = arm["final"]["per_seed"][metric]
    return {int(s): math.nan if v is None else float(v)
            for s, v in zip(arm["final"]["seeds"], values, strict=True)}


def describe_arm(arm: dict, metrics: list[str], confidence: float) -> dict:
    """One arm: its chosen setting and validation score, its final seeds (and how many
    diverged), and per metric the mean with its t-interval (mean_ci) and the IQM with its
    bootstrap interval (one stratum: the final seeds) over the final seeds."""
    chosen, final = arm["chosen"], arm["final"]
    stats = {}
    for m in metrics:
        values = list(seed_values(arm, m).values())
        lo, hi = bootstrap_ci([values], iqm, confidence=confidence)
        stats[m] = {**mean_ci(values, confidence), "iqm": iqm(values), "iqm_lo": lo,
                    "iqm_hi": hi, "per_seed": values}
    return {"label": arm["arm"], "strategy": arm["strategy"],
            "role": arm.get("role", "baseline" if arm["arm"] in (MAIN_ONLY, *BASELINES)
                            else "compared"),
            "fixed": arm.get("fixed") or {}, "space": [p["name"] for p in arm.get("space", [])],
            "params": chosen.get("params") or {}, "chosen_trial": chosen.get("trial"),
            "score": chosen.get("score"), "why": chosen.get("why", ""),
            "seeds": [int(s) for s in final["seeds"]], "n_seeds": len(final["seeds"]),
            "diverged_seeds": list(final.get("diverged") or []),
            "failed": len(final.get("diverged") or []), "metrics": stats}


def compare(arm: dict, base: dict, metrics: list[str], confidence: float) -> dict:
    """arm - base per metric on the final seeds both ran (same seed: same data, initial
    weights, batch order): the differences, their mean_ci and paired_test, the paired
    probability that the arm beats the base (probability_of_improvement) and the minimal
    detectable effect at this number of pairs (from the sd of the differences)."""
    out = {"label": arm["arm"], "baseline": base["arm"], "metrics": {}}
    for m in metrics:
        a, z = seed_values(arm, m), seed_values(base, m)
        seeds = [s for s in a if s in z and math.isfinite(a[s]) and math.isfinite(z[s])]
        x, y = np.array([a[s] for s in seeds]), np.array([z[s] for s in seeds])
        diffs = x - y
        sd = float(diffs.std(ddof=1)) if len(diffs) > 1 else math.nan
        better = probability_of_improvement(x, y, lower_is_better(m), confidence=confidence)
        out["metrics"][m] = {
            "seeds": seeds, "diffs": diffs.tolist(), **mean_ci(diffs, confidence),
            **paired_test(diffs), "sd": sd,
            "mde": minimal_detectable_effect(sd, len(diffs), ALPHA, POWER),
            "p_improve": better["p"], "p_improve_lo": better["lo"],
            "p_improve_hi": better["hi"]}
    return out


def paired_against(base: dict, arms: list[dict], metrics: list[str],
                   confidence: float) -> list[dict]:
    """compare() of every other arm with `base`, then Holm's adjustment of the t-test and
    the Wilcoxon p per metric across those arms (keys t_p_holm, wilcoxon_p_holm)."""
    entries = [compare(a, base, metrics, confidence) for a in arms if a is not base]
    holm_across(entries, metrics)
    return entries


# --- sentences ---------------------------------------------------------------------------


def sig(value: float | None, spec: str = ".3g") -> str:
    """A number in a sentence: 3 significant digits; `n/a` when missing."""
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def outcome(d: dict, lower: bool) -> str:
    """`better`, `worse` (the arm against the baseline, significant: Holm-adjusted t-test
    p <= ALPHA) or `unclear`."""
    p = d.get("t_p_holm")
    if p is None or not math.isfinite(p) or p > ALPHA or d["mean"] == 0:
        return "unclear"
    return "better" if (d["mean"] < 0) == lower else "worse"


def measured(d: dict, metric: str, arm: str, base: str) -> str:
    """`test_loss: flood − plain = +0.0123 ± 0.00456, Holm t-test p = 0.012` (± the CI
    half-width)."""
    half = None if not math.isfinite(d["lo"]) else (d["hi"] - d["lo"]) / 2
    return (f"{metric}: {arm} − {base} = {sig(d['mean'], '+.3g')} ± {sig(half)}, Holm t-test "
            f"p = {sig(d.get('t_p_holm'), '.2g')}")


def unmeasurable(d: dict) -> str:
    """`not measurable with 6 seeds: the smallest difference ...` for an unclear outcome."""
    n = d["n"]
    if d.get("t_p") is None or not math.isfinite(d["t_p"]):
        return f"not measurable with {n} seed{'s' * (n != 1)}: {d['note'] or 'no test'}"
    half = (d["hi"] - d["lo"]) / 2
    return (f"not measurable with {n} seeds: the smallest difference {n} paired seeds can "
            f"detect here is {sig(d['mde'])}; the measured difference is "
            f"{sig(d['mean'], '+.3g')} ± {sig(half)}")


def aux_sentence(d: dict, metric: str) -> str:
    """main-only against plain: does the auxiliary loss help? d: main-only - plain."""
    lower, n = lower_is_better(metric), d["n"]
    result = outcome(d, lower)
    if result == "worse":
        return (f"the auxiliary loss helps: tuned plain beats tuned main-only on {metric} "
                f"({measured(d, metric, MAIN_ONLY, 'plain')}; {n} paired seeds)")
    if result == "better":
        return (f"the auxiliary loss hurts: tuned main-only beats tuned plain on {metric} "
                f"({measured(d, metric, MAIN_ONLY, 'plain')}; {n} paired seeds)")
    if d["note"] == "identical on every seed":
        return (f"the auxiliary loss makes no difference: main-only and plain are identical "
                f"on every one of the {n} final seeds")
    half = (d["hi"] - d["lo"]) / 2 if math.isfinite(d["lo"]) else None
    return (f"the auxiliary loss makes no measurable difference with {n} seeds (differences "
            f"smaller than {sig(d['mde'])} in {metric} cannot be detected; main-only − plain "
            f"= {sig(d['mean'], '+.3g')} ± {sig(half)})")


def beats_sentence(entry: dict, metric: str) -> str:
    """`X beats tuned plain: yes (...)`, `no (worse) (...)` or `not measurable ...`; entry:
    one of paired_against's."""
    d, base = entry["metrics"][metric], entry["baseline"]
    head = f"{entry['label']} beats tuned {base}: "
    if d["note"] == "identical on every seed":
        return head + f"no (identical on every one of the {d['n']} final seeds)"
    result = outcome(d, lower_is_better(metric))
    if result == "unclear":
        return head + unmeasurable(d)
    answer = "yes" if result == "better" else "no (worse)"
    return (f"{head}{answer} ({measured(d, metric, entry['label'], base)}; {d['n']} paired "
            "seeds)")


def seeds_text(seeds: list[int]) -> str:
    """`10000–10004` for consecutive seeds, else `0, 3, 7`."""
    seeds = [int(s) for s in seeds]
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def budget_sentence(tune: dict) -> str:
    """Equal budget (trials per arm, tuning seeds), and the test metrics from the final
    seeds only; an arm with another number of trials is named."""
    trials = {a["arm"]: (a.get("budget") or {}).get("trials", len(a["trials"]))
              for a in tune["arms"]}
    tuning, final = tune["tuning_seeds"], tune["final_seeds"]
    sampler = tune.get("sampler") or {}
    how = (f"{sampler.get('name', '?')} sampler, seed {sampler.get('seed', '?')}"
           if sampler else "Optuna")
    where = (f"on {len(tuning)} tuning seed{'s' * (len(tuning) != 1)} ({seeds_text(tuning)}), "
             f"scored by {tune['select']}; test metrics come only from the {len(final)} final "
             f"seeds ({seeds_text(final)}), never used to choose a setting")
    if set(trials.values()) == {tune["trials"]}:
        return f"equal budget: every arm had {tune['trials']} trials ({how}) {where}"
    counts = ", ".join(f"{k} {v}" for k, v in trials.items())
    return f"unequal budget: trials per arm differ ({counts}; {how}) {where}"


def verdict_sentences(tune: dict, paired: dict[str, list[dict]]) -> list[str]:
    """The plain sentences, decided on verdict_metric: the auxiliary loss (main-only against
    plain), every other arm against tuned plain and tuned weighted, then the budget."""
    metric, out = tune["verdict_metric"], []
    vs_plain = {e["label"]: e["metrics"][metric] for e in paired.get("plain", [])}
    if MAIN_ONLY in vs_plain:
        out.append(aux_sentence(vs_plain[MAIN_ONLY], metric))
    for base, skip in (("plain", (MAIN_ONLY,)), ("weighted", (MAIN_ONLY, "plain"))):
        out += [beats_sentence(e, metric) for e in paired.get(base, [])
                if e["label"] not in skip]
    out.append(budget_sentence(tune))
    return out


# --- the summary -------------------------------------------------------------------------


def tune_notes(tune: dict, arms: list[dict]) -> list[str]:
    """Plain-language caveats: diverged final runs (scored at chance, counted), tuning trials
    with diverged runs, and too few final seeds for the Wilcoxon test."""
    notes, chance = [], tune.get("chance") or {}
    metric = tune["verdict_metric"]
    for arm, raw in zip(arms, tune["arms"], strict=True):
        if arm["failed"]:
            at = f" ({metric} {sig(chance[metric])})" if chance.get(metric) is not None else ""
            notes.append(f"{arm['label']}: {arm['failed']} of {arm['n_seeds']} final runs "
                         f"diverged (seed{'s' * (arm['failed'] > 1)} "
                         f"{', '.join(map(str, arm['diverged_seeds']))}); "
                         f"scored at chance{at} and counted in every statistic")
        bad = [t["number"] for t in raw["trials"] if t.get("diverged") or t.get("score") is None]
        if bad:
            notes.append(f"{arm['label']}: {len(bad)} of {len(raw['trials'])} tuning trials "
                         f"had a diverged run (trial {', '.join(map(str, bad))})")
    n = len(tune["final_seeds"])
    if 2 <= n < WILCOXON_MIN_N:
        notes.append(f"{n} final seeds: paired t-test only (Wilcoxon needs >= {WILCOXON_MIN_N})")
    elif n < 2:
        notes.append(f"{n} final seed: too few for a test or a confidence interval")
    return notes


def summarize_tune(tune: dict, confidence: float = 0.95) -> dict:
    """The verdict of a tune.json dict, JSON-able (nan -> None). Keys:

    facts: select, verdict_metric, lower_is_better (of it), metrics, tuning_seeds,
        final_seeds, trials, sampler, tuned_settings (what heads a report);
    options: confidence, alpha, power;
    arms: per arm (describe_arm) label, strategy, role, params (the chosen setting),
        chosen_trial, score (its validation score), n_seeds, failed, diverged_seeds and per
        metric mean, lo, hi, n (mean_ci over the final seeds), iqm, iqm_lo, iqm_hi;
    paired: {"plain": [...], "weighted": [...]} (each only when that arm exists): per other
        arm and metric the differences arm - baseline by final seed with mean_ci,
        paired_test, Holm across the arms, p_improve [lo, hi] and mde;
    sentences: the verdict in words (verdict_sentences); budget: per arm trials, runs,
        epochs, cpu_seconds, gpu_seconds, reference_runs; notes: caveats."""
    tune = check_tune(tune)
    metrics = list(dict.fromkeys([*tune["metrics"], tune["verdict_metric"]]))
    arms = [describe_arm(a, metrics, confidence) for a in tune["arms"]]
    by_label = {a["arm"]: a for a in tune["arms"]}
    paired = {b: paired_against(by_label[b], tune["arms"], metrics, confidence)
              for b in BASELINES if b in by_label}
    budget = [{"arm": a["arm"], **{k: (a.get("budget") or {}).get(k) for k in BUDGET_KEYS}}
              for a in tune["arms"]]
    facts = {k: tune.get(k) for k in ("select", "verdict_metric", "metrics", "tuning_seeds",
                                      "final_seeds", "trials", "sampler", "tuned_settings")}
    facts["lower_is_better"] = lower_is_better(tune["verdict_metric"])
    return jsonable({"kind": "tune-report", "facts": facts,
                     "options": {"confidence": confidence, "alpha": ALPHA, "power": POWER},
                     "arms": arms, "paired": paired,
                     "sentences": verdict_sentences(tune, paired), "budget": budget,
                     "notes": tune_notes(tune, arms)})

