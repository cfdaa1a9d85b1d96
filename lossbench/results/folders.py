"""Results on disk: the run-folder contract. Accepts plain dicts; knows nothing of torch.

    <out>/<experiment>/<task>__<strategy>__b<b>__s<seed>__<hash>/
        config.json    every setting, the derived seeds, versions, device; written first
        metrics.csv    one row per epoch, columns COLUMNS; rewritten atomically every epoch
        summary.json   best epoch, test metrics there, final values, status; written last
        checkpoint.pkl state after the last finished epoch, while the run is unfinished

Every file is written to a temporary file in the same folder and renamed over the target,
so a crash never leaves a half-written file. A run folder without `summary.json`, or whose
summary says `running`, is incomplete.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

from lossbench.config import identity, setting_params, strategy_params
from lossbench.errors import DataError
from lossbench.files import write_atomic  # noqa: F401 - re-exported: results write through it

COLUMN_MEANINGS = {
    "epoch": "the epoch, 1-based",
    "train_loss": "epoch mean of the weighted total before batch flooding",
    "train_objective": "epoch mean of what was minimised (the flooded total when flooding)",
    "train_main_loss": "epoch mean of L_main, the next-item cross-entropy",
    "train_aux_loss": "epoch mean of L_aux, the auxiliary (contrastive) loss",
    "theta": "θ of the reweighting at the end of the epoch (1 for every other strategy)",
    "flood_frac": "fraction of the epoch's steps whose total was below b (example flooding: "
                  "of L_main's examples); 0 without flooding",
    "val_loss": "L_main's cross-entropy on the validation split",
    "val_acc": "validation accuracy (the target ranked first)",
    "val_hr10": "validation hit rate at 10",
    "val_ndcg10": "validation NDCG at 10",
    "val_mrr10": "validation mean reciprocal rank at 10",
    "aux_tau": "the temperature of L_aux's curriculum in this epoch (0 without L_aux)",
    "seconds": "the epoch's wall time (a fused group's time per run)",
}
"""metrics.csv's first columns, in every run, and what each holds. A strategy's own state
(its `logs`: weights, log-variances, cosines) follows in extra columns, in the order the
strategy declares them."""
COLUMNS = tuple(COLUMN_MEANINGS)
"""metrics.csv's first columns, in order."""
RUN_FOLDER_FILES = {
    "config.json": "every setting (flat keys), the derived seeds, the task's facts, the data's "
                   "fingerprint, versions and the device used; written first",
    "metrics.csv": "one row per epoch (columns below); rewritten atomically every epoch",
    "summary.json": "status (complete, diverged, interrupted), best epoch, the validation "
                    "metrics there and the test metrics at it, flooding's account, the last "
                    "epoch's figures, wall time; written last",
    "checkpoint.pkl": "the state after the last finished epoch, while the run is unfinished "
                      "(removed when it ends)",
    ".lock": "held by the process that works on the run",
}
"""The files of a run folder and what each holds."""


def config_hash(settings: dict[str, Any], length: int = 8) -> str:
    """A short, stable hash of a JSON-able dict (key order does not matter)."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def run_dir_name(settings: dict[str, Any]) -> str:
    """`<task>__<strategy>__b<b>__s<seed>__<hash>` for a run's flat settings (`config.flat`,
    or a config.json), the hash over its identity (`config.identity`: the settings that
    differ from their defaults), so a new setting with a neutral default renames nothing. A
    plugin's `module:Class` becomes `module.Class` (only letters, digits, `.`, `_`, `-`)."""
    settings = with_params_nested(settings)
    return (f"{settings['task']}__{safe_name(settings['strategy'])}__b{float(settings['b']):g}"
            f"__s{settings['seed']}__{config_hash(identity(settings), 6)}")


def safe_name(strategy: str) -> str:
    """A strategy name as a folder name takes it: a plugin's `module:Class` (or
    `path/file.py:Class`) becomes `module.Class`, only letters, digits, `.`, `_`, `-`."""
    return re.sub(r"[^A-Za-z0-9._-]", ".", strategy)


def experiment_folder_name(shared: dict[str, Any], fingerprint: dict) -> str:
    """`<task, dataset or file stem>-<hash>` of an experiment folder: the hash over the
    identity of the settings its runs share (`shared`: flat settings without the strategy
    keys) and over the data's `fingerprint` (when there is one)."""
    label = {"movielens": shared.get("dataset", "ml-100k"),
             "interactions": Path(shared.get("data", "")).stem or "interactions"
             }.get(shared.get("task", "synthetic"), shared.get("task", "synthetic"))
    key = identity(shared)
    if fingerprint:
        key["data_fingerprint"] = fingerprint
    return f"{label}-{config_hash(key)}"


def write_json(path: Path, obj: Any) -> None:
    """Atomically write `obj` as indented JSON."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> dict:
    """Read a JSON object; a missing, truncated or malformed file is a DataError naming it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"missing file: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} does not hold a JSON object")
    return data


def columns_of(row: dict) -> tuple[str, ...]:
    """COLUMNS, then the row's other keys (a strategy's logged state) in their order."""
    return (*COLUMNS, *(k for k in row if k not in COLUMNS))


def csv_line(row: dict, columns: tuple[str, ...] = COLUMNS) -> str:
    """One metrics.csv line for a row (floats at full precision)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore",
                            lineterminator="\n")
    writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as floats (epoch as int); a DataError names a bad file."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = set(COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise DataError(f"{path} lacks columns: {', '.join(sorted(missing))}")
            rows = [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
                    for row in reader]
    except FileNotFoundError:
        raise DataError(f"missing file: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError, TypeError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return rows


def summary_head(settings: dict[str, Any]) -> dict[str, Any]:
    """What every summary.json starts with: the run's strategy, flood level and seed (from
    its flat settings, `config.flat`)."""
    return {"strategy": settings["strategy"], "b": settings["b"], "seed": settings["seed"]}


def interrupted_summary(settings: dict[str, Any], epochs_run: int) -> dict[str, Any]:
    """summary.json of a run stopped by Ctrl-C or SIGTERM (locally, fused or on Ray) after
    `epochs_run` epochs: the same command resumes it from its checkpoint."""
    return {**summary_head(settings), "status": "interrupted", "epochs_run": epochs_run}


class RunRecorder:
    """Writes one run folder: `start(config)`, `epoch(rows)` each epoch, `finish(summary)`."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        self.lines: list[str] = []

    def start(self, config: dict, resume: bool = False) -> None:
        """config.json first; a fresh start also empties metrics.csv. Any old summary.json
        (an interrupted run's) goes, so the folder reads as incomplete until `finish`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "summary.json").unlink(missing_ok=True)
        write_json(self.dir / "config.json", config)
        if not resume:
            self.epoch([])

    def epoch(self, rows: list[dict]) -> None:
        """Rewrite metrics.csv with `rows`. Rows already written are never changed, so their
        lines are rendered once and kept."""
        columns = columns_of(rows[0]) if rows else COLUMNS
        if len(rows) < len(self.lines):
            self.lines = []
        self.lines += [csv_line(row, columns) for row in rows[len(self.lines):]]
        header = ",".join(columns) + "\n"
        write_atomic(self.dir / "metrics.csv", header + "".join(self.lines), fsync=False)

    def finish(self, summary: dict) -> None:
        write_json(self.dir / "summary.json", summary)


def is_complete(run_dir: Path, config: dict) -> bool:
    """True when `run_dir` holds a finished run (status complete or diverged) of exactly
    `config`, with all three files readable."""
    run_dir = Path(run_dir)
    try:
        stored = read_json(run_dir / "config.json")
        summary = read_json(run_dir / "summary.json")
        read_metrics(run_dir / "metrics.csv")
    except DataError:
        return False
    same = identity(with_params_nested(stored)) == identity(with_params_nested(config))
    return same and summary.get("status") in ("complete", "diverged")


def with_params_nested(config: dict) -> dict:
    """A config.json dict as `config.flat` gives settings: strategy parameters under
    `params`. lossbench 0.1 wrote the reweighting's parameters (alpha, lam, ...) at the top
    level; they move into `params` here."""
    loose = {k: config[k] for k in strategy_params() if k in config}
    if not loose:
        return config
    rest = {k: v for k, v in config.items() if k not in loose}
    return {**rest, "params": {**loose, **(config.get("params") or {})}}


def settings_of(config: dict) -> dict:
    """The settings of a config.json dict (without seeds, versions, device name): every
    config setting it holds, with the strategy parameters (`params`) flattened in by name."""
    config = with_params_nested(config)
    out = {k: config[k] for k in setting_params() if k in config}
    out.update(config.get("params") or {})
    return out
