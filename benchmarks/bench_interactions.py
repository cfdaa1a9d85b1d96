"""How fast and how big is an interactions file of 10 M rows, first built and then cached?

    python benchmarks/bench_interactions.py                         # 10 M rows in a temp folder
    python benchmarks/bench_interactions.py --path /tmp/big.csv     # write it once, keep it
    python benchmarks/bench_interactions.py --rows 1000000 --ids str --libraries pyarrow

1. Writes (unless `--path` exists) a CSV `user_id,item_id,rating,timestamp` of `--rows`
   interactions in random order: users uniform over rows / 10 ids (about 10 each), items
   Zipf-like over `--items` ids, integer timestamps uniform over 1998-2023; `--ids str`
   writes ids as `u123` / `i42`.
2. Parsers: for each of `--libraries` (pyarrow, polars, pandas: those installed), reads the
   file and numbers user and item ids densely in order of first appearance (the id rule of
   lossbench.tasks.interactions); pyarrow is the one lossbench uses.
3. First build: `build_task` of `task = "interactions"` with an empty data dir (read,
   filters, sort, leave-one-out, histories, training windows, cache written).
4. Cached load: the same `build_task` again (file hashed, cache memory-mapped), then the
   time to touch every page of the tensors (what the first epoch pays).

Each measurement runs in a fresh Python process; peak memory is that process's
`resource.getrusage(RUSAGE_SELF).ru_maxrss` (peak resident set, including the interpreter,
numpy, pyarrow and torch once imported: `baseline` is that figure before the measured step).
Goals on the 2-core machine: first build <= 20 s and <= 2 GiB, cached load <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_file(path: Path, rows: int, items: int, ids: str, seed: int = 0) -> None:
    """The synthetic interactions file of the module docstring, written with pyarrow."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    rng = np.random.default_rng(seed)
    columns = {"user_id": rng.integers(1, rows // 10 + 1, rows),
               "item_id": (rng.zipf(1.2, rows) - 1) % items + 1,
               "rating": rng.integers(1, 6, rows),
               "timestamp": rng.integers(883_612_800, 1_704_067_200, rows)}
    if ids == "str":
        for name, prefix in (("user_id", "u"), ("item_id", "i")):
            text = pa.array(columns[name]).cast(pa.string())
            columns[name] = pc.binary_join_element_wise(prefix, text, "")
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(b"user_id,item_id,rating,timestamp\n")
        pa_csv.write_csv(pa.table(columns), f, pa_csv.WriteOptions(include_header=False))
    tmp.replace(path)


def parse(library: str, path: Path) -> dict:
    """Read the file with `library`; first-appearance codes of both id columns (the
    library is imported before the clock starts)."""
    import numpy as np

    if library == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pa_csv

        pa.array([0]).to_numpy()  # pyarrow imports pandas here if installed: not parsing
        start = time.perf_counter()
        table = pa_csv.read_csv(path)
        read = time.perf_counter()
        n = []
        for name in ("user_id", "item_id"):
            encoded = pc.dictionary_encode(table.column(name))
            codes = np.concatenate([c.indices.to_numpy() for c in encoded.chunks])
            n.append(int(codes.max()) + 1)
    elif library == "polars":
        import polars as pl

        start = time.perf_counter()
        frame = pl.read_csv(path)
        read = time.perf_counter()
        first = [(pl.col(c).is_first_distinct().cum_sum() - 1).alias(c + "_code")
                 for c in ("user_id", "item_id")]
        frame = frame.with_columns(first).with_columns(
            [pl.col(c + "_code").first().over(c).alias(c) for c in ("user_id", "item_id")])
        n = [int(frame[c].max()) + 1 for c in ("user_id", "item_id")]
    else:
        import pandas as pd

        start = time.perf_counter()
        frame = pd.read_csv(path, engine="pyarrow")
        read = time.perf_counter()
        n = [int(pd.factorize(frame[c], sort=False)[0].max()) + 1
             for c in ("user_id", "item_id")]
    end = time.perf_counter()
    return {"read_s": read - start, "codes_s": end - read, "total_s": end - start,
            "users": n[0], "items": n[1]}


def build(path: Path, data_dir: Path) -> dict:
    """build_task on the file; for a cached build also the time to touch every tensor page."""
    from lossbench.config import load_config
    from lossbench.tasks import build_task

    cfg = load_config(overrides={"task": "interactions", "data": str(path),
                                 "data_dir": str(data_dir)})
    baseline = peak_mib()
    start = time.perf_counter()
    task = build_task(cfg.task, cfg.seed)
    seconds = time.perf_counter() - start
    peak = peak_mib()
    start = time.perf_counter()
    total = sum(int(t.sum()) for t in (task.train.inputs, task.train.targets,
                                       task.val.inputs, task.val.targets, task.test.targets))
    touch = time.perf_counter() - start
    info = {k: task.info[k] for k in ("n_users", "n_items", "n_interactions",
                                      "n_train_targets", "n_train_windows", "n_val")}
    return {"seconds": seconds, "peak_mib": peak, "baseline_mib": baseline,
            "touch_s": touch, "checksum": total, **info}


def child(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    if args.child == "parse":
        result = parse(args.library, Path(args.path))
        result["peak_mib"] = peak_mib()
    else:
        result = build(Path(args.path), Path(args.data_dir))
    print(json.dumps(result))


def measure(*arguments: str) -> dict:
    """Run one child measurement in a fresh interpreter and return its JSON line."""
    done = subprocess.run([sys.executable, __file__, *arguments], check=True, cwd=ROOT,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def installed(library: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(library) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", default="", help="the CSV (written if missing; default: temp)")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--ids", choices=("int", "str"), default="int")
    parser.add_argument("--libraries", default="pyarrow,polars,pandas",
                        help="parsers to compare (skipped when not installed)")
    parser.add_argument("--child", choices=("parse", "build"), help=argparse.SUPPRESS)
    parser.add_argument("--library", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.path or Path(tmp) / "interactions.csv")
        if not path.is_file():
            start = time.perf_counter()
            write_file(path, args.rows, args.items, args.ids)
            print(f"wrote {path}: {args.rows:,} rows, {path.stat().st_size / 2**20:.0f} MiB "
                  f"in {time.perf_counter() - start:.1f} s", flush=True)
        print(f"file {path} ({path.stat().st_size / 2**20:.0f} MiB)")
        for library in args.libraries.split(","):
            if not installed(library):
                print(f"parse {library:8s}: not installed, skipped")
                continue
            r = measure("--child", "parse", "--library", library, "--path", str(path))
            print(f"parse {library:8s}: read {r['read_s']:5.2f} s + first-appearance codes "
                  f"{r['codes_s']:5.2f} s = {r['total_s']:5.2f} s, peak "
                  f"{r['peak_mib'] / 1024:.2f} GiB ({r['users']:,} users, {r['items']:,} "
                  "items)", flush=True)
        data_dir = Path(tmp) / "data"
        for label in ("first build", "cached load"):
            r = measure("--child", "build", "--path", str(path), "--data-dir", str(data_dir))
            print(f"{label:11s}: {r['seconds']:5.2f} s, peak {r['peak_mib'] / 1024:.2f} GiB "
                  f"(baseline {r['baseline_mib'] / 1024:.2f} GiB); touching every tensor "
                  f"page then {r['touch_s']:.2f} s", flush=True)
        print(f"task: {r['n_users']:,} users, {r['n_items']:,} items, "
              f"{r['n_interactions']:,} interactions, {r['n_train_targets']:,} training "
              f"targets in {r['n_train_windows']:,} windows, {r['n_val']:,} validation users")
        cache = sum(p.stat().st_size for p in (data_dir / "cache").iterdir())
        print(f"cache: {cache / 2**20:.0f} MiB in {data_dir / 'cache'}")


if __name__ == "__main__":
    main()
