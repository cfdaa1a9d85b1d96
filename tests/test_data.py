"""lossbench.data: where the data folder is, and download -> verify -> extract, offline.

Every download is served by http.server on 127.0.0.1 from a zip the test builds."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import socket
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from lossbench.errors import DataError
from lossbench.tasks import download as data
from lossbench.tasks.download import dataset_url, download_dataset, ratings_file, resolve_data_dir

U_DATA = b"1\t10\t5\t100\n1\t11\t3\t101\n1\t12\t4\t102\n2\t10\t1\t100\n"


def make_zip(members: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    """A zip archive in memory; `symlinks` are added as symbolic-link members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(zipfile.ZipInfo(name), content)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


GOOD_ZIP = make_zip({"ml-100k/u.data": U_DATA, "ml-100k/README": b"readme\n"})


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serve(tmp_path):
    """serve({"ml-100k.zip": bytes}) -> base URL of a local server with those files."""
    root = tmp_path / "www"
    root.mkdir()
    servers = []

    def start(files: dict[str, bytes]) -> str:
        for name, content in files.items():
            (root / name).write_bytes(content)
        handler = functools.partial(QuietHandler, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (no network is ever used)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ml-100k.zip"


def test_data_dir_argument_then_env_then_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LOSSBENCH_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir("") == tmp_path / "env"
    monkeypatch.delenv("LOSSBENCH_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "lossbench"


def test_data_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        download_dataset("ml-100k", tmp_path / "file")


def test_unknown_dataset_names_the_choices(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'ml-20m'; choose one of: ml-100k, ml-1m"):
        download_dataset("ml-20m", tmp_path)


def test_urls_default_env_and_override(monkeypatch):
    monkeypatch.delenv("LOSSBENCH_MOVIELENS_URL_BASE", raising=False)
    assert dataset_url("ml-1m") == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    monkeypatch.setenv("LOSSBENCH_MOVIELENS_URL_BASE", "http://mirror/movielens/")
    assert dataset_url("ml-100k") == "http://mirror/movielens/ml-100k.zip"
    assert dataset_url("ml-100k", "http://x/y.zip") == "http://x/y.zip"


def test_download_verifies_extracts_and_keeps_the_zip(tmp_path, serve):
    base = serve({"ml-100k.zip": GOOD_ZIP})
    calls = []
    folder = download_dataset("ml-100k", tmp_path / "data", url=f"{base}/ml-100k.zip",
                              progress=lambda done, total: calls.append((done, total)),
                              sha256=sha256(GOOD_ZIP))
    assert folder == tmp_path / "data" / "ml-100k"
    assert (folder / "u.data").read_bytes() == U_DATA
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["ml-100k", "ml-100k.zip"]
    assert (tmp_path / "data" / "ml-100k.zip").read_bytes() == GOOD_ZIP
    assert calls[0] == (0, len(GOOD_ZIP)) and calls[-1] == (len(GOOD_ZIP), len(GOOD_ZIP))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_download_from_the_env_mirror(tmp_path, serve, monkeypatch):
    monkeypatch.setenv("LOSSBENCH_MOVIELENS_URL_BASE", serve({"ml-100k.zip": GOOD_ZIP}))
    path = ratings_file("ml-100k", tmp_path, sha256=sha256(GOOD_ZIP))
    assert path.read_bytes() == U_DATA


def test_checksum_mismatch_keeps_nothing(tmp_path, serve):
    base = serve({"ml-100k.zip": GOOD_ZIP})  # not the published archive
    with pytest.raises(DataError, match=r"SHA-256 .* expected 50d2a982.*nothing was kept"):
        download_dataset("ml-100k", tmp_path / "data", url=f"{base}/ml-100k.zip")
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("members, symlinks", [
    ({"ml-100k/u.data": U_DATA, "ml-100k/../../evil.txt": b"x"}, ()),
    ({"ml-100k/u.data": U_DATA, "/tmp/lossbench-evil.txt": b"x"}, ()),
    ({"ml-100k/u.data": U_DATA}, ("ml-100k/link",)),
], ids=["dotdot", "absolute", "symlink"])
def test_unsafe_archive_is_refused_and_nothing_kept(tmp_path, serve, members, symlinks):
    evil = make_zip(members, symlinks)
    base = serve({"ml-100k.zip": evil})
    with pytest.raises(DataError, match="unsafe member"):
        download_dataset("ml-100k", tmp_path / "data", url=f"{base}/ml-100k.zip",
                         sha256=sha256(evil))
    assert list((tmp_path / "data").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_archive_without_ratings_file_is_refused(tmp_path, serve):
    empty = make_zip({"ml-100k/README": b"x"})
    base = serve({"ml-100k.zip": empty})
    with pytest.raises(DataError, match="has no ml-100k/u.data"):
        download_dataset("ml-100k", tmp_path, url=f"{base}/ml-100k.zip", sha256=sha256(empty))
    assert list(tmp_path.iterdir()) == [tmp_path / "www"]


def test_not_a_zip_is_refused(tmp_path, serve):
    base = serve({"ml-100k.zip": b"<html>not found</html>"})
    with pytest.raises(DataError, match="not a readable zip"):
        download_dataset("ml-100k", tmp_path / "data", url=f"{base}/ml-100k.zip",
                         sha256=sha256(b"<html>not found</html>"))
    assert list((tmp_path / "data").iterdir()) == []


def test_offline_names_the_url_and_the_folder(tmp_path, closed_url):
    with pytest.raises(DataError) as caught:
        download_dataset("ml-100k", tmp_path / "data", url=closed_url)
    message = str(caught.value)
    assert closed_url in message and str(tmp_path / "data") in message
    assert "ml-100k.zip" in message and "\n" not in message
    assert list((tmp_path / "data").iterdir()) == []


def test_http_404_is_a_data_error(tmp_path, serve):
    base = serve({})
    with pytest.raises(DataError, match="cannot download .*ml-100k.zip"):
        download_dataset("ml-100k", tmp_path / "data", url=f"{base}/ml-100k.zip")


def test_no_download_says_where_to_put_the_file(tmp_path):
    with pytest.raises(DataError, match=r"ml-1m not found in .*files.grouplens.org.*ml-1m.zip"):
        download_dataset("ml-1m", tmp_path, download=False)


def test_extracted_folder_is_used_without_network(tmp_path, closed_url):
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_bytes(U_DATA)
    assert ratings_file("ml-100k", tmp_path, url=closed_url) == tmp_path / "ml-100k" / "u.data"


def test_folder_without_ratings_file_is_reported(tmp_path, closed_url):
    (tmp_path / "ml-100k").mkdir()
    with pytest.raises(DataError, match="exists but has no u.data"):
        download_dataset("ml-100k", tmp_path, url=closed_url)


def test_zip_in_data_dir_is_verified_then_extracted(tmp_path, closed_url):
    (tmp_path / "ml-100k.zip").write_bytes(GOOD_ZIP)
    folder = download_dataset("ml-100k", tmp_path, url=closed_url, sha256=sha256(GOOD_ZIP))
    assert (folder / "u.data").read_bytes() == U_DATA
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-100k", "ml-100k.zip"]


def test_zip_in_data_dir_with_wrong_checksum_is_named_and_left_alone(tmp_path, closed_url):
    (tmp_path / "ml-100k.zip").write_bytes(GOOD_ZIP)
    with pytest.raises(DataError, match=r"ml-100k.zip has SHA-256 .* expected 50d2a982"):
        download_dataset("ml-100k", tmp_path, url=closed_url)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-100k.zip"]


def test_env_data_dir_is_used(tmp_path, monkeypatch, closed_url):
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_bytes(U_DATA)
    monkeypatch.setenv("LOSSBENCH_DATA_DIR", str(tmp_path))
    assert ratings_file("ml-100k", "", url=closed_url) == tmp_path / "ml-100k" / "u.data"


def test_published_checksums_match_the_shared_readme():
    readme = Path(__file__).resolve().parents[2] / "shared" / "data" / "README.md"
    if not readme.is_file():
        pytest.skip(f"{readme} is absent (the shared data folder beside the checkout)")
    text = readme.read_text()
    for spec in data.DATASETS.values():
        assert f"| {spec.archive} |" in text and spec.sha256 in text
