"""The ml-100k baseline table: per seed and mean, validation beside test, and the time.

Runs, for seeds 0, 1, 2, the equivalent of

    lossbench run --config experiments/ml-100k.toml --aux none --strategy plain \
        --seed 0 --seeds 3 [--set KEY=VALUE ...]

through the Python API (training until early stopping on validation NDCG@10, then the test
set once, at the chosen epoch), and prints per seed the median seconds per epoch, the
seconds of the run (task build excluded), the epochs run, the best epoch, validation
HR@10 / NDCG@10 at that epoch and test HR@10 / NDCG@10 / MRR@10 there; then the means, as
a Markdown table (the README's), and the means of the four accuracy figures unrounded.

    python benchmarks/bench_movielens.py                      # the README's SASRec row
    python benchmarks/bench_movielens.py --set model=gru ...  # see the README for GRU4Rec's
    python benchmarks/bench_movielens.py --jobs 2             # two runs at a time (2 cores)
    python benchmarks/bench_movielens.py --seed 1 --seeds 1 --threads 2   # one run, 2 cores

`--jobs 2` runs two seeds at once on one torch thread each (the CLI's default on 2 cores);
each run's seconds are then its own, measured while the other ran.

Issue 13's bar: mean test HR@10 >= 0.135 and NDCG@10 >= 0.064 over seeds 0, 1, 2, each run
<= 4 minutes on 2 CPU cores; settings chosen on validation only (README, "ml-100k baseline").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lossbench import api  # noqa: E402
from lossbench.config import parse_set  # noqa: E402
from lossbench.errors import LossbenchError  # noqa: E402

COLUMNS = [("seed", "seed"), ("s/epoch", "sec_epoch"), ("run s", "run_s"), ("epochs", "epochs"),
           ("best", "best"), ("val HR@10", "val_hr"), ("val NDCG@10", "val_ndcg"),
           ("test HR@10", "hr"), ("test NDCG@10", "ndcg"), ("test MRR@10", "mrr")]


def row_of(run) -> dict:
    """One run's figures: time from metrics.csv, the rest from summary.json."""
    s = run.summary
    seconds = [row["seconds"] for row in run.rows]
    return {"seed": run.cfg.seed, "sec_epoch": statistics.median(seconds),
            "run_s": sum(seconds), "epochs": len(run.rows), "best": s["best_epoch"],
            "val_hr": s["val_hr10"], "val_ndcg": s["val_ndcg10"], "hr": s["test_hr10"],
            "ndcg": s["test_ndcg10"], "mrr": s["test_mrr10"]}


def mean_row(rows: list[dict]) -> dict:
    return {"seed": "mean", **{key: statistics.mean(r[key] for r in rows)
                               for _, key in COLUMNS[1:]}}


def markdown_line(row: dict) -> str:
    cells = []
    for _, key in COLUMNS:
        value = row[key]
        if isinstance(value, str):
            cells.append(f"**{value}**")
        elif key in ("hr", "ndcg", "mrr", "val_hr", "val_ndcg"):
            cells.append(f"{value:.4f}")
        elif key in ("epochs", "best", "seed"):
            cells.append(f"{value:g}" if isinstance(value, float) else str(value))
        else:
            cells.append(f"{value:.1f}" if key == "run_s" else f"{value:.2f}")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "experiments" / "ml-100k.toml"))
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds")
    parser.add_argument("--aux", default="none", choices=("none", "supcon"))
    parser.add_argument("--strategy", default="plain")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting (repeatable), as lossbench run --set")
    parser.add_argument("--data-dir", default="",
                        help="folder holding ml-100k/ (default: $LOSSBENCH_DATA_DIR or cache)")
    parser.add_argument("--jobs", default="1", help="runs at a time (an int or auto)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per run (default 1, as lossbench run)")
    parser.add_argument("--out", default=None, help="keep the results here (default: temp)")
    args = parser.parse_args()
    settings = parse_set(args.set)
    if args.data_dir:
        settings["data_dir"] = args.data_dir
    jobs = args.jobs if args.jobs == "auto" else int(args.jobs)

    print(f"config {args.config}, aux {args.aux}, strategy {args.strategy}, "
          f"set {args.set or 'nothing'}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        comparison = api.run(config=args.config, aux=args.aux, strategy=args.strategy,
                             seed=args.seed, seeds=args.seeds, out=args.out or tmp,
                             jobs=jobs, threads=args.threads, **settings)
        wall = time.perf_counter() - start
    rows = sorted((row_of(run) for run in comparison.runs), key=lambda r: r["seed"])
    if len(rows) > 1:
        rows.append(mean_row(rows))
    print("| " + " | ".join(name for name, _ in COLUMNS) + " |")
    print("|" + " ---: |" * len(COLUMNS))
    print("\n".join(markdown_line(r) for r in rows))
    if len(rows) > 1:  # the table rounds to 4 places; a bar like 0.064 needs more
        mean = rows[-1]
        print(f"mean, unrounded: test HR@10 {mean['hr']:.6f}, test NDCG@10 {mean['ndcg']:.6f}, "
              f"val HR@10 {mean['val_hr']:.6f}, val NDCG@10 {mean['val_ndcg']:.6f}")
    print(f"wall {wall:.1f} s for {len(comparison.runs)} runs, jobs {args.jobs}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except LossbenchError as error:  # a bad --set, config or data folder: one line, exit 2
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
