"""How much does lossbench's runner cost on top of the training it drives?

(a) lossbench: one full run through `experiment.execute_run` (strategy, bookkeeping of every
    loss, validation metrics, metrics.csv, checkpoint and best weights every epoch);
(b) a bare PyTorch loop written here: the same model, data, batches and losses
    (L_main + L_aux), one optimiser step per batch, the validation loss once per epoch.
They alternate in one process, `--reps` times each. An epoch's time is the time between two
epoch ends (all the per-epoch work included; the first epoch, which holds the set-up, is left
out). The script prints the median epoch time of each over all repetitions and their ratio
(goal: lossbench <= 1.05 x bare); medians of many epochs resist the bursts of noise of a
shared machine better than whole-run means. Then it times the CLI's
default comparison (`lossbench run --strategy all --seeds 3`) with --jobs 1 and --jobs 2.

    python benchmarks/bench_trainer.py                    # defaults: synthetic.toml
    python benchmarks/bench_trainer.py --epochs 20 --reps 5 --skip-cli
    python benchmarks/bench_trainer.py --device cuda --skip-cli   # on a GPU machine
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lossbench.config import load_config
from lossbench.experiment import Events, execute_run, plan_runs, run_record
from lossbench.losses import compute_losses
from lossbench.seeds import epoch_generator, run_seeds
from lossbench.tasks import build_task
from lossbench.trainer import init_model, make_optimizer

ROOT = Path(__file__).resolve().parents[1]


def epoch_times(stamps: list[float]) -> list[float]:
    """Seconds between consecutive epoch ends: every epoch but the first (which also holds the
    set-up), everything the loop does per epoch included. A stamp is (wall, process CPU time)."""
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(stamps[:-1], stamps[1:], strict=True)]


def now() -> tuple[float, float]:
    """(wall clock, CPU time of this process: all its threads, not the time it waited)."""
    return time.perf_counter(), time.process_time()


def bare_loop(cfg, task) -> tuple[list[tuple[float, float]], float]:
    """Epoch times and final validation loss of a minimal loop: the strategy's formulas written
    inline (so the steps, and the weights they lead to, are lossbench's), no bookkeeping, no
    files (on a GPU the validation loss's .item() waits for the epoch's work to finish)."""
    device = torch.device(cfg.device)
    model = init_model(task, cfg, device)
    optimizer = make_optimizer(model, cfg)
    reweight, flood = cfg.strategy.startswith("reweight"), cfg.strategy.endswith("flood")
    theta = cfg.theta0
    stamps = []
    for epoch in range(1, cfg.epochs + 1):
        generator = epoch_generator(run_seeds(cfg.seed).batch, epoch)
        order = torch.randperm(len(task.train), generator=generator)
        model.train()
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            losses = compute_losses(model, task.train.inputs[idx].to(device),
                                    task.train.targets[idx].to(device), cfg, epoch, generator)
            main, aux = losses.main, losses.aux
            if reweight:
                theta_new = (cfg.alpha * main / (main + cfg.lam * aux + cfg.eps)
                             + (1.0 - cfg.alpha) * theta)
                theta = float(theta_new.detach())
                loss = main + theta_new * aux
            else:
                loss = main + aux
            if flood:
                loss = (loss - cfg.b).abs() + cfg.b
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            scores = model.logits(model(task.val.inputs.to(device))[:, -1])
            val_loss = F.cross_entropy(scores, task.val.targets.to(device)).item()  # syncs
        stamps.append(now())
    return epoch_times(stamps), val_loss


class EpochClock(Events):
    """Notes the time at the end of each lossbench epoch (after its checkpoint, metrics.csv
    and progress event: the last thing an epoch does)."""

    def __init__(self) -> None:
        self.stamps: list[tuple[float, float]] = []

    def epoch_done(self, cfg, row: dict) -> None:
        self.stamps.append(now())


def lossbench_loop(cfg, task, folder: Path) -> tuple[list[tuple[float, float]], float]:
    """Epoch times and final validation loss of a full lossbench run (files included); it
    must not diverge, or the epochs it skipped would flatter it."""
    clock = EpochClock()
    summary, rows = execute_run(cfg, task, folder, run_record(cfg, task), clock)
    if summary["status"] != "complete" or len(rows) != cfg.epochs:
        raise SystemExit(f"the lossbench run did not train all epochs ({summary['status']}); "
                         "pick a strategy and flood level that do not diverge")
    return epoch_times(clock.stamps), rows[-1]["val_loss"]


def time_cli(jobs: int, config: str, device: str) -> float:
    """Wall seconds of `lossbench run --strategy all --seeds 3 --jobs N` into a fresh folder."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lossbench", "run", "--config", config,
                        "--strategy", "all", "--seeds", "3", "--jobs", str(jobs),
                        "--device", device, "--out", out],
                       check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "experiments" / "synthetic.toml"))
    parser.add_argument("--strategy", default="reweight-flood")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (the goal's setting) or cuda")
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_config(args.config, {"epochs": args.epochs, "device": args.device})
    (cfg,) = plan_runs(base, [args.strategy], [base.seed])  # the b the CLI would use
    task = build_task(cfg)
    lb, bare = [], []  # one list of epoch times per repetition
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            times, lb_val = lossbench_loop(cfg, task, Path(tmp) / f"run{rep}")
            lb.append(times)
            times, bare_val = bare_loop(cfg, task)
            bare.append(times)
    print(f"config {args.config}, strategy {cfg.strategy}, {args.epochs} epochs, "
          f"{args.reps} reps, {args.threads} torch threads, device {args.device}")
    print(f"same steps: final validation loss {lb_val:.6f} (lossbench) vs {bare_val:.6f} (bare)")
    for clock, k in (("wall", 0), ("CPU", 1)):
        ours = [[t[k] for t in rep] for rep in lb]
        theirs = [[t[k] for t in rep] for rep in bare]
        for name, reps in (("lossbench", ours), ("bare loop", theirs)):
            pooled = [t for rep in reps for t in rep]
            print(f"{clock:4} {name:10} median {statistics.median(pooled) * 1000:7.1f} ms/epoch "
                  f"over {len(pooled)} epochs; per repetition "
                  f"{[round(statistics.median(rep) * 1000, 1) for rep in reps]}")
        ratio = (statistics.median(t for rep in ours for t in rep)
                 / statistics.median(t for rep in theirs for t in rep))
        paired = statistics.median(statistics.median(a) / statistics.median(b)
                                   for a, b in zip(ours, theirs, strict=True))
        print(f"{clock:4} ratio lossbench / bare = {ratio:.3f} (median epoch times); "
              f"{paired:.3f} (median over the {args.reps} back-to-back pairs)")
    if not args.skip_cli:
        one, two = time_cli(1, args.config, args.device), time_cli(2, args.config, args.device)
        print(f"lossbench run --strategy all --seeds 3: --jobs 1 {one:.1f} s, "
              f"--jobs 2 {two:.1f} s, ratio {one / two:.2f}x")


if __name__ == "__main__":
    main()
