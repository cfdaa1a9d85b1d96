"""What running runs tell the caller: the `Events` stream, and its trip across processes.

    events.runs_expected(count, epochs)  # runs a command will plan later (a tune's trials)
    events.runs_planned(cfgs)          # once per batch of runs a command will run
    events.run_started(cfg)            # then, per run (runs may interleave):
    events.epoch_done(cfg, row)        #   once per epoch trained (the metrics.csv row)
    events.run_finished(outcome)       #   last; its outcome (summary, rows, skipped)

A run that is complete on disk is started and finished with no epoch in between. Worker
processes and Ray tasks send their runs' events to the command's process as messages
`(index of the run in the command's list, event name, row)` (`QueueEvents`), and the command
turns them back into its own events (`forward_events`). Torch-free: Ray's store actor and
the CLI import it.
"""

from __future__ import annotations

from typing import Any

RunConfig = Any
"""A run's config (lossbench.config.RunConfig): this module sits below the configuration."""


class Events:
    """Progress hooks for a caller that displays things (the CLI); all optional no-ops."""

    def runs_expected(self, count: int, epochs: int) -> None:
        """`count` runs of `epochs` epochs each will be planned later, their settings not
        known yet (a tune's next trials and its final runs); each later `runs_planned` takes
        its runs out of this count. Lets a display count them in its total and its ETA."""

    def runs_planned(self, cfgs: list[RunConfig]) -> None: ...
    def run_started(self, cfg: RunConfig) -> None: ...
    def epoch_done(self, cfg: RunConfig, row: dict) -> None: ...
    def run_finished(self, outcome: Any) -> None: ...


class QueueEvents(Events):
    """The events of run `index` in another process, put on `queue` as messages (any queue
    with `put`: a multiprocessing SimpleQueue, whose `put` has written the message when it
    returns, or a Ray queue). The outcome travels back as the call's result instead."""

    def __init__(self, queue: Any, index: int) -> None:
        self.queue, self.index = queue, index

    def run_started(self, cfg: RunConfig) -> None:
        self.queue.put((self.index, "run_started", None))

    def epoch_done(self, cfg: RunConfig, row: dict) -> None:
        self.queue.put((self.index, "epoch_done", row))


def forward_events(messages: list[tuple[int, str, Any]], runs: list[RunConfig],
                   events: Events) -> None:
    """Messages from `QueueEvents` as `events` of this process (`runs[index]` is the run)."""
    for index, name, row in messages:
        if name == "run_started":
            events.run_started(runs[index])
        else:
            events.epoch_done(runs[index], row)


def drain(queue: Any) -> list:
    """Every message waiting on a multiprocessing queue, without blocking."""
    messages = []
    while not queue.empty():
        messages.append(queue.get())
    return messages
