"""Shared fixtures: a tiny config file and a CliRunner that keeps stderr apart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings
from typer.testing import CliRunner

# CI runs a fixed set of property examples (reproducible); locally
# `HYPOTHESIS_PROFILE=explore python -m pytest tests/test_property.py` searches afresh.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

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
