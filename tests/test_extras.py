"""Every optional extra, as a user without it meets it: the command that needs it gives one
line naming the extra to install, exit code 2, and writes nothing.

The extras' modules are hidden from the import system (`sys.modules[name] = None` makes
`import name` raise ImportError), so these tests run, and mean the same, whether or not the
extras are installed: CI runs the suite with only `.[test]` and again with every extra.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pytest

from lossbench import api
from lossbench import strategies as registry
from lossbench.cli.app import app

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"
NO_COMMAND = ("test", "dev", "docs")
"""Extras that no lossbench command needs (tools for developing lossbench itself)."""


def hide(monkeypatch, *packages: str) -> None:
    """Make `import p` fail for each package and every submodule of it already imported."""
    for name in list(sys.modules):
        if any(name == p or name.startswith(p + ".") for p in packages):
            monkeypatch.setitem(sys.modules, name, None)
    for package in packages:
        monkeypatch.setitem(sys.modules, package, None)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """One finished run to export (read-only)."""
    out = tmp_path_factory.mktemp("extras")
    return api.run(strategy="plain", config=Path(__file__).with_name("tiny.toml"),
                   epochs=1, out=out).dir


def commands(results: Path, tmp_path: Path, tiny: Path) -> dict[str, tuple[list[str], tuple]]:
    """Per extra: a command that needs it, and the packages it brings."""
    return {
        "tensorboard": (["export", str(results), "--to", "tensorboard",
                         "--logdir", str(tmp_path / "written")],
                        ("tensorboard", "torch.utils.tensorboard")),
        "mlflow": (["export", str(results), "--to", "mlflow",
                    "--tracking-uri", f"sqlite:///{tmp_path / 'written' / 'x.db'}"],
                   ("mlflow",)),
        "ray": (["run", "--backend", "ray", "--config", str(tiny),
                 "--out", str(tmp_path / "written")], ("ray",)),
        "jd": (["run", "--strategy", "mgda", "--config", str(tiny),
                "--out", str(tmp_path / "written")], ("torchjd",)),
    }


def test_every_extra_has_a_command_here(results, tmp_path, tiny):
    """An extra added to pyproject.toml later must get its line in `commands` above."""
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert set(extras) - set(NO_COMMAND) == set(commands(results, tmp_path, tiny))


@pytest.mark.parametrize("extra", ["tensorboard", "mlflow", "ray", "jd"])
def test_a_command_without_its_extra_says_what_to_install(extra, results, tmp_path, tiny,
                                                         runner, monkeypatch):
    args, packages = commands(results, tmp_path, tiny)[extra]
    hide(monkeypatch, *packages)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and f'pip install "lossbench[{extra}]"' in line
    assert "Traceback" not in result.output
    assert not (tmp_path / "written").exists()


@pytest.mark.parametrize("strategy", ["cagrad-flood", "upgrad", "jd"])
def test_each_torchjd_strategy_and_its_group_say_what_to_install(strategy, tiny, tmp_path,
                                                                 runner, monkeypatch):
    """A flooded aggregator, one that needs a solver, and the group `jd`, without torchjd's
    solvers (cvxpy, quadprog) either: one line, before anything is written."""
    hide(monkeypatch, "torchjd", "cvxpy", "quadprog", "qpsolvers")
    result = runner.invoke(app, ["run", "--strategy", strategy, "--config", str(tiny),
                                 "--out", str(tmp_path / "written")])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: strategy '") and 'pip install "lossbench[jd]"' in line
    assert not (tmp_path / "written").exists()


def test_strategies_that_need_an_extra_are_listed_as_such_and_not_in_builtins(runner,
                                                                              monkeypatch):
    """`lossbench strategies` describes every torchjd aggregator without torchjd (its class
    imports without it), marked as needing lossbench[jd]; the group `builtins` leaves them
    out (a user without the extra can run it), the group `jd` holds them."""
    hide(monkeypatch, "torchjd")
    result = runner.invoke(app, ["strategies", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    jd = registry.GROUPS["jd"]
    assert {"mgda", "cagrad", "nash-mtl", "imtl-g", "aligned-mtl", "upgrad", "graddrop",
            "dualproj", "gradvac", "config-grad"} == set(jd)
    assert all(rows[name]["extra"] == "jd" and not rows[name]["installed"]
               and rows[name]["gradients"] and rows[name]["citation"] for name in jd)
    assert rows["pcgrad"]["extra"] == "" and rows["pcgrad"]["installed"]
    assert not set(jd) & set(registry.GROUPS["builtins"])
    assert "pcgrad" in registry.GROUPS["builtins"]
    table = runner.invoke(app, ["strategies"])
    assert "mgda (combines gradients; needs lossbench[jd], not installed)" in table.stdout
    assert '  install: pip install "lossbench[jd]"' in table.stdout
