"""Local parallelism: runs in worker processes on this machine (`--jobs N`).

Each worker takes its share of the CPU threads (`thread_share`) or its own GPU, and runs
`execute.run_one`; every run's randomness comes from its own seeds, so the results equal
a sequential execution with the same thread count. SIGTERM or Ctrl-C marks the run in flight
interrupted and ends the worker (`worker_signal`, `run_in_worker`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from lossbench.config import RunConfig
from lossbench.errors import ConfigError, Terminated, raise_terminated
from lossbench.events import Events, QueueEvents, drain, forward_events
from lossbench.runner.execute import Comparison, RunOutcome, run_one
from lossbench.training.trainer import resolve_device

DEFAULT_THREADS = 1
"""torch threads per run unless --threads says otherwise. One thread per run makes CPU
results independent of the machine: reductions split their work by thread count, so the same
command and seeds give the same metrics.csv on a 2-core laptop and a 64-core server (CPUs
with other instruction sets, e.g. AVX-512 against AVX2, may still differ in the last digits).
The cores are used by running runs in parallel instead (`resolve_jobs`)."""


def resolve_jobs(jobs: int | str, n_runs: int, device: str = "cpu") -> int:
    """Worker processes for `n_runs` runs. `auto`: on the CPU one per core, at most one per
    run; with CUDA one per GPU (each worker owns a device). An int is taken as given (CUDA
    still caps it at the number of GPUs, in `run_parallel`). Anything else is a ConfigError."""
    if isinstance(jobs, str):
        if jobs.strip().lower() != "auto":
            try:
                jobs = int(jobs)
            except ValueError:
                raise ConfigError(f"--jobs must be a positive integer or 'auto', got '{jobs}'"
                                  ) from None
        elif resolve_device(device).type == "cuda":
            return max(1, min(torch.cuda.device_count(), n_runs))
        else:
            return max(1, min(os.cpu_count() or 1, n_runs))
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    return jobs


def thread_share(jobs: int, threads: int | None = None) -> int:
    """torch threads per run: `threads` if given, else DEFAULT_THREADS (1), whatever `jobs`
    is. CPU results are bit-identical between any two executions with the same thread count,
    sequential or parallel."""
    return threads or DEFAULT_THREADS


def worker_init(threads: int, counter, messages) -> None:
    """A worker process: its share of the CPU threads, its own GPU when there are GPUs (worker
    i uses cuda:i mod n_gpus, so `--jobs` = number of GPUs gives one process per device),
    SIGTERM unwinds like Ctrl-C, and its runs' events go to the parent through `messages`
    (`QueueEvents`)."""
    global _messages
    _messages = messages
    torch.set_num_threads(threads)
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if torch.cuda.is_available():
        torch.cuda.set_device(index % torch.cuda.device_count())
    signal.signal(signal.SIGTERM, worker_signal)
    signal.signal(signal.SIGINT, worker_signal)


_worker_busy = False
"""True while a worker process trains a run (run_in_worker)."""
_worker_stopping = False
"""True once a signal has begun unwinding the run in flight (worker_signal)."""
_messages = None
"""This worker's end of the parent's event queue (worker_init)."""


def worker_signal(signum: int, frame: object) -> None:
    """SIGTERM or Ctrl-C in a worker. Training: unwind like Ctrl-C, so the run in flight is
    marked interrupted (run_in_worker then ends the process). Idle: exit at once. A second
    signal while the first unwinds is ignored: the pool sends SIGTERM to every worker again
    when one of them exits, and it must not cut the writing of the interrupted summary."""
    global _worker_stopping
    if not _worker_busy:
        os._exit(128 + signum)
    if _worker_stopping:
        return
    _worker_stopping = True
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise_terminated(signum, frame)


def run_in_worker(index: int, cfg: RunConfig, parent: Path, restart: bool
                  ) -> RunOutcome | None:
    """`run_one` in a worker process, its events sent to the parent (`QueueEvents`, the run
    known by its `index` in the parent's list). Interrupted, the worker marks its run
    interrupted and exits: the pool would otherwise hand it the next queued run and train on
    after the parent has stopped (concurrent.futures catches every exception of a call)."""
    global _worker_busy
    try:
        _worker_busy = True
        events = QueueEvents(_messages, index)
        events.run_started(cfg)
        return run_one(cfg, parent, events, True, restart)
    except Terminated:
        os._exit(143)
    except KeyboardInterrupt:
        os._exit(130)
    finally:
        _worker_busy = False


def worker_context() -> multiprocessing.context.BaseContext:
    """Where worker processes come from. With forkserver (Linux, macOS) a server process
    imports lossbench and torch once (torch._dynamo included: torch.optim imports it on
    first use) and every worker forks from it at once; the server lives as long as
    this Python process, so later commands of the same session reuse it. Where there is no
    forkserver (Windows) workers are spawned and each pays the imports. Either way a worker
    starts from a clean interpreter that has run no torch op: no inherited threads or CUDA."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["lossbench.runner.execute", "torch._dynamo"])
    return context


POLL_SECONDS = 0.2
"""How often the parent of worker processes passes their events on while it waits."""


def run_parallel(runs: list[RunConfig], comparison: Comparison, events: Events, jobs: int,
                 threads: int, restart: bool = False) -> None:
    """`run_in_worker` for every run in `jobs` worker processes (see worker_context) with
    `threads` torch threads each. Every run's randomness comes from its own seeds, so the
    results equal a sequential execution with the same thread count. Each run's events
    (started, every epoch, finished) reach `events` in this process as they happen."""
    context = worker_context()
    if resolve_device(runs[0].device).type == "cuda":
        jobs = min(jobs, torch.cuda.device_count())  # at most one process per GPU
    messages = context.SimpleQueue()
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=worker_init,
                               initargs=(threads, context.Value("i", 0), messages))
    outcomes: dict[int, RunOutcome] = {}
    try:
        futures = {pool.submit(run_in_worker, i, cfg, comparison.dir, restart): i
                   for i, cfg in enumerate(runs)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            forward_events(drain(messages), runs, events)  # a run's events, then its outcome
            for future in done:
                outcome = future.result()
                outcomes[futures[future]] = outcome
                events.run_finished(outcome)
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            if process.is_alive():
                process.terminate()  # SIGTERM: each worker marks its run interrupted
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    comparison.runs.extend(outcomes[i] for i in range(len(runs)))
