"""Where the run folders of `--backend ray` live, and how Ray tasks reach them.

A *store* holds run folders under one root: the driver's results folder, written by a small
actor on the driver's node (`StoreServer`; no shared filesystem needed), or `--storage` (a
path or an fsspec URL: s3://, gs://, ...). A task downloads its run's files from the store,
trains in a scratch folder and ships the files back after every epoch (`StoreSync`); with
`--storage` the driver copies each finished run into the results folder (`copy_back`).
Nothing here imports torch: the StoreServer actor's process starts in a blink.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lossbench.errors import ConfigError

if TYPE_CHECKING:
    from lossbench.config import RunConfig
    from lossbench.runner.ray_options import RayOptions

STORE_FILES = ("config.json", "metrics.csv", "summary.json", "checkpoint.pkl")
EPOCH_FILES = ("checkpoint.pkl", "metrics.csv", "config.json")
"""Shipped after every epoch, the checkpoint first: metrics.csv is never ahead of it."""
FINAL_FILES = ("config.json", "metrics.csv", "summary.json")
"""Shipped when a run ends (complete or diverged), summary.json last."""

def first_line(exc: BaseException) -> str:
    """An exception's message, first line only."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class RunStore:
    """Run folders under one root, a local path or an fsspec URL; files are bytes. On a local
    disk a file is written under a temporary name and renamed (a kill never leaves half a
    file); object stores make each object appear whole anyway."""

    def __init__(self, root: str) -> None:
        from fsspec.core import url_to_fs
        from fsspec.implementations.local import LocalFileSystem

        self.root = root
        self.fs, self.path = url_to_fs(root)
        self.local = isinstance(self.fs, LocalFileSystem)

    def get(self, run: str) -> dict[str, bytes]:
        """The files of `run` that the store holds (STORE_FILES)."""
        files = {}
        for name in STORE_FILES:
            try:
                files[name] = self.fs.cat_file(f"{self.path}/{run}/{name}")
            except FileNotFoundError:
                pass
        return files

    def put(self, run: str, files: dict[str, bytes]) -> None:
        """Write `files` into `run`'s folder, in the dict's order."""
        folder = f"{self.path}/{run}"
        self.fs.makedirs(folder, exist_ok=True)
        for name, data in files.items():
            if self.local:
                self.fs.pipe_file(f"{folder}/.{name}.tmp", data)
                self.fs.mv(f"{folder}/.{name}.tmp", f"{folder}/{name}")
            else:
                self.fs.pipe_file(f"{folder}/{name}", data)

    def delete(self, run: str, names: tuple[str, ...]) -> None:
        """Remove these files of `run` where they exist."""
        for name in names:
            try:
                self.fs.rm_file(f"{self.path}/{run}/{name}")
            except FileNotFoundError:
                pass


class StoreServer:
    """A Ray actor on the driver's node: RunStore calls for tasks on other nodes."""

    def call(self, root: str, method: str, *args: Any) -> Any:
        return getattr(RunStore(root), method)(*args)


@dataclass(frozen=True)
class Served:
    """A store that tasks reach through a StoreServer actor: the actor and the root."""

    server: Any
    root: str


def call(store: RunStore | Served, method: str, *args: Any) -> Any:
    """`store.method(*args)` on a RunStore, or through the actor of a Served store, waited
    for in a helper thread: while a task's main thread waits in `ray.get`, Ray lends the
    task's CPUs to queued tasks, which would start more runs at once than there are cores."""
    if isinstance(store, RunStore):
        return getattr(store, method)(*args)
    import ray

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(
            lambda: ray.get(store.server.call.remote(store.root, method, *args))).result()


STORE_SERVERS: dict[tuple[str, str], Any] = {}
"""This process's StoreServer for its current Ray session (node id, job id): started once
(~1-2 s, as any worker) and used by every later comparison and sweep batch."""


def store_server(ray: Any) -> Any:
    """The StoreServer actor on this (the driver's) node, started on first use."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    context = ray.get_runtime_context()
    key = (context.get_node_id(), context.get_job_id())
    if key not in STORE_SERVERS:
        STORE_SERVERS.clear()
        here = NodeAffinitySchedulingStrategy(key[0], soft=False)
        actor = ray.remote(StoreServer).options(num_cpus=0, scheduling_strategy=here)
        STORE_SERVERS[key] = actor.remote()
    return STORE_SERVERS[key]


def open_store(ray: Any, options: RayOptions, results: Path
               ) -> tuple[RunStore, RunStore | Served]:
    """(the store as the driver reaches it, the store as tasks reach it). With `storage`
    both are the same RunStore on `<storage>/<experiment>`; without, the driver writes the
    results folder directly and tasks go through the StoreServer on the driver's node."""
    if options.storage:
        storage = options.storage
        root = (f"{storage.rstrip('/')}/{results.name}" if "://" in storage
                else str(Path(storage).expanduser().resolve() / results.name))
        try:
            store = RunStore(root)
            store.fs.makedirs(store.path, exist_ok=True)
        except (ImportError, ValueError, OSError) as exc:
            raise ConfigError(f"cannot use --storage {storage}: {first_line(exc)}") from None
        return store, store
    store = RunStore(str(results.resolve()))
    return store, Served(store_server(ray), store.root)


class StoreSync:
    """The `Events` of a remote run: after every epoch EPOCH_FILES go from the
    scratch folder to the store (the first time, an old summary.json of an interrupted
    attempt leaves the store too, as `RunRecorder.start` removes it locally), and the
    events go on to `forward` (the driver's queue)."""

    def __init__(self, store: RunStore | Served, name: str, run_dir: Path, forward: Any
                 ) -> None:
        self.store, self.name, self.run_dir, self.forward = store, name, run_dir, forward
        self.started = False

    def runs_planned(self, cfgs: list[RunConfig]) -> None: ...
    def run_finished(self, outcome: Any) -> None: ...

    def run_started(self, cfg: RunConfig) -> None:
        self.forward.run_started(cfg)

    def epoch_done(self, cfg: RunConfig, row: dict) -> None:
        if not self.started:
            call(self.store, "delete", self.name, ("summary.json",))
            self.started = True
        self.upload(EPOCH_FILES)
        self.forward.epoch_done(cfg, row)

    def upload(self, names: tuple[str, ...]) -> None:
        files = {n: (self.run_dir / n).read_bytes() for n in names if (self.run_dir / n).exists()}
        call(self.store, "put", self.name, files)


def copy_back(store: RunStore, results: RunStore, name: str) -> None:
    """The run's files from the store into the results folder (no-op when they are one)."""
    if store.root == results.root:
        return
    files = store.get(name)
    if files:
        results.put(name, files)
        if "checkpoint.pkl" not in files:
            results.delete(name, ("checkpoint.pkl",))
