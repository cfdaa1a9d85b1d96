"""Each strategy's peak memory while it trains, beside plain's, in units of the model's size.

    python benchmarks/bench_memory.py                                # ml-100k, 1 epoch, all
    python benchmarks/bench_memory.py --strategy plain --strategy pcgrad
    python benchmarks/bench_memory.py --config tests/tiny.toml --epochs 1   # a few seconds
    python benchmarks/bench_memory.py --device cuda                  # CUDA memory instead

Issue 30: a gradient-combining strategy should keep at most its two flattened gradients
(g_main, g_aux) on top of what plain keeps (the model, its gradient, the optimiser's state), and
no per-example Jacobians. Every strategy runs alone in a fresh Python process (so that peaks
do not mix), one seed, one torch thread, through the Python API (`api.run`, results in a
temporary folder). That process first builds the task, then trains a throwaway copy of the
model one step with the strategy (so that what a first step loads once, such as
torch._dynamo with the first optimiser, or torchjd, is not counted; and to count the
parameters: P = parameters x 4 bytes, one float32 copy of the weights), then takes its
memory as the start, then runs.

CPU: the peak is the process's peak resident set size minus its RSS at the start (Linux:
VmHWM, reset to the current RSS through /proc/self/clear_refs just before the run;
elsewhere ru_maxrss of getrusage minus ru_maxrss at the start, which then may hide a run
that stays below the peak of the task's build). CUDA
(`--device cuda`): torch.cuda.max_memory_allocated minus memory_allocated at the start (the
caching allocator's reserve and the CUDA context are not counted). The run's peak holds the
validation passes (full ranking) and the test pass; "training passes" is the peak while
`SingleModel.train_epoch` ran (Linux or CUDA only), where the strategies differ. Each peak
is also given over plain's, in MiB and in units of P.

RSS counts pages, not tensors. glibc's malloc raises its mmap threshold as large blocks are
freed, and then keeps freed memory for reuse: the peak then depends on the order of
allocations more than on what is alive (synthetic.toml with n_items 5000, hidden 256, inner
256, P = 6.4 MiB, 2 epochs: pcgrad's and gcs's peaks over plain's came out at +5.5 P and
+9.7 P in one version of this script, -11 P and -13 P in the next; +2.6 P each in both with
a fixed threshold). So the
children run with glibc's threshold fixed at its initial 128 KiB (MALLOC_MMAP_THRESHOLD_,
unless it is set already): a tensor of that size or more gets pages of its own, returned
when it is freed, and the peak follows the tensors alive at once. `--malloc-default` leaves
glibc's dynamic threshold (the memory a user's run takes). Differences of a fraction of a
MiB are noise (small allocations, pages of code, validation's first pass).

Default strategies: plain, weighted, reweight, gcs, pcgrad, rlw, gradnorm, famo, metabalance
and the `jd` group (torchjd's aggregators: each skipped, with a note, when its extra is not
installed). Plain is always run, first: it is the reference.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lossbench.config import parse_set  # noqa: E402
from lossbench.errors import LossbenchError  # noqa: E402
from lossbench.strategies import registry  # noqa: E402
from lossbench.strategies.names import split_name  # noqa: E402

DEFAULT_STRATEGIES = ("plain", "weighted", "reweight", "gcs", "pcgrad", "rlw", "gradnorm",
                      "famo", "metabalance", "jd")
SHARED_DATA = ROOT.parent / "shared" / "data"
MIB = 2 ** 20
MMAP_THRESHOLD = 128 * 1024
"""glibc's initial mmap threshold, fixed in the children (MALLOC_MMAP_THRESHOLD_)."""


# --- in the child process: one strategy, one run ---------------------------------------------


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in bytes (Linux)."""
    out = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def reset_hwm() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class RssMeter:
    """Peak resident memory, from a start; the training passes' peak apart where the
    high-water mark can be reset (Linux), ru_maxrss otherwise."""

    def __init__(self) -> None:
        self.exact = reset_hwm()
        self.peak = self.train_peak = 0
        self.base = 0

    def start(self) -> None:
        gc.collect()
        if self.exact:
            reset_hwm()
            self.base = proc_status()["VmRSS"]
        else:  # ru_maxrss: KiB on Linux, bytes on macOS; a peak, it cannot be reset
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (
                1 if sys.platform == "darwin" else 1024)

    def high_water(self) -> int:
        if self.exact:
            return proc_status()["VmHWM"]
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (
            1 if sys.platform == "darwin" else 1024)

    def begin_pass(self) -> None:
        self.peak = max(self.peak, self.high_water())
        if self.exact:
            reset_hwm()

    def end_pass(self) -> None:
        high = self.high_water()
        self.peak = max(self.peak, high)
        if self.exact:
            self.train_peak = max(self.train_peak, high)

    def stop(self) -> None:
        self.peak = max(self.peak, self.high_water())


class CudaMeter:
    """Peak CUDA memory allocated by torch, from a start; the training passes' apart."""

    def __init__(self, device) -> None:
        import torch

        self.torch, self.device, self.exact = torch, device, True
        self.peak = self.train_peak = self.base = 0

    def allocated(self, peak: bool) -> int:
        cuda = self.torch.cuda
        cuda.synchronize(self.device)
        return (cuda.max_memory_allocated if peak else cuda.memory_allocated)(self.device)

    def start(self) -> None:
        gc.collect()
        self.base = self.allocated(peak=False)
        self.torch.cuda.reset_peak_memory_stats(self.device)

    def begin_pass(self) -> None:
        self.peak = max(self.peak, self.allocated(peak=True))
        self.torch.cuda.reset_peak_memory_stats(self.device)

    def end_pass(self) -> None:
        high = self.allocated(peak=True)
        self.peak, self.train_peak = max(self.peak, high), max(self.train_peak, high)

    def stop(self) -> None:
        self.peak = max(self.peak, self.allocated(peak=True))


def warm_up(cfg, task, device) -> int:
    """One training step of the run's strategy on a throwaway model, optimiser and batch;
    returns the model's parameter count. What the first step loads once (torch._dynamo and
    sympy with the first optimiser, about 70 MB on the CPU; torchjd and its solvers; code
    pages) is then loaded before the start, and the figures are the run's own. The run
    draws the same numbers: it seeds its model's weights afresh, its batches come from the
    epoch's generator. AdaFlood gets no step (it needs its held-out losses)."""
    import torch

    from lossbench.strategies import build_objective
    from lossbench.training import trainer
    from lossbench.training.loop import RunState
    from lossbench.training.losses import compute_losses

    model = trainer.init_model(task, cfg, device)
    objective = build_objective(cfg.strategy.name, cfg.strategy.params, cfg.strategy.b,
                                cfg.strategy.flood_target)
    engine = trainer.SingleModel(RunState(cfg, objective), model, task, device)
    if split_name(cfg.strategy.name)[1] != "adaflood":
        generator = torch.Generator().manual_seed(0)
        inputs, targets, _ = next(trainer.epoch_batches(task, cfg.train.batch_size, generator,
                                                        device))
        model.train()
        replay = trainer.replay_point(generator, device)
        losses = compute_losses(model, inputs, targets, cfg.losses, 1, generator)
        trainer.train_step(model, engine.optimizer, objective, losses,
                           cfg.strategy.shared_only)
        if objective.weighting.needs_new_losses:  # as SingleModel.train_epoch
            new = trainer.losses_again(model, inputs, targets, cfg.losses, 1, replay)
            objective.after_step(new.main, new.aux, None)
    return sum(p.numel() for p in model.parameters())


def measure(spec: dict) -> dict:
    """Train `spec["strategy"]` once through `api.run` and return its memory figures."""
    import torch

    from lossbench import api
    from lossbench.runner.execute import cached_task
    from lossbench.training import trainer

    torch.set_num_threads(1)
    settings = spec["settings"]
    (cfg,) = api.plan(strategy=spec["strategy"], config=spec["config"], **settings)
    task = cached_task(cfg)  # api.run finds it in this process's cache: not built again
    device = trainer.resolve_device(cfg.device)
    n_params = warm_up(cfg, task, device)
    meter = CudaMeter(device) if device.type == "cuda" else RssMeter()
    original = trainer.SingleModel.train_epoch

    def train_epoch(self, epoch: int):
        meter.begin_pass()
        try:
            return original(self, epoch)
        finally:
            meter.end_pass()

    trainer.SingleModel.train_epoch = train_epoch
    with tempfile.TemporaryDirectory() as out:
        meter.start()
        start = time.perf_counter()
        comparison = api.run(strategy=spec["strategy"], config=spec["config"], out=out,
                             threads=1, fuse=False, **settings)
        seconds = time.perf_counter() - start
        meter.stop()
    (run,) = comparison.runs
    if run.skipped or not run.rows:
        raise RuntimeError(f"{spec['strategy']}: the run did not train")
    return {"strategy": cfg.strategy.name, "params": n_params, "base": meter.base,
            "peak": meter.peak - meter.base,
            "train_peak": meter.train_peak - meter.base if meter.exact else None,
            "exact": meter.exact, "epochs": len(run.rows), "seconds": seconds,
            "device": device.type}


# --- in the parent: one child per strategy, the table ---------------------------------------


def strategies_to_run(names: list[str]) -> tuple[list[str], list[str]]:
    """Names and groups -> the strategies to run (plain first) and notes on those skipped
    because their extra is not installed. An unknown name is a ConfigError."""
    chosen, notes = ["plain"], []
    for name in names:
        for one in registry.GROUPS.get(name, (name,)):
            known = registry.entry(split_name(one)[0])
            if known.missing():
                notes.append(f"{one} skipped: {', '.join(known.missing())} not installed "
                             f'(pip install "lossbench[{known.extra}]")')
                continue
            one = registry.canonical(one)
            if one not in chosen:
                chosen.append(one)
    return chosen, notes


def run_child(strategy: str, config: str, settings: dict, fixed_threshold: bool) -> dict:
    """`measure` in a fresh interpreter (glibc's mmap threshold fixed with
    `fixed_threshold`); its figures, or a RuntimeError with its stderr."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if fixed_threshold:
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        spec = {"strategy": strategy, "config": config, "settings": settings,
                "result": str(result)}
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                               json.dumps(spec)], capture_output=True, text=True,
                              env=env)
        if proc.returncode != 0 or not result.exists():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"{strategy}: exit {proc.returncode}\n{tail}")
        return json.loads(result.read_text())


def over(value: float | None, reference: float | None) -> float | None:
    return None if value is None or reference is None else value - reference


def cell(value: float | None, scale: float, digits: int, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value / scale:{'+' if sign else ''}.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "experiments" / "ml-100k.toml"),
                        help="the run configuration (default: experiments/ml-100k.toml)")
    parser.add_argument("--data-dir", default="",
                        help=f"folder holding ml-100k/ (default: {SHARED_DATA} when it exists, "
                        "else $LOSSBENCH_DATA_DIR or the cache)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each run (default 1)")
    parser.add_argument("--strategy", action="append", default=None,
                        help="a strategy or group, repeatable (default: "
                        f"{', '.join(DEFAULT_STRATEGIES)}); plain is always run")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cpu: peak RSS; cuda: peak torch.cuda memory allocated")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting (repeatable), as lossbench run --set")
    parser.add_argument("--malloc-default", action="store_true",
                        help="leave glibc's dynamic mmap threshold (default: fixed at 128 KiB, "
                        "so that freed tensors leave the RSS)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        spec = json.loads(args.child)
        Path(spec["result"]).write_text(json.dumps(measure(spec)))
        return

    settings = {**parse_set(args.set), "epochs": args.epochs, "device": args.device}
    data_dir = args.data_dir or (str(SHARED_DATA) if SHARED_DATA.is_dir() else "")
    if data_dir:
        settings["data_dir"] = str(Path(data_dir).resolve())
    config = str(Path(args.config).resolve())
    chosen, notes = strategies_to_run(args.strategy or list(DEFAULT_STRATEGIES))
    what = "RSS" if args.device == "cpu" else "CUDA allocated"
    threshold = os.environ.get("MALLOC_MMAP_THRESHOLD_", MMAP_THRESHOLD)
    malloc = ("" if args.device != "cpu" else ", glibc's dynamic mmap threshold"
              if args.malloc_default else f", MALLOC_MMAP_THRESHOLD_={threshold}")
    print(f"config {args.config}, {args.epochs} epoch(s), device {args.device}, 1 torch "
          f"thread, one fresh process per strategy{malloc}; peak {what} over the start "
          "(task built, one warm-up step)", flush=True)
    for note in notes:
        print(f"note: {note}", flush=True)
    results, failed = [], []
    for strategy in chosen:
        try:
            results.append(run_child(strategy, config, settings,
                                     args.device == "cpu" and not args.malloc_default))
        except RuntimeError as error:
            failed.append(strategy)
            print(f"failed: {error}", file=sys.stderr, flush=True)
    if not results:
        sys.exit(1)
    plain = next((r for r in results if r["strategy"] == "plain"), None)
    first = results[0]
    size = 4 * first["params"]
    print(f"P = {first['params']:,} parameters x 4 bytes = {size / MIB:.2f} MiB; start "
          f"{what}: {first['base'] / MIB:.1f} MiB ({first['strategy']}); the training passes' "
          "peak is the strategies' own, the run's holds validation and test; s: the run's "
          "seconds, not a timing" + (" (a fixed mmap threshold maps every large tensor "
                                     "afresh)" if malloc.startswith(", MALLOC") else "") +
          ("" if first["exact"] else "; training passes n/a: the peak cannot be reset here"))
    print(f"| strategy | peak {what} MiB | over plain MiB | over plain / P | training passes: "
          "peak MiB | over plain MiB | over plain / P | parameters | epochs | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        grow = over(r["peak"], plain and plain["peak"])
        grow_train = over(r["train_peak"], plain and plain["train_peak"])
        print(f"| {r['strategy']} | {cell(r['peak'], MIB, 1)} | {cell(grow, MIB, 1, True)} | "
              f"{cell(grow, size, 2, True)} | {cell(r['train_peak'], MIB, 1)} | "
              f"{cell(grow_train, MIB, 1, True)} | {cell(grow_train, size, 2, True)} | "
              f"{r['params']:,} | {r['epochs']} | {r['seconds']:.1f} |", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except LossbenchError as error:  # a bad --set, config or strategy: one line, exit 2
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
