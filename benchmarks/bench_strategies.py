"""Each strategy's time per epoch relative to plain, measured in lockstep.

    python benchmarks/bench_strategies.py                       # synthetic default, 20 epochs
    python benchmarks/bench_strategies.py --config experiments/ml-100k.toml --epochs 3
    python benchmarks/bench_strategies.py -s plain -s famo --set famo_update=next-batch

Every strategy gets its own model (the same initial weights) and trains on the same task with
one torch thread; epoch k of every strategy runs right after epoch k of the others, so the
machine's drift (±10 % on the development VM) hits them alike. Per strategy it prints the
median over epochs of (a) the training pass alone and (b) the whole epoch as metrics.csv
times it (training + full-ranking validation), each divided by plain's in the same round.
Goals (issue 11): loss-level strategies <= 1.05x plain, gradient-combining <= 2.2x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lossbench import strategies as registry  # noqa: E402
from lossbench.config import load_config, parse_set  # noqa: E402
from lossbench.runner.plan import plan_runs  # noqa: E402
from lossbench.tasks import build_task  # noqa: E402
from lossbench.training.loop import RunState, epoch_means  # noqa: E402
from lossbench.training.trainer import SingleModel, init_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "experiments" / "synthetic.toml"))
    parser.add_argument("--strategy", "-s", action="append", default=None,
                        help="strategies (default: builtins)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting or strategy parameter, as `lossbench run --set`")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {"device": "cpu"} | ({"data_dir": args.data_dir} if args.data_dir else {})
    overrides |= parse_set(args.set)
    base = load_config(args.config, overrides)
    cfgs = plan_runs(base, args.strategy or ["builtins"], [base.seed])
    task = build_task(cfgs[0].task, cfgs[0].seed)
    device = torch.device("cpu")
    runs = []
    for cfg in cfgs:
        model = init_model(task, cfg, device)
        strategy = cfg.strategy
        objective = registry.build_objective(strategy.name, strategy.params, strategy.b)
        engine = SingleModel(RunState(cfg, objective), model, task, device)
        runs.append((cfg, engine, objective, [], []))
    for epoch in range(1, args.epochs + 1):
        for _, engine, objective, train_times, epoch_times in runs:
            start = time.perf_counter()
            means = epoch_means(engine.train_epoch(epoch)[:, 0])
            trained = time.perf_counter()
            engine.evaluate(task.val)
            objective.weighting.log_state()
            if "diverged_step" not in means:
                objective.weighting.end_epoch({"main": means["train_main_loss"],
                                               "aux": means["train_aux_loss"]})
            train_times.append(trained - start)
            epoch_times.append(time.perf_counter() - start)
    plain = next(r for r in runs if r[0].strategy.name == "plain")
    print(f"config {args.config}, {args.epochs} epochs in lockstep (first dropped), 1 torch "
          f"thread; ratios are medians over epochs of strategy / plain in the same round")
    print("| strategy | train pass ms | ratio | whole epoch ms | ratio |")
    print("|---|---:|---:|---:|---:|")
    for cfg, _, objective, train_times, epoch_times in runs:
        ratio_train = statistics.median(a / b for a, b in zip(train_times[1:], plain[3][1:],
                                                              strict=True))
        ratio_epoch = statistics.median(a / b for a, b in zip(epoch_times[1:], plain[4][1:],
                                                              strict=True))
        kind = " (gradients)" if objective.weighting.needs_grads else ""
        print(f"| {cfg.strategy.name}{kind} | {1000 * statistics.median(train_times[1:]):.1f} | "
              f"{ratio_train:.3f} | {1000 * statistics.median(epoch_times[1:]):.1f} | "
              f"{ratio_epoch:.3f} |")


if __name__ == "__main__":
    main()
