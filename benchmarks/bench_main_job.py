"""Time the README's main job and print its double-descent table.

    python benchmarks/bench_main_job.py                 # the main job, CLI defaults (--jobs auto)
    python benchmarks/bench_main_job.py --jobs 1        # the same, sequential
    python benchmarks/bench_main_job.py --keep results  # keep the results folder

Runs `lossbench run --config experiments/synthetic.toml --strategy all --seeds 3` as a user
types it (a subprocess, start-up included) into a fresh folder, prints the wall time, then
`lossbench report`'s double-descent rows for the flooded runs (5-epoch centred moving
average, peak >= 1.03 m1, >= 30 % of the rise won back; clear when the rise P - m1 is at
least 4 x the standard deviation of the raw curve around its 5-epoch centred mean) with the
final validation loss of the run and of its paired plain run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lossbench.results import report  # noqa: E402


def number(value: float | None, scale: float = 1.0, spec: str = ".3f", unit: str = "") -> str:
    """A table cell: the value (times scale) formatted, or a dash where the detector found
    nothing to measure."""
    return "–" if value is None else f"{value * scale:{spec}}{unit}"


def at(value: float | None, epoch: int | None) -> str:
    """`value @ epoch`, or a dash."""
    return "–" if value is None else f"{value:.3f} @ {epoch}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "experiments" / "synthetic.toml"))
    parser.add_argument("--jobs", default=None, help="--jobs for the run (default: the CLI's)")
    parser.add_argument("--keep", default=None, help="results folder to keep (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp)
        command = [sys.executable, "-m", "lossbench", "run", "--config", args.config,
                   "--strategy", "all", "--seeds", "3", "--out", str(out)]
        if args.jobs:
            command += ["--jobs", args.jobs]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        seconds = time.perf_counter() - start
        print(f"{' '.join(command[1:])}: {seconds:.1f} s")
        (folder,) = [p for p in out.iterdir() if p.is_dir()]
        runs = report.load_runs(folder)
        summary = report.summarize(runs)
        final = {(r.config["strategy"], r.config["seed"]): r.rows[-1]["val_loss"]
                 for r in runs if r.summary}
        print("| run | found | m1 @ epoch | peak @ epoch | m2 @ epoch | won back | "
              "rise / noise | clear | final val loss (plain's) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for d in summary["double_descent"]:
            strategy = d["label"].split()[0]
            print(f"| {d['label']}, seed {d['seed']} | {'yes' if d['found'] else 'no'} | "
                  f"{at(d['m1'], d['t1'])} | {at(d['peak'], d['t_peak'])} | "
                  f"{at(d['m2'], d['t2'])} | {number(d['recovered'], 100, '.0f', ' %')} | "
                  f"{number(d['rise_over_noise'], 1, '.1f')} | {'yes' if d['clear'] else 'no'} | "
                  f"{final[strategy, d['seed']]:.3f} ({final['plain', d['seed']]:.3f}) |")
        for note in summary["notes"]:
            print(f"note: {note}")


if __name__ == "__main__":
    main()
