"""The report as people read it: rich tables for the terminal, report.md and report.json.

    summary = report.summarize(report.load_runs(folder))
    paths = write_report(summary, folder)        # report.json, report.md
    tables = render_tables(summary)              # rich tables; the CLI prints them

Pure formatting of `report.summarize`'s JSON-able dict: nothing here computes a statistic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from lossbench.results.folders import write_atomic, write_json
from lossbench.results.report import NOISE_RULE


def half(stat: dict) -> float | None:
    """Half-width of a mean_ci interval, None when it has no interval."""
    return None if stat["lo"] is None else (stat["hi"] - stat["lo"]) / 2



def num(value: Any, spec: str = ".4f") -> str:
    """A table cell: `-` for a missing value (None in the JSON-able summary)."""
    return "-" if value is None else format(value, spec)


Spec = tuple[str, list[str], list[list[str]]]
"""A table: (title, header, rows of strings)."""
COMPACT_TITLES = ("puzzle", "diverged", "incomplete", "notes")
"""The tables `lossbench report` prints without --full after the compact one and the
double descent by group (each begins its title with one of these words)."""


def compact_spec(summary: dict) -> Spec:
    """One row per group, to fit 100 columns: n seeds, the selection metric (`best_by`) at the
    best epoch (mean ± CI half-width), and the paired differences against the group's
    baseline (same seed) of test_loss and test_ndcg10 with their Holm-corrected t-test p."""
    best_by = summary["settings"].get("best_by", "val_loss")
    ci = f"{round(100 * summary['options']['confidence'])}%"
    paired = {e["label"]: e for e in summary["paired"]}
    rows = []
    for g in summary["groups"]:
        stat = g["stats"].get(best_by)
        row = [g["label"], str(len(g["seeds"])),
               f"{num(stat['mean'], '.3f')} ± {num(half(stat), '.3f')}" if stat else "-"]
        for metric in ("test_loss", "test_ndcg10"):
            d = paired.get(g["label"], {}).get("metrics", {}).get(metric)
            row += ([f"{num(d['mean'], '+.3f')} ± {num(half(d), '.3f')}",
                     num(d["t_p_holm"], ".2g")] if d else ["-", "-"])
        rows.append(row)
    baselines = sorted({e["baseline"] for e in summary["paired"]})
    return (f"summary: {best_by} at the best epoch and paired differences against "
            f"{', '.join(baselines) or 'the baseline'} (mean ± {ci} CI half-width; p: t-test, "
            "Holm across groups)",
            ["group", "n", best_by, "Δ test_loss", "p", "Δ test_ndcg10", "p"], rows)


def median_of(rows: list[dict], key: str) -> float | None:
    """The median of `key` over the rows that have it (the upper one of an even count);
    None when none has it."""
    values = sorted(d[key] for d in rows if d.get(key) is not None)
    return values[len(values) // 2] if values else None


def double_descent_by_group(summary: dict) -> Spec:
    """The double descent per flooded group, to fit 100 columns: in how many seeds it was
    found and clear, and the medians of rise/noise and of the share of the rise won back."""
    o, rows = summary["options"], []
    labels = list(dict.fromkeys(d["label"] for d in summary["double_descent"]))
    for label in labels:
        seeds = [d for d in summary["double_descent"] if d["label"] == label]
        n = len(seeds)
        rows.append([label, f"{sum(d['found'] for d in seeds)}/{n}",
                     f"{sum(bool(d.get('clear')) for d in seeds)}/{n}",
                     num(median_of(seeds, "rise_over_noise"), ".1f"),
                     num(median_of(seeds, "recovered"), ".2f"),
                     num(sum(d["frac_below_b"] for d in seeds) / n, ".3f")])
    return (f"double descent of val_loss by group (moving average {o['window']} epochs; clear: "
            f"rise >= {NOISE_RULE:g} x noise; --full: per seed)",
            ["group", "found", "clear", "rise/noise", "won back", "frac below b"], rows)


def table_specs(summary: dict) -> list[Spec]:
    """(title, header, rows of strings) for every table of the report, the compact one
    first; empty ones left out. Shared by render_tables (rich) and write_report
    (markdown)."""
    ci = f"{round(100 * summary['options']['confidence'])}%"
    specs = [compact_spec(summary)]
    for part in ("val", "test"):
        ms = [m for m in summary["metrics"] if m.startswith(part) or
              (part == "val" and m == "final_val_loss")]
        rows = [[g["label"], str(len(g["seeds"])),
                 *(f"{num(g['stats'][m]['mean'])} ± {num(half(g['stats'][m]))}" for m in ms)]
                for g in summary["groups"]]
        what = ("validation at the best epoch (final_val_loss: last epoch)" if part == "val"
                else "test at the best validation epoch")
        specs.append((f"{what}: mean ± {ci} CI half-width over seeds",
                      ["group", "n", *ms], rows))
    rows = [[e["label"], e["baseline"], m, str(d["n"]),
             f"{num(d['mean'])} [{num(d['lo'])}, {num(d['hi'])}]",
             *(num(d[k], ".3g") for k in ("t_p", "t_p_holm", "wilcoxon_p", "wilcoxon_p_holm")),
             d["note"]]
            for e in summary["paired"] for m, d in e["metrics"].items()]
    specs.append((f"paired differences (group - baseline, same seed), {ci} CI; Holm across "
                  "groups", ["group", "baseline", "metric", "n", "mean diff [CI]", "t-test p",
                             "Holm p", "Wilcoxon p", "Holm p", "note"], rows))
    rows = [[d["label"], str(d["seed"]), "yes" if d["found"] else "no",
             *(f"{num(d[v], '.3f')} @{d[t]}" for v, t in (("m1", "t1"), ("peak", "t_peak"),
                                                          ("m2", "t2"))),
             num(d["recovered"], ".2f"), num(d.get("rise_over_noise"), ".1f"),
             "yes" if d.get("clear") else "no", num(d["frac_below_b"], ".3f")]
            for d in summary["double_descent"]]
    o = summary["options"]
    specs.append((f"double descent of val_loss (moving average {o['window']} epochs, "
                  f"peak >= {o['rise']:g} m1, >= {o['recover']:g} of the rise won back; clear: "
                  f"rise >= {NOISE_RULE:g} x the epoch-to-epoch noise)",
                  ["group", "seed", "found", "m1 @epoch", "peak @epoch", "m2 @epoch",
                   "recovered", "rise/noise", "clear", "frac below b"], rows))
    rows = [[d["label"], str(d["seed"]), str(d["n_epochs"]),
             ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in d["spans"]) or "-",
             d["baseline"] or "-", num(d["baseline_n_epochs"], "d"), d["verdict"] or "-"]
            for d in summary.get("overconfidence", [])]
    specs.append((f"puzzle: epochs where the {o['window']}-epoch mean validation loss rises "
                  "while validation accuracy and NDCG@10 rise too",
                  ["group", "seed", "epochs", "where", "paired with", "its epochs",
                   "flooding"], rows))
    specs.append(("diverged runs (excluded from the statistics)",
                  ["group", "seed", "epoch", "step", "run"],
                  [[d["label"], str(d["seed"]), str(d.get("epoch", "-")),
                    str(d.get("step", "-")), d["run"]] for d in summary["diverged"]]))
    specs.append(("incomplete run folders (skipped)", ["folder", "problem"],
                  [[d["run"], d["problem"]] for d in summary["incomplete"]]))
    specs.append(("notes", ["note"], [[n] for n in summary["notes"]]))
    return [s for s in specs if s[2]]


def render_tables(summary: dict, full: bool = True) -> list[Table]:
    """The report as rich tables, for the CLI to print (this module prints nothing): every
    table, or with `full=False` the compact one and the COMPACT_TITLES ones."""
    tables = []
    specs = table_specs(summary)
    if not full:
        by_group = double_descent_by_group(summary)
        specs = [specs[0], *([by_group] if by_group[2] else []),
                 *(s for s in specs[1:] if s[0].startswith(COMPACT_TITLES))]
    for title, header, rows in specs:
        table = Table(title=title)
        for i, column in enumerate(header):
            table.add_column(column, justify="left" if i == 0 or column in
                             ("group", "baseline", "metric", "note", "run", "folder",
                              "problem", "found") else "right")
        for row in rows:
            table.add_row(*row)
        tables.append(table)
    return tables


def to_markdown(summary: dict) -> str:
    """report.md: a heading with the shared settings, then one markdown table per spec."""
    lines = ["# lossbench report", "", f"Runs: {describe_settings(summary['settings'])}.", ""]
    for title, header, rows in table_specs(summary):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def describe_settings(settings: dict) -> str:
    """`synthetic · sasrec · aux supcon · 20 epochs · sgd lr 0.5 · 3 seeds`: the shared
    settings a reader needs first (for titles); settings that vary are left out."""
    s = settings
    parts = [s["dataset"] if s.get("task") == "movielens" else s.get("task"), s.get("model"),
             f"aux {s['aux']}" if "aux" in s else None,
             f"{s['epochs']} epochs" if "epochs" in s else None,
             f"{s['optimizer']} lr {s['lr']:g}" if "optimizer" in s and "lr" in s else None,
             f"{s['lr_schedule']} schedule" if s.get("lr_schedule", "constant") != "constant"
             else None,
             f"{s['lr_warmup']}-epoch warm-up" if s.get("lr_warmup", 0) else None,
             f"best by {s['best_by']}" if s.get("best_by", "val_loss") != "val_loss" else None,
             f"{len(s['seeds'])} seed{'s' * (len(s['seeds']) != 1)}"]
    return " · ".join(str(p) for p in parts if p is not None)


def write_report(summary: dict, results_dir: str | Path, markdown: str | None = None
                 ) -> list[Path]:
    """Write report.json (`summary`) and report.md (`markdown`, by default `to_markdown` of
    the summary) into results_dir atomically; return their paths."""
    results_dir = Path(results_dir)
    paths = [results_dir / "report.json", results_dir / "report.md"]
    write_json(paths[0], summary)
    write_atomic(paths[1], to_markdown(summary) if markdown is None else markdown)
    return paths
