"""Shared fixtures: a tiny config file and a CliRunner that keeps stderr apart."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

TINY = Path(__file__).with_name("tiny.toml")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def tiny() -> Path:
    return TINY
