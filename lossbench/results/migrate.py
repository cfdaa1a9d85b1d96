"""`lossbench migrate RESULTS_DIR`: rename results folders written before folder names hashed
only the settings that differ from their defaults (lossbench 0.2, issue 27), so that the
same command finds them again: complete runs are skipped, unfinished ones resumed.

    renames = migrate("results")              # [(old path, new path), ...], done
    renames = migrate("results", dry_run=True) # what it would do

A run folder (one holding config.json) gets `results.folders.run_dir_name` of its own
config.json. A folder holding run folders whose name ends in an 8-hex-digit hash (an
experiment or sweep folder lossbench named) gets that hash recomputed from its runs' shared
settings and data fingerprint (`experiment_folder_name`); a folder named with `--name`
keeps its name. sweep.json's map of runs follows. Nothing else changes: the files inside
are not rewritten (`lossbench report` writes report.json anew).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lossbench.config import STRATEGY_KEYS
from lossbench.errors import DataError
from lossbench.results.folders import (
    experiment_folder_name,
    read_json,
    run_dir_name,
    write_json,
)

HASHED = re.compile(r"^(?P<stem>.+)-(?P<hash>[0-9a-f]{8})$")
"""An experiment or sweep folder's name: `<label>-<hash>` (a sweep's label starts `sweep-`)."""


def run_folders(folder: Path) -> list[Path]:
    """The run folders directly in `folder` (those holding a config.json)."""
    return sorted(p for p in folder.iterdir() if (p / "config.json").is_file())


def new_run_name(run_dir: Path) -> str:
    """The name lossbench gives this run folder now."""
    return run_dir_name(read_json(run_dir / "config.json"))


def new_experiment_name(folder: Path, runs: list[Path]) -> str | None:
    """The name lossbench gives this experiment or sweep folder now; None for a name it did
    not make (no trailing hash)."""
    match = HASHED.match(folder.name)
    if match is None or not runs:
        return None
    config = read_json(runs[0] / "config.json")
    shared = {k: v for k, v in config.items() if k not in STRATEGY_KEYS}
    new_hash = experiment_folder_name(shared, config.get("data_fingerprint") or {})
    return f"{match['stem']}-{new_hash.rsplit('-', 1)[1]}"


def migrate(results_dir: str | Path, dry_run: bool = False) -> list[tuple[Path, Path]]:
    """Rename every run, experiment and sweep folder under `results_dir` (itself one of
    them, or a folder holding them) to today's name; return the renames (done, or planned
    with `dry_run`). All are planned first: when a new name is taken, or two folders would
    get the same one, nothing is renamed (a DataError names it)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise DataError(f"no such results folder: {root}")
    folders = [p for p in [root, *root.rglob("*")] if p.is_dir() and run_folders(p)]
    renames: list[tuple[Path, Path]] = []
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        runs = run_folders(folder)
        renames += [(run, run.with_name(new_run_name(run))) for run in runs]
        name = new_experiment_name(folder, runs)
        if name is not None:
            renames.append((folder, folder.with_name(name)))
    renames = [(old, new) for old, new in renames if old != new]
    targets = [new for _, new in renames]
    for old, new in renames:
        if (new.exists() and new not in [o for o, _ in renames]) or targets.count(new) > 1:
            raise DataError(f"cannot rename {old} to {new.name}: that name is taken; move "
                            "one of them away and run lossbench migrate again")
    if not dry_run:
        for old, new in renames:  # runs first, then the folders holding them
            old.rename(new)
            sweep = new.parent / "sweep.json"
            if sweep.is_file() and (new / "config.json").is_file():
                update_sweep_json(sweep, {old.name: new.name})
    return renames


def update_sweep_json(path: Path, renamed: dict[str, str]) -> None:
    """sweep.json's `runs` (value/seed -> run folder name) after its runs were renamed."""
    try:
        sweep = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    sweep["runs"] = {key: renamed.get(name, name) for key, name in sweep.get("runs", {}).items()}
    write_json(path, sweep)
