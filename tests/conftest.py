"""Shared fixtures: a tiny config file and a CliRunner that keeps stderr apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import TINY


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One torch thread per test worker. torch is imported here, not at the top: the pytest
    controller loads this file too and needs no torch (3-4 s of imports on 2 cores)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _sequential_by_default(monkeypatch):
    """CLI runs in tests are sequential unless a test passes --jobs: spawning worker
    processes costs seconds per command, more than the tiny runs themselves."""
    monkeypatch.setenv("LOSSBENCH_JOBS", "1")


@pytest.fixture
def runner():
    """Typer's CliRunner (imported here: the xdist controller loads this file and needs no
    typer)."""
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture
def tiny() -> Path:
    return TINY


@pytest.fixture(scope="session")
def tiny_experiment(tmp_path_factory) -> Path:
    """One comparison shared by the report and plot tests (read-only: copy it to change it):
    tests/tiny.toml, the four strategies, seeds 0-2, b = 4. Plain's training loss stays
    above 4, so flood never acts and equals plain; reweight's total falls below 4 (about
    3.5), so reweight-flood acts and differs from reweight."""
    from lossbench import api

    out = tmp_path_factory.mktemp("shared-results")
    return api.run(strategy=["all"], config=TINY, seeds=3, out=out, b=4.0).dir
