"""How much does lossbench's runner cost on top of the training it drives?

(a) lossbench: one full run through `runner.execute.train_in_folders` (strategy object,
    bookkeeping of every loss, validation metrics, metrics.csv, checkpoint and best weights
    every epoch);
(b) a bare PyTorch loop written here: the same model, data, batches and objective (the
    strategy's formula inline), one optimiser step per batch, the validation loss per epoch.
Both train the same weights (the script prints both final validation losses: they must
agree). They run in lockstep in one process: lossbench's epoch k, then the bare loop's epoch k,
then lossbench's epoch k+1 (the lossbench run lives in a thread that pauses after each epoch).
Neighbouring epochs see the same machine, so the drifts of a shared machine (±10 % from one
run to the next on the 2-core dev VM) cancel in the per-epoch ratio. An epoch's time holds
everything done per epoch (lossbench: until its progress event, after checkpoint and
metrics.csv); the first epoch, which holds the set-up, is left out. Printed: median epoch
times, their ratio and the median per-epoch ratio (goal: lossbench <= 1.05 x bare). Then
the CLI's default comparison (`lossbench run --strategy all --seeds 3`) is timed with
--jobs 1 and --jobs 2.

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
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from lossbench.config import load_config
from lossbench.events import Events
from lossbench.runner.execute import run_record, train_in_folders
from lossbench.runner.plan import plan_runs
from lossbench.seeds import epoch_generator, run_seeds
from lossbench.tasks import build_task
from lossbench.training.losses import compute_losses
from lossbench.training.trainer import init_model, make_optimizer

ROOT = Path(__file__).resolve().parents[1]


def bare_epochs(cfg, task) -> Iterator[tuple[float, float]]:
    """A minimal loop, one epoch per `next`: yields (seconds, validation loss). The strategy's
    formulas are written inline, so its steps and weights are lossbench's; no bookkeeping, no
    files (on a GPU the validation loss's .item() waits for the epoch's work to finish)."""
    device = torch.device(cfg.device)
    model = init_model(task, cfg, device)
    optimizer = make_optimizer(model, cfg.optim)
    reweight, flood = cfg.strategy.name.startswith("reweight"), cfg.strategy.name.endswith("flood")
    p = cfg.strategy.params  # the strategy's parameters as the run holds them (runner/plan.py)
    theta = float(p.get("theta0", 0.0))
    for epoch in range(1, cfg.train.epochs + 1):
        start = time.perf_counter()
        generator = epoch_generator(run_seeds(cfg.seed).batch, epoch)
        order = torch.randperm(len(task.train), generator=generator)
        model.train()
        for i in range(0, len(order), cfg.train.batch_size):
            idx = order[i:i + cfg.train.batch_size]
            losses = compute_losses(model, task.train.inputs[idx].to(device),
                                    task.train.targets[idx].to(device), cfg.losses, epoch,
                                    generator)
            main, aux = losses.main.mean, losses.aux.mean
            if reweight:
                theta_tilde = main / (main + p["lam"] * aux + p["eps"])
                if p["detach_theta"]:
                    theta_tilde = theta_tilde.detach()
                theta_new = p["alpha"] * theta_tilde + (1.0 - p["alpha"]) * theta
                theta = float(theta_new.detach())
                loss = main + theta_new * aux
            else:
                loss = main + aux
            if flood:
                loss = (loss - cfg.strategy.b).abs() + cfg.strategy.b
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            scores = model.logits(model(task.val.inputs.to(device))[:, -1])
            val_loss = F.cross_entropy(scores, task.val.targets.to(device)).item()  # syncs
        yield time.perf_counter() - start, val_loss


class Lockstep(Events):
    """Times each lossbench epoch and pauses the run at its end (`epoch_done`, the last
    thing an epoch does) until `resume` is released."""

    def __init__(self) -> None:
        self.epoch_ended, self.resume = threading.Semaphore(0), threading.Semaphore(0)
        self.times: list[float] = []
        self.started = time.perf_counter()

    def epoch_done(self, cfg, row: dict) -> None:
        self.times.append(time.perf_counter() - self.started)
        self.epoch_ended.release()
        self.resume.acquire()
        self.started = time.perf_counter()


def paired_epochs(cfg, task, folder: Path) -> tuple[list[float], list[float]]:
    """Epoch times of a lossbench run and of the bare loop, run in lockstep (first epochs
    left out). The lossbench run must train every epoch, or what it skipped would flatter it."""
    lockstep, result = Lockstep(), {}

    def run() -> None:
        try:
            (outcome,) = train_in_folders([(cfg, folder, run_record(cfg, task))], task,
                                          lockstep)
            result["summary"], result["rows"] = outcome.summary, outcome.rows
        finally:
            lockstep.epoch_ended.release()  # never leave the main thread waiting

    thread = threading.Thread(target=run, daemon=True)  # a failing bare loop must not hang
    thread.start()
    bare, bare_times = bare_epochs(cfg, task), []
    for _ in range(cfg.train.epochs):
        lockstep.epoch_ended.acquire()
        if not thread.is_alive():
            break
        seconds, bare_val = next(bare)
        bare_times.append(seconds)
        lockstep.resume.release()
    thread.join()
    summary, rows = result.get("summary", {}), result.get("rows", [])
    if summary.get("status") != "complete" or len(rows) != cfg.train.epochs:
        raise SystemExit(f"the lossbench run did not train all epochs ({summary.get('status')});"
                         " pick a strategy and flood level that do not diverge")
    if abs(rows[-1]["val_loss"] - bare_val) > 1e-4:
        raise SystemExit(f"the two loops did not train the same weights: final validation loss "
                         f"{rows[-1]['val_loss']:.6f} (lossbench) vs {bare_val:.6f} (bare)")
    return lockstep.times[1:], bare_times[1:]


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
    task = build_task(cfg.task, cfg.seed)
    lb, bare = [], []  # epoch times, all repetitions together
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            ours, theirs = paired_epochs(cfg, task, Path(tmp) / f"run{rep}")
            lb += ours
            bare += theirs
    print(f"config {args.config}, strategy {cfg.strategy.name}, {args.epochs} epochs x {args.reps} "
          f"reps in lockstep, {args.threads} torch threads, device {args.device}; both loops "
          f"reach the same final validation loss")
    for name, times in (("lossbench", lb), ("bare loop", bare)):
        print(f"{name:10} median {statistics.median(times) * 1000:7.1f} ms/epoch "
              f"over {len(times)} epochs")
    ratios = [a / b for a, b in zip(lb, bare, strict=True)]
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"ratio lossbench / bare = {statistics.median(lb) / statistics.median(bare):.3f} "
          f"(of the medians); per epoch: median {statistics.median(ratios):.3f}, "
          f"quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}")
    if not args.skip_cli:
        one, two = time_cli(1, args.config, args.device), time_cli(2, args.config, args.device)
        print(f"lossbench run --strategy all --seeds 3: --jobs 1 {one:.1f} s, "
              f"--jobs 2 {two:.1f} s, ratio {one / two:.2f}x")


if __name__ == "__main__":
    main()
