"""`--backend ray`: every run is a Ray task, so a comparison can use the cores of a cluster.

    run_comparison(base, ["all"], seeds=[0, 1, 2], jobs=RayOptions(num_cpus=1))

Each run is a plain Ray task (`train_remote`) with its own `num_cpus` / `num_gpus` (fractions
allowed), retried by Ray when its worker dies (`max_retries`). Not a Tune trial: lossbench
already plans the runs, keeps its own results layout and resumes from its own checkpoints;
Tune would add a second results folder, a scheduler and trial names to map back.

A task runs `execute.run_one` into a scratch copy of the run folder on its node and ships
checkpoint.pkl, metrics.csv and config.json to the run's *store* (`run_store.py`) after every
epoch, and summary.json at the end (the checkpoint then goes). The store is the driver's
results folder itself, written by a small actor on the driver's node (no shared filesystem
needed; the folder looks exactly as a local run's), or with `storage` (a path or fsspec URL:
s3://, gs://, ...) `<storage>/<experiment>/<run folder>/`, copied into the results folder as
each task ends. A task starts by downloading what the store holds, so a task whose worker
died resumes after its last epoch on any node and, on the CPU, ends with the same metrics.csv.

Runs complete in the results folder are read back without a task, runs complete in the store
by their task. The driver holds each run folder's lock, as a local run does. Ctrl-C (or
SIGTERM) cancels every task, killing the workers of those in flight (a worker interrupted
inside an import would be reused half-initialised); the driver then marks each run that had
finished an epoch `interrupted`, as a local Ctrl-C does, and the same command resumes them.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lossbench
from lossbench.config import flat
from lossbench.errors import ConfigError, LossbenchError
from lossbench.events import QueueEvents, forward_events
from lossbench.results.folders import (
    interrupted_summary,
    is_complete,
    read_json,
    read_metrics,
    run_dir_name,
)
from lossbench.runner.ray_options import RayOptions
from lossbench.runner.store import (
    FINAL_FILES,
    RunStore,
    Served,
    StoreSync,
    call,
    copy_back,
    first_line,
    open_store,
)

if TYPE_CHECKING:  # experiment (and so torch) is imported where it is used: the StoreServer
    from lossbench.config import RunConfig  # actor's process then starts in a blink, flat
    from lossbench.events import Events
    from lossbench.runner.execute import Comparison

INSTALL = 'pip install "lossbench[ray]"'
POLL_SECONDS = 0.2
"""The driver waits for tasks in slices this long, so that Ctrl-C is seen at once."""
CANCEL_WAIT_SECONDS = 30.0
"""How long the driver waits for cancelled tasks to end."""


def require_ray() -> Any:
    """The `ray` module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--backend ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def connect(ray: Any, address: str | None) -> None:
    """Join Ray once per process: `address`, else $RAY_ADDRESS, else a new local Ray on this
    machine's cores (`auto` joins the cluster `ray start` runs here). A session that is
    already up (e.g. the caller's own `ray.init(runtime_env=...)`) is used as it is and left
    up. Ray's SIGTERM handler is undone, so SIGTERM still marks runs interrupted (143)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    check_reachable(address)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        local = {"include_dashboard": False, "_node_ip_address": "127.0.0.1"}  # loopback only
        ray.init(address=address, logging_level=logging.ERROR,
                 **(local if address == "local" else {}))
    except Exception as exc:  # noqa: BLE001 - whatever Ray raises, the user sees one line
        where = "a local Ray" if address == "local" else f"the Ray cluster at {address}"
        cause = f" ({first_line(exc.__cause__).split('. ')[0]})" if exc.__cause__ else ""
        raise ConfigError(f"cannot start or reach {where}: {first_line(exc)}{cause}") from None
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A `host:port` address that refuses a TCP connection is a ConfigError at once (Ray
    itself would retry for minutes)."""
    host, _, port = (address or "").rpartition(":")
    if not host or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: "
                          f"{exc.strerror or exc}") from None


def train_remote(index: int, cfg: RunConfig, store: RunStore | Served, threads: int,
                 version: str, messages: Any) -> dict:
    """A Ray task: download the run's files from `store` into a scratch folder, `run_one`
    there (skipped when complete, resumed from a checkpoint), ship the files back (StoreSync,
    then FINAL_FILES), and return the summary and rows. Its events go to the driver on the
    Ray queue `messages` (`QueueEvents`, the run known by its `index`)."""
    import ray
    import torch

    from lossbench.runner.execute import run_one

    if lossbench.__version__ != version:
        raise ConfigError(f"this Ray node has lossbench {lossbench.__version__}, the driver "
                          f"{version}: install the same version on every node")
    if not ray.get_gpu_ids():  # a run given no GPU by Ray must not take one (device auto)
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    torch.set_num_threads(threads)
    name = run_dir_name(flat(cfg))
    with tempfile.TemporaryDirectory(prefix="lossbench-ray-") as scratch:
        run_dir = Path(scratch) / name
        run_dir.mkdir()
        for file, data in call(store, "get", name).items():
            (run_dir / file).write_bytes(data)
        sync = StoreSync(store, name, run_dir, QueueEvents(messages, index))
        sync.run_started(cfg)
        try:
            outcome = run_one(cfg, Path(scratch), sync, wait=True)
        except LossbenchError as exc:  # name the store, not the scratch folder
            raise type(exc)(str(exc).replace(str(run_dir), f"{store.root}/{name}")) from None
        if not outcome.skipped:
            sync.upload(FINAL_FILES)
            call(store, "delete", name, ("checkpoint.pkl",))
    return {"summary": outcome.summary, "rows": outcome.rows, "skipped": outcome.skipped}


def run_ray(runs: list[RunConfig], comparison: Comparison, events: Events, *, threads: int,
            restart: bool, options: RayOptions) -> None:
    """`local.run_all` on Ray: every run not complete in the results folder becomes a
    `train_remote` task with `options`' resources and `threads` torch threads; outcomes are
    appended to `comparison.runs` in plan order. Each task's events reach `events` here
    through a Ray queue, as the local workers' do."""
    from ray.util.queue import Queue

    from lossbench.runner.execute import RunOutcome, run_lock

    if not runs:
        return
    if runs[0].device == "cuda" and options.num_gpus == 0:
        raise ConfigError("--device cuda with --backend ray needs --num-gpus > 0 (a GPU, or a "
                          "fraction of one, per run)")
    ray = require_ray()
    connect(ray, options.address)
    store, remote_store = open_store(ray, options, comparison.dir)
    results = RunStore(str(comparison.dir.resolve()))
    task = ray.remote(train_remote).options(num_cpus=options.num_cpus,
                                            num_gpus=options.num_gpus,
                                            max_retries=options.max_retries,
                                            retry_exceptions=False)
    outcomes: dict[int, RunOutcome] = {}
    names = [run_dir_name(flat(cfg)) for cfg in runs]
    messages = Queue(actor_options={"num_cpus": 0})

    def finished(i: int, outcome: RunOutcome) -> None:
        forward_events(messages.get_nowait_batch(messages.qsize()), runs, events)
        outcomes[i] = outcome
        events.run_finished(outcome)

    def dispatch(indices: list[int]) -> None:
        pending = {}
        try:
            for i in indices:
                run_dir = comparison.dir / names[i]
                if is_complete(run_dir, flat(runs[i])):
                    events.run_started(runs[i])
                    finished(i, RunOutcome(runs[i], run_dir, read_json(run_dir / "summary.json"),
                                           read_metrics(run_dir / "metrics.csv"), skipped=True))
                    continue
                if restart:
                    store.delete(names[i], ("checkpoint.pkl",))
                    results.delete(names[i], ("checkpoint.pkl",))
                pending[task.remote(i, runs[i], remote_store, threads, lossbench.__version__,
                                    messages)] = i
            while pending:
                with sigterm_between_waits():
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                forward_events(messages.get_nowait_batch(messages.qsize()), runs, events)
                for ref in ready:
                    i = pending.pop(ref)
                    result = get_result(ray, ref)
                    copy_back(store, results, names[i])
                    finished(i, RunOutcome(runs[i], comparison.dir / names[i], result["summary"],
                                           result["rows"], skipped=result["skipped"]))
        except BaseException:
            cancel(ray, list(pending))
            for i in pending.values():
                mark_interrupted(remote_store, runs[i], names[i])
                copy_back(store, results, names[i])
            raise

    with ExitStack() as locks:
        free, busy = [], []
        for i in range(len(runs)):
            lock = run_lock(comparison.dir / names[i], wait=False)
            (free if locks.enter_context(lock) else busy).append(i)
        dispatch(free)
        for i in busy:  # another process works on these: wait for it, then read them back
            locks.enter_context(run_lock(comparison.dir / names[i], wait=True))
        dispatch(busy)
    comparison.runs.extend(outcomes[i] for i in range(len(runs)))


@contextmanager
def sigterm_between_waits() -> Iterator[None]:
    """Ray turns an exception raised by a signal handler while it waits into a plain
    KeyboardInterrupt, so a SIGTERM handler's `Terminated` (exit code 143) would read as
    Ctrl-C (130). Inside this block SIGTERM is only noted; the handler in force (the CLI's
    `raise_terminated`) then runs when the block ends, outside Ray."""
    handler = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or not callable(handler):
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, handler)
    if received:
        handler(signal.SIGTERM, None)


def get_result(ray: Any, ref: Any) -> dict:
    """A task's result; a LossbenchError raised in the task is raised here as itself (one
    line, no remote traceback)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, LossbenchError):
            raise exc.cause from None
        raise


def cancel(ray: Any, refs: list) -> None:
    """Cancel the tasks, killing the workers of those running, and wait for them to end."""
    for ref in reversed(refs):  # queued ones first: none starts on a core freed meanwhile
        ray.cancel(ref, force=True)
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_WAIT_SECONDS)
    for ref in ready:  # fetch the errors, so Ray does not report them as unhandled
        try:
            ray.get(ref)
        except Exception:  # noqa: BLE001, S110 - cancelled or failed: nothing to keep
            pass


def mark_interrupted(store: RunStore | Served, cfg: RunConfig, name: str) -> None:
    """For a cancelled run that finished an epoch (its config.json is in the store) and
    has no summary: the summary.json a local run writes on Ctrl-C (`interrupted_summary`). Written
    through `store` as the task wrote, so it follows the task's last files."""
    files = call(store, "get", name)
    if "config.json" not in files or "summary.json" in files:
        return
    epochs = len(files.get("metrics.csv", b"").decode().splitlines()) - 1
    interrupted = interrupted_summary(flat(cfg), max(epochs, 0))
    call(store, "put", name, {"summary.json": (json.dumps(interrupted, indent=2) + "\n").encode()})
