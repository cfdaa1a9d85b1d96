"""Writing a file so that a reader sees the old file or the whole new one, never half of it.

    write_atomic(path, "text")                          # results: JSON, CSV, Markdown
    write_atomic(path, lambda f: torch.save(obj, f))     # binary: a cache, a checkpoint
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, content: str | Callable[[BinaryIO], None],
                 fsync: bool = True) -> None:
    """Write `content` (text, as UTF-8; or a function that writes to a binary file) to a
    temporary file in `path`'s folder, then rename it over `path`. The rename alone protects
    against a killed process; `fsync` also against a power cut. The file gets the usual
    permissions (mkstemp's 0600 widened by the umask): results are for people to read."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(content, str):
                handle.write(content.encode("utf-8"))
            else:
                content(handle)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
