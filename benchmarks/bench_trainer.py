"""How much does lossbench's runner cost on top of the training it drives?

(a) lossbench: one full run through `experiment.execute_run` (strategy, bookkeeping of every
    loss, validation metrics, metrics.csv, checkpoint and best weights every epoch);
(b) a bare PyTorch loop written here: the same model, data, batches and losses
    (L_main + L_aux), one optimiser step per batch, the validation loss once per epoch.
They alternate in one process, `--reps` times each, and the script prints the median seconds
per epoch of each and their ratio (goal: lossbench <= 1.05 x bare). Then it times the CLI's
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


def bare_loop(cfg, task) -> float:
    """Seconds per epoch of a minimal loop: no strategy object, no per-step syncs, no files
    (on a GPU the validation loss's .item() waits for the epoch's work to finish)."""
    device = torch.device(cfg.device)
    model = init_model(task, cfg, device)
    optimizer = make_optimizer(model, cfg)
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        generator = epoch_generator(run_seeds(cfg.seed).batch, epoch)
        order = torch.randperm(len(task.train), generator=generator)
        model.train()
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            losses = compute_losses(model, task.train.inputs[idx].to(device),
                                    task.train.targets[idx].to(device), cfg, epoch, generator)
            loss = losses.main + losses.aux
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            scores = model.logits(model(task.val.inputs.to(device))[:, -1])
            F.cross_entropy(scores, task.val.targets.to(device)).item()  # .item() syncs
    return (time.perf_counter() - start) / cfg.epochs


def lossbench_loop(cfg, task, folder: Path) -> float:
    """Seconds per epoch of a full lossbench run (files included); it must not diverge,
    or the epochs it skipped would flatter it."""
    start = time.perf_counter()
    summary, rows = execute_run(cfg, task, folder, run_record(cfg, task), Events())
    seconds = time.perf_counter() - start
    if summary["status"] != "complete" or len(rows) != cfg.epochs:
        raise SystemExit(f"the lossbench run did not train all epochs ({summary['status']}); "
                         "pick a strategy and flood level that do not diverge")
    return seconds / cfg.epochs


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
    lb, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            lb.append(lossbench_loop(cfg, task, Path(tmp) / f"run{rep}"))
            bare.append(bare_loop(cfg, task))
    ratio = statistics.median(lb) / statistics.median(bare)
    print(f"config {args.config}, strategy {cfg.strategy}, {args.epochs} epochs, "
          f"{args.reps} reps, {args.threads} torch threads, device {args.device}")
    print(f"lossbench  median {statistics.median(lb) * 1000:8.1f} ms/epoch  "
          f"{[round(x * 1000, 1) for x in lb]}")
    print(f"bare loop  median {statistics.median(bare) * 1000:8.1f} ms/epoch  "
          f"{[round(x * 1000, 1) for x in bare]}")
    print(f"ratio lossbench / bare = {ratio:.3f}")
    if not args.skip_cli:
        one, two = time_cli(1, args.config, args.device), time_cli(2, args.config, args.device)
        print(f"lossbench run --strategy all --seeds 3: --jobs 1 {one:.1f} s, "
              f"--jobs 2 {two:.1f} s, ratio {one / two:.2f}x")


if __name__ == "__main__":
    main()
