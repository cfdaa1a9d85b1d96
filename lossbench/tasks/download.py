"""MovieLens archives on disk: find them, or download, verify and extract them safely.

    folder = download_dataset("ml-1m", "")            # <data dir>/ml-1m, downloaded if missing
    ratings = ratings_file("ml-100k", cfg.task.file.data_dir)   # <data dir>/ml-100k/u.data

The data folder is, in this order: the `data_dir` argument (`--data-dir`, the `data_dir`
setting) if not empty, else `$LOSSBENCH_DATA_DIR`, else `~/.cache/lossbench`. Inside it a
data set is used as soon as one of these is there, and only then downloaded:

1. the extracted folder `<data dir>/<name>/` with its ratings file (`ml-100k/u.data`,
   `ml-1m/ratings.dat`), used as it is;
2. the archive `<data dir>/<name>.zip`, whose SHA-256 must match the published one (below);
   it is then extracted next to itself;
3. the GroupLens archive at `URL_BASE/<name>.zip` (or `$LOSSBENCH_MOVIELENS_URL_BASE/<name>.zip`,
   e.g. a local mirror, or the `url` argument): streamed to a temporary file, its SHA-256
   checked BEFORE anything is extracted, extracted into a temporary folder, then renamed into
   place (`<name>/` and `<name>.zip`). On any failure nothing is kept.

Extraction refuses the whole archive if one member has an absolute path, a `..` component or
is a symbolic link, or if it would unpack to more than `MAX_UNPACKED_BYTES`.

Every problem the user can fix (unknown name, no network and no data, checksum mismatch,
unsafe archive, a data dir that is a file or cannot be read) raises `DataError` with one line
naming the file or URL, and, when the data is missing, where to put it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lossbench.errors import DataError

ENV_DATA_DIR = "LOSSBENCH_DATA_DIR"
"""Environment variable: the data folder when `data_dir` is empty."""
ENV_URL_BASE = "LOSSBENCH_MOVIELENS_URL_BASE"
"""Environment variable: a mirror that serves `<name>.zip` in place of GroupLens."""
URL_BASE = "https://files.grouplens.org/datasets/movielens"
DEFAULT_DATA_DIR = Path("~/.cache/lossbench")
MAX_UNPACKED_BYTES = 1 << 30
CHUNK_BYTES = 1 << 16
TIMEOUT_SECONDS = 30.0

Progress = Callable[[int, int | None], None]
"""`progress(done_bytes, total_bytes)`; total is None when the server does not say."""


@dataclass(frozen=True)
class DatasetSpec:
    """One MovieLens release: its archive, ratings file and field separator."""

    name: str
    ratings: str
    separator: str
    fields: str
    sha256: str

    @property
    def archive(self) -> str:
        return f"{self.name}.zip"


DATASETS: dict[str, DatasetSpec] = {
    "ml-100k": DatasetSpec(
        "ml-100k", "u.data", "\t", "user item rating timestamp",
        "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"),
    "ml-1m": DatasetSpec(
        "ml-1m", "ratings.dat", "::", "UserID::MovieID::Rating::Timestamp",
        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"),
}
"""Published SHA-256 of the GroupLens archives (see ../shared/data/README.md)."""


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of data set `name`; DataError for an unknown name."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """`data_dir` if given, else $LOSSBENCH_DATA_DIR, else ~/.cache/lossbench (user-expanded).
    DataError if that path exists and is not a folder."""
    chosen = str(data_dir or "") or os.environ.get(ENV_DATA_DIR, "") or str(DEFAULT_DATA_DIR)
    root = Path(chosen).expanduser()
    try:
        if root.exists() and not root.is_dir():
            raise DataError(f"data dir {root} is not a folder")
    except OSError as exc:
        raise DataError(f"cannot read data dir {root}: {exc.strerror}") from None
    return root


def dataset_url(name: str, url: str | None = None) -> str:
    """`url` if given, else `$LOSSBENCH_MOVIELENS_URL_BASE/<name>.zip`, else GroupLens's."""
    if url:
        return url
    base = os.environ.get(ENV_URL_BASE, "") or URL_BASE
    return f"{base.rstrip('/')}/{dataset_spec(name).archive}"


def ratings_file(name: str, data_dir: str | Path | None = None, *, download: bool = True,
                 url: str | None = None, sha256: str | None = None,
                 progress: Progress | None = None) -> Path:
    """Path of the ratings file of `name` (u.data or ratings.dat), fetched if needed
    (see `download_dataset`)."""
    folder = download_dataset(name, data_dir, url=url, progress=progress, sha256=sha256,
                              download=download)
    return folder / dataset_spec(name).ratings


def download_dataset(name: str, data_dir: str | Path | None = None, url: str | None = None,
                     progress: Progress | None = None, sha256: str | None = None, *,
                     download: bool = True) -> Path:
    """Make `<data dir>/<name>/` available and return it: use the extracted folder, else the
    zip beside it, else (with `download`) fetch `dataset_url(name, url)`. The archive must
    have `sha256` (default: the published checksum). See the module docstring."""
    spec = dataset_spec(name)
    root = resolve_data_dir(data_dir)
    folder, archive = root / spec.name, root / spec.archive
    expected = (sha256 or spec.sha256).lower()
    try:
        if (folder / spec.ratings).is_file():
            return folder
        if folder.exists():
            raise DataError(f"{folder} exists but has no {spec.ratings}; remove the folder or "
                            f"put {spec.ratings} into it")
        if archive.is_file():
            digest = file_sha256(archive)
            if digest != expected:
                raise DataError(f"{archive} has SHA-256 {digest}, expected {expected}: the file "
                                f"is corrupt or not the GroupLens {spec.archive}; replace it")
            extract_dataset(archive, root, spec)
            return folder
    except OSError as exc:
        raise DataError(f"cannot read {exc.filename or root}: {exc.strerror}") from None
    source = dataset_url(name, url)
    if not download:
        raise DataError(f"{spec.name} not found in {root}; download {source} and put "
                        f"{spec.archive} (or the extracted {spec.name}/ folder) there")
    fetch_archive(source, root, spec, expected, progress)
    return folder


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_archive(url: str, root: Path, spec: DatasetSpec, expected: str,
                  progress: Progress | None) -> None:
    """Download `url` to a temporary file in `root`, check its SHA-256, extract it, then keep
    it as `<root>/<name>.zip`. Nothing is left behind on failure."""
    where = (f"put {spec.archive} (or the extracted {spec.name}/ folder) into {root}")
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=root, prefix=f".{spec.archive}.", suffix=".part")
    except OSError as exc:
        raise DataError(f"cannot write to data dir {root}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(
                    url, timeout=TIMEOUT_SECONDS) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                if progress is not None:
                    progress(done, total)
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            raise DataError(f"cannot download {url} ({reason}); {where}") from None
        if digest.hexdigest() != expected:
            raise DataError(f"download of {url} has SHA-256 {digest.hexdigest()}, expected "
                            f"{expected}; nothing was kept. Retry, or {where}")
        try:
            extract_dataset(tmp, root, spec)
            os.replace(tmp, root / spec.archive)
        except OSError as exc:
            raise DataError(f"cannot extract {url} into {root}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def safe_members(archive: zipfile.ZipFile, path: Path) -> list[tuple[zipfile.ZipInfo, Path]]:
    """Each file member with its relative path; DataError for an absolute path, a `..`
    component, a symbolic link or an archive that unpacks to more than MAX_UNPACKED_BYTES."""
    members, unpacked = [], 0
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        unsafe = (name.startswith("/") or ".." in parts or (parts and ":" in parts[0])
                  or stat.S_ISLNK(info.external_attr >> 16))
        if unsafe:
            raise DataError(f"archive {path} has an unsafe member '{info.filename}' (absolute "
                            "path, '..' or symbolic link); refusing to extract it")
        unpacked += info.file_size
        if unpacked > MAX_UNPACKED_BYTES:
            raise DataError(f"archive {path} unpacks to more than {MAX_UNPACKED_BYTES} bytes; "
                            "refusing to extract it")
        if not info.is_dir():
            members.append((info, Path(*parts)))
    return members


def extract_dataset(path: Path, root: Path, spec: DatasetSpec) -> None:
    """Extract the zip `path` into a temporary folder in `root`, check that it holds
    `<name>/<ratings>`, then rename `<name>/` into `root` (atomic on one file system)."""
    try:
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{spec.name}.extract-"))
    except OSError as exc:
        raise DataError(f"cannot extract {path}: cannot write to {root} ({exc.strerror})"
                        ) from None
    try:
        try:
            with zipfile.ZipFile(path) as archive:
                for info, rel in safe_members(archive, path):
                    target = tmp / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK_BYTES)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise DataError(f"{path} is not a readable zip archive ({exc})") from None
        if not (tmp / spec.name / spec.ratings).is_file():
            raise DataError(f"archive {path} has no {spec.name}/{spec.ratings}")
        try:
            os.replace(tmp / spec.name, root / spec.name)
        except OSError:
            if not (root / spec.name / spec.ratings).is_file():  # not a concurrent extraction
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
