"""Fused against sequential training: wall time and how far the numbers differ.

    python benchmarks/bench_fused.py --config experiments/synthetic.toml --strategy all \
        --seeds 1 --epochs 5 --device cpu
    python benchmarks/bench_fused.py --strategy all --seeds 3 --device cuda --json out.json

Plans the runs as `lossbench run` does (`runner.plan.plan_runs`), splits them into
`fused.fusable_groups`, and for every group trains it twice into a fresh folder through
`runner.execute.train_in_folders`: one run after another (what `lossbench run --jobs 1`
does per run), then together (a group of one trains unfused again). A warm-up of
one epoch each way comes first (the first optimiser step of a process costs seconds, CUDA
starts up). Prints per group and in total the wall time of each way, the time per model-epoch
(an epoch of one run: training, validation, files) and where it went (training, validation,
checkpoints), then the largest relative difference |fused - sequential| / max(|x|, 1e-3)
over every number of metrics.csv, per stretch of epochs, and of the test metrics.

Measured 2026-11-27 (the figures in `lossbench/training/fused.py`'s docstring come from here):

- CPU, 2 cores shared with other work (load ~5), one torch thread, PyTorch 2.13.0:
  `--strategy all --seeds 1 --epochs 40`: sequential 61.2 s, fused 108.5 s (0.56x; 3 epochs:
  0.86x); fused validation and training both cost more (vmap runs the CPU attention kernel
  once per run, plus its reshapes and copies; the arithmetic is the same). Differences
  <= 3e-7 for 30 epochs, 3e-4 in epochs 31-40, same best epochs, test metrics 6e-8.
- One H200, PyTorch 2.11.0+cu130 (`benchmarks/gpu_fused.sh`): `--strategy all --seeds 3`
  54.3 s vs 26.4 s (2.06x; training 14.8 vs 7.5 s per group of 4); `--strategy flood
  --b-grid 8.6,...,9.7` (one group of 12) 41.2 s vs 8.9 s (4.64x); ml-100k `--strategy all
  --seeds 3 --allow-dropout` 119.7 s vs 73.0 s (1.64x, other dropout draws).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lossbench.config import flat, load_config, parse_set, with_settings  # noqa: E402
from lossbench.events import Events  # noqa: E402
from lossbench.results.folders import run_dir_name  # noqa: E402
from lossbench.runner.execute import cached_task, run_record, train_in_folders  # noqa: E402
from lossbench.runner.plan import plan_runs  # noqa: E402
from lossbench.training import (  # noqa: E402
    fused,
    loop,
    trainer,  # noqa: E402
)

TIMERS: dict[str, float] = defaultdict(float)
"""Seconds spent in the instrumented functions since the last `reset`."""


def instrument(module, name: str, label: str) -> None:
    """Wrap `module.name` so that its wall time adds to TIMERS[label] (synchronising CUDA
    first, so queued work is charged to the right part)."""
    inner = getattr(module, name)

    def timed(*args, **kwargs):
        sync()
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            sync()
            TIMERS[label] += time.perf_counter() - start

    setattr(module, name, timed)


def sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


for _owner, _name, _label in [(trainer.SingleModel, "train_epoch", "train"),
                              (trainer.SingleModel, "evaluate", "eval"),
                              (fused.Stacked, "train_epoch", "train"),
                              (fused.Stacked, "evaluate", "eval"),
                              (loop, "save_checkpoint", "checkpoint")]:
    instrument(_owner, _name, _label)


def in_folders(cfgs, out: Path, allow_dropout: bool = False) -> list[tuple[dict, list[dict]]]:
    """(summary, rows) per run, trained in its folder under `out`: fused when several."""
    task = cached_task(cfgs[0])
    todo = [(c, out / run_dir_name(flat(c)), run_record(c, task)) for c in cfgs]
    return [(o.summary, o.rows) for o in train_in_folders(todo, task, Events(), allow_dropout)]


def run_sequential(cfgs, out: Path) -> list[tuple[dict, list[dict]]]:
    return [result for cfg in cfgs for result in in_folders([cfg], out)]


def run_together(cfgs, out: Path, allow_dropout: bool) -> list[tuple[dict, list[dict]]]:
    return in_folders(cfgs, out, allow_dropout)


def timed(fn, *args) -> tuple[float, dict, list]:
    """(wall seconds, TIMERS of the call, its result)."""
    TIMERS.clear()
    sync()
    start = time.perf_counter()
    result = fn(*args)
    sync()
    return time.perf_counter() - start, dict(TIMERS), result


def relative(x: float, y: float) -> float:
    if not (math.isfinite(x) and math.isfinite(y)):
        return 0.0 if x == y or (math.isnan(x) and math.isnan(y)) else math.inf
    return abs(x - y) / max(abs(x), 1e-3)


def differences(seq: list, fus: list, stretch: int) -> dict:
    """Per stretch of `stretch` epochs the largest relative difference of every number of
    metrics.csv but flood_frac, and the largest absolute difference of flood_frac (a step
    whose total lies within rounding of b flips it by 1/steps); the largest relative
    difference of the test metrics; how many runs agree on the best epoch and epochs run."""
    per_stretch: dict[str, float] = {}
    flood: dict[str, float] = {}
    test = 0.0
    for (s1, rows1), (s2, rows2) in zip(seq, fus, strict=True):
        for r1, r2 in zip(rows1, rows2, strict=False):  # runs may stop apart
            lo = (r1["epoch"] - 1) // stretch * stretch + 1
            key = f"epochs {lo}-{lo + stretch - 1}"
            worst = max(relative(r1[k], r2[k]) for k in r1 if k not in ("seconds",
                                                                         "flood_frac"))
            per_stretch[key] = max(per_stretch.get(key, 0.0), worst)
            flood[key] = max(flood.get(key, 0.0), abs(r1["flood_frac"] - r2["flood_frac"]))
        test = max([test, *(relative(s1[k], s2[k]) for k in s1
                            if k.startswith("test_") and k in s2)])
    return {"rows": per_stretch, "flood_frac": flood, "test": test,
            "same_best_epoch": sum(a["best_epoch"] == b["best_epoch"] for (a, _), (b, _)
                                   in zip(seq, fus, strict=True)),
            "same_epochs_run": sum(len(a) == len(b) for (_, a), (_, b)
                                   in zip(seq, fus, strict=True)),
            "runs": len(seq)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "experiments" / "synthetic.toml"))
    parser.add_argument("--strategy", action="append", default=None)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--b-grid", default=None,
                        help="comma-separated flood levels: the runs of every b (a sweep)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--set", action="append", default=[], help="key=value settings")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--allow-dropout", action="store_true",
                        help="fuse runs with dropout on CUDA too (other dropout draws)")
    parser.add_argument("--stretch", type=int, default=10, help="epochs per difference line")
    parser.add_argument("--json", default=None, help="write every number to this file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    overrides = {"device": args.device, **parse_set(args.set)}
    if args.epochs:
        overrides["epochs"] = args.epochs
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    base = load_config(args.config, overrides)
    seeds = list(range(base.seed, base.seed + args.seeds))
    levels = [float(b) for b in args.b_grid.split(",")] if args.b_grid else [base.strategy.b]
    planned = [c for b in levels
               for c in plan_runs(with_settings(base, {"b": b}), args.strategy or ["all"],
                                  seeds)]
    cfgs = list({run_dir_name(flat(c)): c for c in planned}.values())
    cfgs.sort(key=lambda c: c.seed)  # seed-major, as a sweep plans them
    groups = fused.fusable_groups(cfgs, allow_dropout=args.allow_dropout)
    device = trainer.resolve_device(base.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{len(cfgs)} runs in {len(groups)} groups ({[len(g) for g in groups]}) on "
          f"{name}, torch {torch.__version__}, {args.threads} thread(s)")

    out = Path(tempfile.mkdtemp(prefix="bench-fused-"))
    try:
        warm = [with_settings(c, {"epochs": 1}) for c in max(groups, key=len)]
        run_sequential(warm[:1], out / "warm-seq")
        run_together(warm, out / "warm-fused", args.allow_dropout)
        report: dict = {"device": name, "torch": torch.__version__, "groups": []}
        seq_all, fus_all = [], []
        for index, group in enumerate(groups):
            t_seq, parts_seq, seq = timed(run_sequential, group, out / "seq")
            t_fus, parts_fus, fus = timed(run_together, group, out / "fused",
                                          args.allow_dropout)
            epochs_seq = sum(len(rows) for _, rows in seq)
            epochs_fus = sum(len(rows) for _, rows in fus)
            line = {"runs": [c.strategy.name for c in group], "seed": group[0].seed,
                    "sequential_s": t_seq, "fused_s": t_fus, "model_epochs": epochs_seq,
                    "model_epochs_fused": epochs_fus,
                    "sequential_parts_s": parts_seq, "fused_parts_s": parts_fus}
            report["groups"].append(line)
            seq_all += seq
            fus_all += fus
            print(f"group {index} (seed {group[0].seed}, {len(group)} runs): sequential "
                  f"{t_seq:.1f} s, fused {t_fus:.1f} s ({t_seq / t_fus:.2f}x); per model-"
                  f"epoch {1e3 * t_seq / max(epochs_seq, 1):.1f} vs "
                  f"{1e3 * t_fus / max(epochs_fus, 1):.1f} ms; parts (s) sequential "
                  f"{fmt(parts_seq)} | fused {fmt(parts_fus)}")
        t_seq = sum(g["sequential_s"] for g in report["groups"])
        t_fus = sum(g["fused_s"] for g in report["groups"])
        report.update(sequential_s=t_seq, fused_s=t_fus, speedup=t_seq / t_fus,
                      differences=differences(seq_all, fus_all, args.stretch))
        print(f"total: sequential {t_seq:.1f} s, fused {t_fus:.1f} s: {t_seq / t_fus:.2f}x")
        diff = report["differences"]
        print("largest relative difference fused vs sequential: "
              + ", ".join(f"{k} {v:.2g}" for k, v in diff["rows"].items())
              + "; flood_frac (absolute): "
              + ", ".join(f"{k} {v:.2g}" for k, v in diff["flood_frac"].items() if v)
              + f"; test metrics {diff['test']:.2g}; same best epoch "
              f"{diff['same_best_epoch']}/{diff['runs']}, same epochs run "
              f"{diff['same_epochs_run']}/{diff['runs']}")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def fmt(parts: dict) -> str:
    return " ".join(f"{k} {v:.2f}" for k, v in sorted(parts.items()))


if __name__ == "__main__":
    main()
