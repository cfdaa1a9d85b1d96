"""Progress that tells the truth: the display model's counts and ETA under interleaved
events from two workers, and what `lossbench run` shows when it ends."""

from __future__ import annotations

import copy

import pytest

from lossbench.cli.app import app
from lossbench.cli.progress import ProgressModel, clock
from lossbench.config import load_config
from lossbench.events import QueueEvents, forward_events


def cfgs(tiny, n: int, epochs: int = 10) -> list:
    return [load_config(tiny, {"strategy": "flood", "b": 1.0 + i, "epochs": epochs})
            for i in range(n)]


def row(epoch: int) -> dict:
    return {"epoch": epoch, "val_loss": 4.0}


def test_two_workers_interleaved_counts_and_eta(tiny):
    """Worker 1 trains run A, worker 2 run B (events interleaved, as the parent receives
    them); A's outcome comes back as a copy (pickled from the worker); run C is complete on
    disk; D waits. The counts follow, and the ETA is the epochs left times the measured wall
    time per trained epoch."""
    a, b, c, d = cfgs(tiny, 4)
    model = ProgressModel()
    model.plan([a, b, c, d])
    assert (model.total, model.finished, len(model.running), model.epochs_left) == (4, 0, 0, 40)
    assert model.eta(0.0) is None  # nothing measured yet
    model.start(a, now=0.0)
    model.start(b, now=0.5)
    for epoch in (1, 2, 3):
        model.epoch(a, row(epoch))
        model.epoch(b, row(epoch))
    assert (model.epochs_trained, len(model.running), model.epochs_left) == (6, 2, 34)
    assert model.eta(now=12.0) == pytest.approx(34 * 12.0 / 6)  # 2 s per trained epoch
    model.start(c, now=12.5)
    model.finish(copy.deepcopy(c), skipped=True)
    for epoch in range(4, 11):
        model.epoch(a, row(epoch))
    model.finish(copy.deepcopy(a), skipped=False)
    assert (model.finished, model.skipped, len(model.running)) == (2, 1, 1)
    assert model.epochs_trained == 13 and model.epochs_left == 7 + 10  # B's 7, D's 10
    assert model.eta(now=26.0) == pytest.approx(17 * 2.0)


def test_a_resumed_run_counts_its_replayed_epoch_once(tiny):
    (a,) = cfgs(tiny, 1)
    model = ProgressModel()
    model.plan([a])
    model.start(a, now=0.0)
    model.epoch(a, row(6))  # restored from its checkpoint: 6 epochs done before
    model.epoch(a, row(7))
    assert model.running[repr(a)].done == 7 and model.epochs_left == 3
    assert model.epochs_trained == 2  # the replay counts one, not six


def test_worker_messages_become_the_parents_events(tiny):
    """What a worker puts on its queue reaches the parent as the same run's events."""
    from helpers import EventLog

    runs = cfgs(tiny, 2, epochs=2)

    class ListQueue(list):  # a list stands in for the queue
        def put(self, message) -> None:
            self.append(message)

    sent = ListQueue()
    for index in (1, 0):
        worker = QueueEvents(sent, index)
        worker.run_started(runs[index])
        worker.epoch_done(runs[index], row(1))
    log = EventLog()
    forward_events(sent, runs, log)
    assert log.by_run == {log.label(runs[1]): ["started", "epoch 1"],
                          log.label(runs[0]): ["started", "epoch 1"]}


def test_clock():
    assert [clock(None), clock(5), clock(65.4), clock(3723)] == ["-:--", "0:05", "1:05",
                                                                  "1:02:03"]


def test_run_ends_with_every_run_and_epoch_counted(runner, tiny, tmp_path):
    result = runner.invoke(app, ["run", "--config", str(tiny), "-s", "plain", "-s", "flood",
                                 "--seeds", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "runs 4/4 done, 0 running; epochs" in result.stdout
    assert "12/12" in result.stdout  # 4 runs x 3 epochs
    again = runner.invoke(app, ["run", "--config", str(tiny), "-s", "plain", "-s", "flood",
                                "--seeds", "2", "--out", str(tmp_path)])
    assert "runs 4/4 done, 0 running, 4 skipped; epochs" in again.stdout
