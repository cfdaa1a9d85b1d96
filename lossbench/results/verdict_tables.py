"""The verdict of a tune folder as people read it: rich tables for the terminal, report.md and
report.json. Pure formatting of `verdict.summarize_tune`'s JSON-able dict: nothing here
computes a statistic.

    summary = verdict.summarize_tune(verdict.load_tune(folder))
    tables = verdict_tables(summary)             # rich tables; the CLI prints them
    paths = write_verdict(summary, folder)       # report.json, report.md
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from lossbench.results.tables import Spec, half, num, write_report
from lossbench.results.verdict import lower_is_better, seeds_text

LEFT = ("arm", "chosen setting", "vs", "metric", "note")
"""Columns aligned left; every other column is a number, aligned right."""


def setting_text(params: dict) -> str:
    """The chosen setting compactly: `lr=0.31 b=8.4 detach_theta=true`; `default` when
    nothing was tuned."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        return format(v, ".3g") if isinstance(v, float) else str(v)

    return " ".join(f"{k}={value(v)}" for k, v in params.items()) or "default"


def mean_half(stat: dict) -> str:
    """`4.512 ± 0.021`: a mean_ci as mean (4 significant digits) ± half-width (2); `-` parts
    when missing."""
    return f"{num(stat['mean'], '.4g')} ± {num(half(stat), '.2g')}"


def diff_half(stat: dict) -> str:
    """`+0.0533 ± 0.011`: a mean difference (3 significant digits, signed) ± half-width."""
    return f"{num(stat['mean'], '+.3g')} ± {num(half(stat), '.2g')}"


def interval(point: Any, lo: Any, hi: Any, spec: str = ".4g") -> str:
    """`4.505 [4.488, 4.53]`: a point with its interval."""
    return f"{num(point, spec)} [{num(lo, spec)}, {num(hi, spec)}]"


def describe_tune(summary: dict) -> str:
    """`tuned on val_loss (lower is better) · 20 trials per arm · tpe sampler, seed 0 · tuning
    seeds 0, 1 · final seeds 10000–10004 · tuned: lr · verdict on test_loss`: the facts that
    head the report (and the figures' titles)."""
    f = summary["facts"]
    sampler = f.get("sampler") or {}
    better = "lower" if lower_is_better(f["select"]) else "higher"
    parts = [f"tuned on {f['select']} ({better} is better)", f"{f['trials']} trials per arm",
             f"{sampler['name']} sampler, seed {sampler.get('seed')}" if sampler.get("name")
             else None,
             f"tuning seeds {seeds_text(f['tuning_seeds'])}",
             f"final seeds {seeds_text(f['final_seeds'])}",
             f"tuned: {', '.join(f['tuned_settings'])}" if f.get("tuned_settings") else None,
             f"verdict on {f['verdict_metric']}"]
    return " · ".join(p for p in parts if p)


def chosen_spec(summary: dict) -> Spec:
    """One row per arm: the chosen setting, its validation score, the verdict metric over the
    final seeds (mean ± half-width, IQM with its bootstrap interval), failed runs."""
    f, ci = summary["facts"], f"{round(100 * summary['options']['confidence'])}%"
    m = f["verdict_metric"]
    rows = [[a["label"], setting_text(a["params"]), num(a["score"], ".4g"),
             mean_half(a["metrics"][m]),
             interval(a["metrics"][m]["iqm"], a["metrics"][m]["iqm_lo"],
                      a["metrics"][m]["iqm_hi"]),
             f"{a['failed']}/{a['n_seeds']}"] for a in summary["arms"]]
    return (f"chosen settings (best mean {f['select']} over the tuning seeds) and final "
            f"{m} ({'lower' if f['lower_is_better'] else 'higher'} is better) over the final "
            f"seeds: mean ± {ci} CI half-width; IQM [{ci} bootstrap CI]; failed: diverged "
            "final runs, scored at chance and counted",
            ["arm", "chosen setting", f['select'], m, f"IQM {m} [CI]", "failed"], rows)


def paired_spec(summary: dict, base: str) -> Spec:
    """Every other arm against the tuned `base`, on the verdict metric: the mean difference
    (arm - base, same final seed), Holm-adjusted t-test and Wilcoxon p, P(arm beats base)
    with its bootstrap interval, and the minimal detectable effect."""
    o, m = summary["options"], summary["facts"]["verdict_metric"]
    ci = f"{round(100 * o['confidence'])}%"
    entries = summary["paired"][base]
    rows = []
    for e in entries:
        d = e["metrics"][m]
        rows.append([e["label"], diff_half(d),
                     num(d["t_p_holm"], ".2g"), num(d["wilcoxon_p_holm"], ".2g"),
                     interval(d["p_improve"], d["p_improve_lo"], d["p_improve_hi"], ".2f"),
                     num(d["mde"], ".3g")])
    return (f"paired against tuned {base}: arm − {base} on {m}, same final seed (mean ± {ci} "
            f"CI half-width); p Holm-adjusted across the {len(entries)} arms; P(improve): "
            f"share of seeds where the arm beats {base} [{ci} bootstrap CI]; MDE: smallest "
            f"difference a paired t-test detects (α = {o['alpha']:g}, power {o['power']:g})",
            ["arm", f"Δ {m}", "t p (Holm)", "Wilcoxon p", "P(improve) [CI]", "MDE"],
            rows)


def metrics_spec(summary: dict) -> Spec:
    """Every final metric per arm: mean ± half-width over the final seeds."""
    ms = summary["facts"]["metrics"]
    ci = f"{round(100 * summary['options']['confidence'])}%"
    rows = [[a["label"], str(a["n_seeds"]), *(mean_half(a["metrics"][m]) for m in ms)]
            for a in summary["arms"] if all(m in a["metrics"] for m in ms)]
    return (f"final test metrics: mean ± {ci} CI half-width over the final seeds",
            ["arm", "n", *ms], rows)


def all_paired_spec(summary: dict, base: str) -> Spec:
    """Every other arm against the tuned `base` on every metric (report.md and full): as
    paired_spec, without the Wilcoxon p (report.json has it), to fit 100 columns."""
    ci = f"{round(100 * summary['options']['confidence'])}%"
    rows = [[e["label"], m, diff_half(d), num(d["t_p_holm"], ".2g"),
             interval(d["p_improve"], d["p_improve_lo"], d["p_improve_hi"], ".2f"),
             num(d["mde"], ".3g")]
            for e in summary["paired"][base] for m, d in e["metrics"].items()]
    return (f"paired against tuned {base}, every metric: arm − {base}, same final seed (mean ± "
            f"{ci} CI half-width; t-test p Holm-adjusted across the arms, per metric; Wilcoxon "
            "p in report.json)",
            ["arm", "metric", "Δ", "t p (Holm)", "P(improve) [CI]", "MDE"], rows)


def budget_spec(summary: dict) -> Spec:
    """The tuning budget per arm, copied from tune.json (final runs not counted)."""
    def cell(value: Any, spec: str = "d") -> str:
        return num(value, spec) if isinstance(value, int | float) else num(None)

    rows = [[b["arm"], cell(b["trials"]), cell(b["runs"]), cell(b["epochs"]),
             cell(b["cpu_seconds"], ".1f"), cell(b["gpu_seconds"], ".1f"),
             cell(b["reference_runs"])] for b in summary["budget"]]
    return ("budget of the tuning (final runs not counted; reference runs: the no-flood runs "
            "that set a relative flood level range)",
            ["arm", "trials", "runs", "epochs", "CPU s", "GPU s", "reference runs"], rows)


def verdict_specs(summary: dict, full: bool = True) -> list[Spec]:
    """(title, header, rows) of every table, empty ones left out: chosen settings, paired
    against plain and against weighted, budget; with `full` also every final metric, every
    paired difference and the notes."""
    specs = [chosen_spec(summary), *(paired_spec(summary, b) for b in summary["paired"]),
             budget_spec(summary)]
    if full:
        specs += [metrics_spec(summary), *(all_paired_spec(summary, b) for b in summary["paired"]),
                  ("notes", ["note"], [[n] for n in summary["notes"]])]
    return [s for s in specs if s[2]]


def verdict_tables(summary: dict, full: bool = False) -> list[Table]:
    """The verdict as rich tables, for the CLI to print (this module prints nothing)."""
    tables = []
    for title, header, rows in verdict_specs(summary, full):
        table = Table(title=title)
        for column in header:
            table.add_column(column, justify="left" if column in LEFT else "right")
        for row in rows:
            table.add_row(*row)
        tables.append(table)
    return tables


def verdict_markdown(summary: dict) -> str:
    """report.md of a tune folder: a heading, the facts line, the verdict sentences as a
    bullet list, then every table (verdict_specs with full)."""
    lines = ["# lossbench tune: verdict", "", describe_tune(summary) + ".", "",
             "## verdict", "", *(f"- {s}" for s in summary["sentences"]), ""]
    for title, header, rows in verdict_specs(summary, full=True):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def write_verdict(summary: dict, folder: str | Path) -> list[Path]:
    """Write report.json and report.md into the tune folder atomically; return their paths."""
    return write_report(summary, folder, verdict_markdown(summary))
