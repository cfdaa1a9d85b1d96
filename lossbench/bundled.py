"""The experiment files that ship with lossbench, and how `--config` finds one.

    resolve_config("ml-100k")                      # the bundled ml-100k.toml
    resolve_config("experiments/ml-100k.toml")     # an existing file: used as given
    bundled_experiments()                          # {"interactions-example": Path, ...}

There is one copy of the files: the repository's top-level `experiments/` folder.
pyproject.toml ships that folder as the package `lossbench.experiments` (package-dir), so a
wheel carries the files and an editable install reads them in place. A source tree that was
never installed (the package unknown to the import system) uses the folder beside
`lossbench/`. Standard library only: the CLI lists experiments without importing torch.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from lossbench.errors import ConfigError


def bundled_dir() -> Path | None:
    """The folder of the bundled experiment files; None when lossbench ships none."""
    try:
        folder = Path(str(importlib.resources.files("lossbench.experiments")))
    except ModuleNotFoundError:
        folder = Path(__file__).resolve().parents[1] / "experiments"
    return folder if folder.is_dir() else None


def bundled_experiments() -> dict[str, Path]:
    """Name (the file's stem) -> path of every bundled `*.toml`, sorted by name."""
    folder = bundled_dir()
    paths = sorted(folder.glob("*.toml"), key=lambda p: p.stem) if folder else []
    return {path.stem: path for path in paths if path.is_file()}


def description(path: Path) -> str:
    """The first sentence of the comment block that opens the file at `path` (its lines
    joined, `#` removed; a sentence ends at `. ` or at the block's end), or "" when the file
    does not open with a comment."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text.startswith("#") or not text.lstrip("#").strip():
            break
        words.append(text.lstrip("#").strip())
    block = " ".join(words)
    end = block.find(". ")
    return block if end < 0 else block[:end + 1]


def choices() -> str:
    """`a, b, c`: the bundled names, for error messages ("none" when none ship)."""
    return ", ".join(bundled_experiments()) or "none"


def is_bare_name(value: str) -> bool:
    """True for a name without a path separator (`ml-100k`, `ml-100k.toml`)."""
    separators = [os.sep, "/", *([os.altsep] if os.altsep else [])]
    return bool(value) and not any(s in value for s in separators)


def resolve_config(value: str | Path) -> Path:
    """The config file that `--config value` names. The rule, in this order:

    1. `value` is an existing file (relative to the working directory or absolute): used as
       given, so a file of yours wins over a bundled one of the same name;
    2. `value` is a bare name (no path separator; `.toml` optional): the bundled experiment
       of that name (`ml-100k` or `ml-100k.toml` -> the bundled ml-100k.toml), also when a
       folder of that name (say, extracted MovieLens data) is in the working directory;
    3. otherwise a ConfigError, one line that names the bundled experiments."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    text = str(value)
    name = text.removesuffix(".toml")
    found = bundled_experiments().get(name) if is_bare_name(name) else None
    if found is not None:
        return found
    if path.is_dir():
        problem = f"config {text} is a folder, not a file"
    elif is_bare_name(name):
        problem = f"no config file or bundled experiment named '{text}'"
    else:
        problem = f"config file not found: {text}"
    raise ConfigError(f"{problem}; bundled experiments (--config NAME): {choices()}")


def describe_bundled() -> list[dict[str, str]]:
    """`lossbench experiments`: one dict per bundled file, by name: name, description (the
    first sentence of its opening comment) and path."""
    return [{"name": name, "description": description(path), "path": str(path)}
            for name, path in bundled_experiments().items()]
