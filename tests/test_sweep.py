"""`lossbench sweep-b`, `report` and `plot` from the command line, as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lossbench import api
from lossbench.cli.app import app
from lossbench.events import Events
from lossbench.runner.sweep import parse_grid, select_value


def stats(val: float, test: float) -> dict:
    return {"val": {"mean": val}, "test": {"mean": test}}


def test_selection_uses_validation_even_when_test_disagrees():
    per_b = {0.0: stats(3.0, 2.0), 0.5: stats(2.5, 2.9), 1.0: stats(2.7, 1.0)}
    chosen, why = select_value(per_b, "val_loss")
    assert chosen == 0.5  # test would have picked b = 1.0
    assert "validation only" in why
    assert select_value({0.0: stats(0.2, 0.9), 0.3: stats(0.1, 0.95)}, "val_acc")[0] == 0.0


def test_ties_go_to_the_smaller_b():
    assert select_value({0.0: stats(2.0, 1.0), 0.4: stats(2.0, 0.5)}, "val_loss")[0] == 0.0


def test_grids_parse():
    assert parse_grid("0.2,0.05,0.1", None) == [0.05, 0.1, 0.2]
    assert parse_grid(None, "0:1:5") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert parse_grid(None, None) is None


def test_sweep_runs_grid_and_baseline_and_writes_sweep_json(runner, tiny, tmp_path):
    result = runner.invoke(app, ["sweep-b", "--config", str(tiny), "--b-grid", "2.5,3.5",
                                 "--seeds", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "selected b =" in result.stdout
    (folder,) = tmp_path.iterdir()
    sweep = json.loads((folder / "sweep.json").read_text())
    assert sweep["grid"] == [0.0, 2.5, 3.5]
    assert sweep["selected_b"] in sweep["grid"]
    assert set(sweep["per_b"]) == {"0", "2.5", "3.5"}
    means = {b: s["val"]["mean"] for b, s in sweep["per_b"].items()}
    assert means[f"{sweep['selected_b']:g}"] == min(means.values())
    for entry in sweep["per_b"].values():
        assert entry["seeds"] == [0, 1]
        assert entry["val"]["lo"] <= entry["val"]["mean"] <= entry["val"]["hi"]
    runs = [p for p in folder.iterdir() if p.is_dir()]
    assert len(runs) == 6
    assert sum(p.name.startswith("synthetic__plain__b0__") for p in runs) == 2


def test_default_grid_comes_from_the_baseline(runner, tiny, tmp_path):
    result = runner.invoke(app, ["sweep-b", "--config", str(tiny), "--seeds", "1",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "b grid from the baseline's training loss" in result.stdout
    (folder,) = tmp_path.iterdir()
    assert f"next: lossbench report {folder}  |  lossbench plot {folder}" in result.stdout
    sweep = json.loads((folder / "sweep.json").read_text())
    level = sweep["grid_from_baseline_loss"]
    assert level > 0 and len(sweep["grid"]) == 8  # b = 0 and seven fractions of the level
    # the grid's runs join the progress once the baseline has given the grid: 1 + 7 runs
    assert "runs 8/8 done, 0 running; epochs" in result.stdout and "24/24" in result.stdout
    assert max(sweep["grid"]) == pytest.approx(1.1 * level, rel=1e-2)


class StopAfter(Events):
    """Simulates Ctrl-C after `n` runs have finished."""

    def __init__(self, n: int) -> None:
        self.n = n

    def run_finished(self, outcome) -> None:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def test_interrupted_sweep_resumes_and_reruns_incomplete_runs(tiny, tmp_path):
    kwargs = {"b_grid": "2.5,3.5", "seeds": 2, "config": tiny, "out": tmp_path}
    with pytest.raises(KeyboardInterrupt):
        api.sweep_b(events=StopAfter(3), **kwargs)
    (folder,) = tmp_path.iterdir()
    done = sorted(p for p in folder.iterdir() if (p / "summary.json").exists())
    assert len(done) == 3 and not (folder / "sweep.json").exists()
    (done[0] / "summary.json").unlink()  # a run killed before it finished

    class Count(Events):
        ran, skipped = [], []

        def run_finished(self, outcome) -> None:
            (self.skipped if outcome.skipped else self.ran).append(outcome.dir.name)

    counter = Count()
    result = api.sweep_b(events=counter, **kwargs)
    assert len(counter.skipped) == 2 and len(counter.ran) == 4
    assert done[0].name in counter.ran
    assert (folder / "sweep.json").exists() and result["selected_b"] in (0.0, 2.5, 3.5)


def test_report_and_plot_without_a_folder_read_the_newest(runner, tiny_experiment, tmp_path):
    out = tmp_path / "results"
    old = shutil.copytree(tiny_experiment, out / "older")
    new = shutil.copytree(tiny_experiment, out / "newer")
    for path in old.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    result = runner.invoke(app, ["report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"using the most recent results folder: {new}" in result.stdout
    assert "paired differences" in result.stdout
    report = json.loads((new / "report.json").read_text())
    assert (new / "report.md").exists() and report["groups"]
    assert not (old / "report.json").exists()
    result = runner.invoke(app, ["plot", "--out", str(out), "--format", "svg"])
    assert result.exit_code == 0, result.output
    paths = [Path(line) for line in result.stdout.split() if line.endswith(".svg")]
    assert {p.name for p in paths} >= {"loss_curves.svg", "val_metrics.svg", "weights.svg"}
    assert all(p.parent == new / "plots" for p in paths)
    assert all(p.read_text().lstrip().startswith(("<?xml", "<svg")) for p in paths)


def test_plot_of_a_sweep_draws_the_sweep_figure(runner, tiny, tmp_path):
    result = api.sweep_b(b_grid=[3.0], seeds=2, config=tiny, out=tmp_path)
    plotted = runner.invoke(app, ["plot", result["dir"]])
    assert plotted.exit_code == 0, plotted.output
    assert "sweep.png" in plotted.stdout


@pytest.mark.parametrize("args, message", [
    (["sweep-b", "--b-grid", "0.1,x"], "--b-grid must be numbers"),
    (["sweep-b", "--b-grid", "0.1,-0.2"], "flood levels must be finite and >= 0"),
    (["sweep-b", "--b-range", "0:1:0"], "--b-range needs num >= 1"),
    (["sweep-b", "--b-range", "0:1"], "--b-range must be start:stop:num"),
    (["sweep-b", "--strategy", "plain"], "--strategy must be a flooded strategy"),
    (["sweep-b", "--select", "test_loss"], "--select must be one of"),
    (["report", "{empty}"], "no runs found"),
    (["report", "{missing}"], "no such results folder"),
    (["report", "--out", "{empty}"], "no results folder under"),
    (["plot", "--out", "{missing}"], "no results folder under"),
    (["sweep-b", "--set", "strategy=plain"], "a sweep takes its strategy from --strategy"),
    (["run", "--jobs", "many"], "--jobs must be a positive integer or 'auto'"),
    (["run", "--jobs", "0"], "--jobs must be >= 1"),
    (["plot", "{empty}"], "no runs found"),
    (["plot", "{empty}", "--format", "gif"], "format"),
])
def test_bad_input_is_one_line_exit_2(runner, tiny, tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.format(empty=empty, missing=tmp_path / "missing") for a in args]
    if args[0] in ("sweep-b", "run"):
        args += ["--config", str(tiny), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""  # not even the blank line of progress bars that never started
    assert not (tmp_path / "out").exists()


def test_report_lists_a_run_folder_missing_files(runner, tiny, tmp_path):
    comparison = api.run(strategy=["plain", "flood"], config=tiny, b=3.0, out=tmp_path)
    (comparison.runs[1].dir / "metrics.csv").unlink()
    result = runner.invoke(app, ["report", str(comparison.dir)])
    assert result.exit_code == 0, result.output
    report = json.loads((comparison.dir / "report.json").read_text())
    assert len(report["incomplete"]) == 1


def test_help_of_every_verb(runner):
    for verb in ("run", "sweep-b", "report", "plot", "data"):
        result = runner.invoke(app, [verb, "--help"])
        assert result.exit_code == 0 and "Usage" in result.stdout


def test_a_sweep_at_a_parameters_default_plans_the_run_that_run_plans(tiny):
    """One planner: for every built-in weighting, unflooded and with each flood modifier,
    `sweep --param P` at P's default (for b: the flood level `run` uses) plans the same run
    config, and so the same folder, as `run`; sweep-b's baseline is `run`'s no-flood run."""
    from lossbench import strategies as registry
    from lossbench.config import flat
    from lossbench.results.folders import run_dir_name
    from lossbench.runner.plan import plan_runs, plan_sweep

    base = api.base_config(tiny)
    checked = 0
    for entry in registry.REGISTRY.values():
        if entry.missing():  # an extra's strategy (torchjd's): planned alike when installed
            continue
        for flooding in ("none", "batch", "example", "adaflood"):
            name = registry.join_name(entry.name, flooding)
            (run,) = plan_runs(base, [name], [0])
            swept = {p.name: p.default for p in registry.strategy_params(name)}
            if flooding in ("batch", "example"):
                swept["b"] = run.strategy.b
            for param, value in swept.items():
                baseline, (planned,) = plan_sweep(base, name, param, [value], [0])
                assert planned == run, (name, param)
                assert run_dir_name(flat(planned)) == run_dir_name(flat(run))
                if param == "b":
                    (plain,) = plan_runs(base, [registry.no_flood_baseline(name)], [0])
                    assert baseline == [plain]
                checked += 1
    assert checked >= 30


def test_sweeping_alpha_of_reweight_flood_floods_where_run_floods(tiny, tmp_path):
    """The sweep used to plan its own runs and flooded at b, where run floods at b_reweight."""
    sweep = api.sweep(strategy="reweight-flood", param="alpha", grid=[0.1], seeds=1,
                      config=tiny, epochs=1, b=2.0, b_reweight=3.0, out=tmp_path)
    (folder,) = (Path(sweep["dir"]) / name for name in sweep["runs"].values())
    assert json.loads((folder / "config.json").read_text())["b"] == 3.0
