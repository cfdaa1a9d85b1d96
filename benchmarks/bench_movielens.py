"""How long does the MovieLens quality-bar run take, and what does it reach?

Runs, for each seed, the equivalent of

    lossbench run --config experiments/ml-100k.toml --aux none --strategy plain --seed S \
        --data-dir DATA

through the Python API (training until early stopping, then test), and prints the median
seconds per epoch, the wall time of the whole call (task build, training, test), the best
epoch and the test HR@10 / NDCG@10 / MRR@10, then their means over the seeds.

    python benchmarks/bench_movielens.py                               # seeds 0,1,2
    python benchmarks/bench_movielens.py --seeds 0 --data-dir /work/shared/data
    python benchmarks/bench_movielens.py --aux supcon --threads 1

Issue 4's bar: mean test HR@10 >= 0.11 and NDCG@10 >= 0.052 over seeds 0, 1, 2, and each
run <= 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lossbench import api

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "experiments" / "ml-100k.toml"))
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--data-dir", default="",
                        help="folder holding ml-100k/ (default: $LOSSBENCH_DATA_DIR or cache)")
    parser.add_argument("--aux", default="none", choices=("none", "supcon"))
    parser.add_argument("--strategy", default="plain")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: all cores, as `lossbench run`)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    settings = {"data_dir": args.data_dir} if args.data_dir else {}

    header = (f"{'seed':>4} {'s/epoch':>8} {'total s':>8} {'epochs':>6} {'best':>5} "
              f"{'HR@10':>7} {'NDCG@10':>8} {'MRR@10':>7}")
    print(f"config {args.config}, aux {args.aux}, strategy {args.strategy}", flush=True)
    print(header, flush=True)
    results = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            comparison = api.run(config=args.config, aux=args.aux, strategy=args.strategy,
                                 seed=seed, out=out, threads=args.threads, **settings)
            total = time.perf_counter() - start
        run = comparison.runs[0]
        s = run.summary
        r = {"seed": seed, "sec_epoch": statistics.median(row["seconds"] for row in run.rows),
             "total": total, "epochs": len(run.rows), "best": s["best_epoch"],
             "hr": s["test_hr10"], "ndcg": s["test_ndcg10"], "mrr": s["test_mrr10"]}
        results.append(r)
        print(f"{seed:>4} {r['sec_epoch']:>8.2f} {total:>8.1f} {r['epochs']:>6} {r['best']:>5} "
              f"{r['hr']:>7.4f} {r['ndcg']:>8.4f} {r['mrr']:>7.4f}", flush=True)
    if len(results) > 1:
        mean = {k: statistics.mean(r[k] for r in results)
                for k in ("sec_epoch", "total", "epochs", "best", "hr", "ndcg", "mrr")}
        print(f"{'mean':>4} {mean['sec_epoch']:>8.2f} {mean['total']:>8.1f} "
              f"{mean['epochs']:>6.1f} {mean['best']:>5.1f} {mean['hr']:>7.4f} "
              f"{mean['ndcg']:>8.4f} {mean['mrr']:>7.4f}", flush=True)


if __name__ == "__main__":
    main()
