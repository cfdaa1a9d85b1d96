"""Helpers shared by the tests: reading a run's metrics.csv, and comparing numbers written on
another machine with the tolerance that float32 arithmetic explains.

What lossbench promises (README, "Numbers that travel"): the same command gives identical
numbers on one machine (resume, paired runs, parallel or sequential); another CPU (AVX2
against AVX-512, Intel against AMD, ARM) sums float32 in another order, so its numbers agree
to ~1e-5 relative, not to the last digit. Tests that compare with numbers stored in the
repository use `assert_rows_close`; tests that compare two runs made in the same test compare
exactly (`metrics_rows(a) == metrics_rows(b)`).
"""

from __future__ import annotations

import csv
import math
import os
import signal
from pathlib import Path

from lossbench.events import Events

TINY = Path(__file__).with_name("tiny.toml")
"""A configuration small enough for tests: a few seconds per command on one CPU core."""
LOSS_RTOL = 1e-5
"""Relative tolerance on losses, θ and temperatures written on another machine: float32
reductions in another order differ by ~1e-7 relative per operation, which a few epochs of
training amplify by at most a few tens."""
RANKING = ("val_acc", "val_hr10", "val_ndcg10", "val_mrr10")
"""Ranking metrics: a mean over examples of a per-example value in [0, 1]. A last-digit
difference in the scores can flip two nearly tied items of one example, which moves the mean
by at most 1/n (n examples) — and by nothing else."""


def metrics_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a metrics.csv (a file, or the run folder holding one) without `seconds`
    (wall time: the only column that differs between two identical runs)."""
    path = path / "metrics.csv" if path.is_dir() else path
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def run_folders(out: Path) -> list[Path]:
    """The run folders of every experiment under `out` (`out/<experiment>/<run>`), sorted."""
    return sorted(p for p in Path(out).glob("*/*") if p.is_dir())


def only_run(out: Path) -> Path:
    """The one run folder under `out`."""
    (folder,) = run_folders(out)
    return folder


def close(column: str, got: str, want: str, n_examples: int) -> bool:
    """Whether one metrics.csv cell written on another machine agrees with ours: `epoch`
    exactly; ranking metrics within 1/n_examples (one flipped rank) plus LOSS_RTOL; every
    other number within LOSS_RTOL relative (1e-12 absolute for values near 0)."""
    if column == "epoch":
        return int(got) == int(want)
    a, b = float(got), float(want)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    atol = 1.0 / n_examples if column in RANKING else 1e-12
    return math.isclose(a, b, rel_tol=LOSS_RTOL, abs_tol=atol)


def assert_rows_close(got: list[dict], want: list[dict], n_examples: int, label: str = "") -> None:
    """`got` (metrics_rows of a run made here) agrees with `want` (stored in the repository,
    written on another machine): the same epochs and columns, every cell `close`."""
    assert len(got) == len(want), f"{label}: {len(got)} epochs against {len(want)}"
    assert list(got[0]) == list(want[0]), f"{label}: columns differ"
    for row, expected in zip(got, want, strict=True):
        for column, value in row.items():
            assert close(column, value, expected[column], n_examples), (
                f"{label} epoch {row['epoch']} {column}: {value} against {expected[column]}")


class EventLog(Events):
    """An `Events` that records, per run label (`strategy seed`), the events it got: e.g.
    ["started", "epoch 1", "epoch 2", "finished"]; `planned` counts the runs announced."""

    def __init__(self) -> None:
        self.by_run: dict[str, list[str]] = {}
        self.planned = 0

    @staticmethod
    def label(cfg) -> str:
        strategy = cfg.strategy
        return f"{strategy.name} b={strategy.b:g} {sorted(strategy.params.items())} s{cfg.seed}"

    def runs_planned(self, cfgs) -> None:
        self.planned += len(cfgs)

    def run_started(self, cfg) -> None:
        self.by_run.setdefault(self.label(cfg), []).append("started")

    def epoch_done(self, cfg, row: dict) -> None:
        self.by_run.setdefault(self.label(cfg), []).append(f"epoch {row['epoch']}")

    def run_finished(self, outcome) -> None:
        self.by_run.setdefault(self.label(outcome.cfg), []).append(
            "skipped" if outcome.skipped else "finished")

    def every_run_was(self, *events: str) -> bool:
        return bool(self.by_run) and all(got == list(events) for got in self.by_run.values())


def task_of(cfg):
    """The task of a run config (`build_task` of its task section and seed), as a run
    builds it."""
    from lossbench.tasks import build_task

    return build_task(cfg.task, cfg.seed)


def lossbench_main(argv: list[str], log: str) -> None:
    """The body of a `lossbench ARGV` process: stdout to LOG.out, stderr to LOG.err; exits
    with the command's exit code (typer raises SystemExit). Ctrl-C raises KeyboardInterrupt,
    as in a `lossbench` started from a terminal, even when the tests themselves run as a
    background job (whose shell starts them with SIGINT ignored)."""
    from lossbench.cli.app import app

    signal.signal(signal.SIGINT, signal.default_int_handler)
    for fd, suffix in ((1, ".out"), (2, ".err")):
        os.dup2(os.open(log + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    app(argv, prog_name="lossbench")


class Command:
    """`lossbench ARGV` in its own process, forked from a server that has imported
    lossbench and torch once (the same forkserver --jobs uses): a real process that real
    signals reach, without paying ~5 s of imports per process on a 2-core machine."""

    def __init__(self, argv: list[str], log: Path):
        from lossbench.runner.workers import worker_context  # torch: not in the controller

        self.log = str(log)
        self.process = worker_context().Process(target=lossbench_main, args=(argv, self.log))
        self.process.start()

    def poll(self) -> int | None:
        return self.process.exitcode

    def send_signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def wait(self, timeout: float = 120) -> int:
        self.process.join(timeout)
        assert self.process.exitcode is not None, "the command did not finish in time"
        return self.process.exitcode

    def stdout(self) -> str:
        return Path(self.log + ".out").read_text()

    def stderr(self) -> str:
        return Path(self.log + ".err").read_text()


def assert_fused_equals_unfused(cfgs: list, folder: Path, keys: tuple[str, ...]) -> list[dict]:
    """Train `cfgs[0]` alone and `cfgs` as one fused group: the first run's rows agree on
    `keys` within float32 rounding (1e-5 relative). Returns the unfused rows."""
    import pytest

    from lossbench.training.fused import train_fused
    from lossbench.training.trainer import train_one

    task = task_of(cfgs[0])
    alone = train_one(cfgs[0], task, None, lambda *_: None, lambda *_: None).rows
    fused = train_fused(cfgs, task, [folder / f"{i}.pkl" for i in range(len(cfgs))],
                        lambda *_: None, lambda *_: None)
    for row, want in zip(fused[0].rows, alone, strict=True):
        for key in keys:
            assert row[key] == pytest.approx(want[key], rel=1e-5), key
    return alone


def assert_resume_equals_whole(cfg, folder: Path, stop_after: int = 2):
    """Train `cfg` uninterrupted; then stop it after epoch `stop_after` (an exception from
    the epoch callback, as Ctrl-C), resume from its checkpoint, and require the resumed
    rows to equal the uninterrupted ones except `seconds`. Returns the resumed RunState."""
    import pytest

    from lossbench.training.trainer import train_one

    class Stop(Exception):
        pass

    def stop(_, rows):
        if rows[-1]["epoch"] == stop_after:
            raise Stop

    task = task_of(cfg)
    whole = train_one(cfg, task, None, lambda *_: None, lambda *_: None)
    checkpoint = folder / "checkpoint.pkl"
    with pytest.raises(Stop):
        train_one(cfg, task, checkpoint, stop, lambda *_: None)
    resumed = train_one(cfg, task, checkpoint, lambda *_: None, lambda *_: None)

    def numbers(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert numbers(resumed.rows) == numbers(whole.rows)
    return resumed


def one_parameter_step(strategy, p0: float = 0.5, lr: float = 0.1):
    """One `train_step` of `strategy` on a one-parameter model p = `p0` with the conflicting
    losses L_main = (p - 1)^2 and L_aux = (p + 1)^2 (at p = 0.5: g_main = -1, g_aux = 3) and
    SGD at `lr`. Returns (p after the step, the step)."""
    import torch

    from lossbench.strategies import LossTerm
    from lossbench.training.losses import Losses
    from lossbench.training.trainer import train_step

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(p0)
    p = model.weight[0, 0]
    main, aux = (p - 1) ** 2, (p + 1) ** 2
    losses = Losses(LossTerm(main.reshape(1), main), LossTerm(aux.reshape(1), aux))
    step = train_step(model, torch.optim.SGD(model.parameters(), lr=lr), strategy, losses)
    return float(model.weight.detach()), step


def assert_hand_example_split(task) -> None:
    """The split of the hand example that test_movielens and test_interactions both write
    (user 7's items by time 40, 20, 30, 10, 50 then user 3's 20, 30, 10, numbered by first
    appearance: 40 -> 1, 20 -> 2, 30 -> 3, 10 -> 4, 50 -> 5) with max_len 3: leave-one-out
    validation and test, one training window of [3, 2, 4] (user 3's [2] has no target)."""
    assert task.n_items == 5
    assert task.val.inputs.tolist() == [[3, 2, 4], [0, 0, 2]]
    assert task.val.targets.tolist() == [1, 3]
    assert task.test.inputs.tolist() == [[2, 4, 1], [0, 2, 3]]
    assert task.test.targets.tolist() == [5, 1]
    assert task.train.inputs.tolist() == [[0, 3, 2]]
    assert task.train.targets.tolist() == [[0, 2, 4]]
