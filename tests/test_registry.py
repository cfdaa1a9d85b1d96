"""The strategy registry as a user meets it: every strategy from the CLI, a plugin of their
own (the guide's, run as written), old results folders, and lossbench 0.1's numbers."""

from __future__ import annotations

import csv
import json
import shutil
import textwrap
from pathlib import Path

import pytest
from helpers import assert_rows_close, close, metrics_rows

from lossbench import api
from lossbench import strategies as registry
from lossbench.cli.app import app
from lossbench.events import Events

OLD = Path(__file__).with_name("data") / "results-0.1"
GUIDE = Path(__file__).parents[1] / "docs" / "how-to" / "own-strategy.md"


def test_the_seed_four_reproduce_lossbench_0_1(tiny, tmp_path):
    """tests/data/results-0.1 was written by lossbench before the registry existed (same
    settings, one torch thread), on another machine: the registry must not change a number
    beyond what another CPU's float32 rounding explains (helpers.assert_rows_close)."""
    (old,) = OLD.iterdir()
    comparison = api.run(strategy="all", config=tiny, b=7.9, epochs=6, aux_mask_prob=0.3,
                         out=tmp_path)
    n_val = comparison.runs[0].cfg.task.synthetic.n_val_users
    for run in comparison.runs:
        (before,) = old.glob(f"synthetic__{run.cfg.strategy.name}__b*/metrics.csv")
        rows = metrics_rows(run.dir)
        assert_rows_close(rows, metrics_rows(before), n_val, run.cfg.strategy.name)
        assert any(float(r["flood_frac"]) > 0 for r in rows) or "flood" not in run.cfg.strategy.name


def test_another_cpus_last_digits_pass_and_a_real_change_fails():
    """An Intel AVX-512 machine wrote 4.090111017227173 where ours wrote 4.090110778808594
    (train_aux_loss, epoch 1): within the tolerance. A change of 1e-4 relative, or two
    flipped ranks among 32 examples, is not. (Flood decisions cannot flip on another CPU in
    the test above: every flooded step's total is at least 1e-3 relative away from b.)"""
    assert close("train_aux_loss", "4.090111017227173", "4.090110778808594", 32)
    assert not close("train_aux_loss", "4.0905", "4.090110778808594", 32)
    assert close("val_acc", "0.1875", "0.15625", 32)
    assert not close("val_acc", "0.21875", "0.15625", 32)
    assert not close("epoch", "2", "1", 32)


def test_old_results_folders_still_report_and_plot(runner, tmp_path):
    folder = shutil.copytree(OLD, tmp_path / "old")
    result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    report = json.loads((folder / "report.json").read_text())
    assert [g["label"] for g in report["groups"]] == [
        "plain", "reweight", "flood b=7.9", "reweight-flood b=7.9"]
    assert {p["label"] for p in report["paired"]} == {"reweight", "flood b=7.9",
                                                      "reweight-flood b=7.9"}
    plotted = runner.invoke(app, ["plot", str(folder)])
    assert plotted.exit_code == 0, plotted.output
    assert "weights.png" in plotted.stdout  # θ of the old reweight runs


def test_names_groups_and_baselines():
    assert registry.expand(["all"]) == ["plain", "reweight", "flood", "reweight-flood"]
    builtins = registry.expand(["builtins"])
    assert set(builtins) >= {"weighted", "uncertainty", "dwa", "gcs", "pcgrad", "iflood"}
    assert registry.expand(["plain-flood", "plain-iflood", "dwa-iflood"]) == [
        "flood", "iflood", "dwa-iflood"]
    assert registry.split_name("uncertainty-flood") == ("uncertainty", "batch")
    assert registry.no_flood_baseline("reweight-flood") == "reweight"
    assert registry.no_flood_baseline("iflood") == "plain"
    assert registry.no_flood_baseline("dwa") == "plain"
    params = {"alpha": 0.3, "w": 2.0, "b_reweight": 3.0}
    assert registry.run_params("reweight-flood", params)["alpha"] == 0.3
    assert "w" not in registry.run_params("reweight", params)
    assert registry.flood_level("reweight-flood", params, b=9.0) == 3.0
    assert registry.flood_level("reweight-flood", {"b_reweight": -1.0}, b=9.0) == 9.0
    assert registry.flood_level("iflood", {}, b=9.0, b_example=4.0) == 4.0
    assert registry.flood_level("reweight", params, b=9.0) == 0.0


def test_strategies_command_lists_every_strategy(runner):
    result = runner.invoke(app, ["strategies", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert list(rows) == ["plain", "weighted", "reweight", "uncertainty", "dwa", "gcs",
                          "pcgrad", "rlw", "gradnorm", "famo", "metabalance", *JD, "X-flood",
                          "X-iflood", "X-adaflood"]
    assert all(rows[name]["extra"] == "jd" for name in JD)
    assert not rows["rlw"]["extra"] and rows["rlw"]["installed"]
    assert rows["weighted"]["params"][0] | {} == {"name": "w", "type": "float",
                                                  "default": 0.5, "range": ">= 0",
                                                  "doc": "fixed weight of L_aux",
                                                  "search": "0.01..10 (log)"}
    assert all(row["citation"] for row in rows.values())
    assert not any("shared/" in row["citation"] or ".txt" in row["citation"]
                   for row in rows.values())  # papers a reader can find, no paths of ours
    assert rows["gcs"]["gradients"] and rows["dwa"]["logs"] == ["w_main", "w_aux"]
    for name, formula in (("uncertainty", "L = L_main / (2 exp(s_main))"),
                          ("dwa", "w_k = K exp(r_k / T)"), ("gcs", "g = g_main + g_aux")):
        assert formula in rows[name]["doc"], name  # the whole description, not its first line
    levels = {row["name"]: [p["name"] for p in row["params"]] for row in rows.values()}
    assert levels["X-flood"] == ["b", "b_reweight"] and levels["X-iflood"] == ["b_example", "b"]
    assert {"flood", "reweight-flood"} <= set(rows["X-flood"]["variants"])
    assert "iflood" in rows["X-iflood"]["variants"]
    table = runner.invoke(app, ["strategies"])
    assert table.exit_code == 0 and "Kendall" in table.stdout and "--dwa-temp" in table.stdout
    assert "--b-example float = 4.0" in table.stdout
    helped = runner.invoke(app, ["run", "--help"])
    assert "--dwa-temp" in helped.stdout and "--gcs-weighted" in helped.stdout


JD = ["mgda", "cagrad", "nash-mtl", "imtl-g", "aligned-mtl", "upgrad", "graddrop", "dualproj",
      "gradvac", "config-grad"]
"""The torchjd aggregators (extra `jd`), in the order the listing gives them."""
BUILTINS_TINY = Path(__file__).with_name("data") / "builtins-tiny"
"""Seed 0 of `builtins_run`, written before the package was reorganised (issue 27)."""
STORED = sorted(json.loads((p / "config.json").read_text())["strategy"]
                for p in BUILTINS_TINY.iterdir())
"""The strategies of tests/data/builtins-tiny: the built-ins of issue 27. The methods added
since are tested in tests/test_methods.py and tests/test_jd.py."""


@pytest.fixture(scope="session")
def builtins_run(tmp_path_factory) -> Path:
    """The stored built-in strategies (STORED), 2 seeds, through the CLI's API; b and
    b_example where every kind of flooding acts."""
    out = tmp_path_factory.mktemp("builtins")
    comparison = api.run(strategy=STORED, config=Path(__file__).with_name("tiny.toml"),
                         seeds=2, b=7.9, b_example=3.0, epochs=4, aux_mask_prob=0.3, out=out)
    return comparison.dir


def test_every_builtin_reproduces_its_stored_numbers(builtins_run):
    """tests/data/builtins-tiny holds seed 0 of this comparison as written before lossbench
    was reorganised: no refactoring may change a number (beyond another CPU's rounding)."""
    stored = {json.loads((p / "config.json").read_text())["strategy"]: p
              for p in BUILTINS_TINY.iterdir()}
    ours = {json.loads((p / "config.json").read_text())["strategy"]: p
            for p in builtins_run.iterdir()
            if p.is_dir() and json.loads((p / "config.json").read_text())["seed"] == 0}
    assert set(ours) == set(stored) == set(STORED)
    assert set(STORED) < set(registry.expand(["builtins"]))
    for name, folder in ours.items():
        assert_rows_close(metrics_rows(folder), metrics_rows(stored[name]), 32, name)
        flood = [float(r["flood_frac"]) for r in metrics_rows(folder)]
        assert any(flood) == (name in ("flood", "reweight-flood", "iflood")), name


def test_every_builtin_runs_logs_its_state_and_is_paired_against_plain(builtins_run, runner):
    runs = {p.name.split("__")[1]: p for p in builtins_run.iterdir() if p.is_dir()}
    assert set(runs) == set(STORED)
    header = {name: next(csv.reader(open(folder / "metrics.csv"))) for name, folder in
              runs.items()}
    assert header["dwa"][-2:] == ["w_main", "w_aux"]
    assert header["uncertainty"][-4:] == ["s_main", "s_aux", "w_main", "w_aux"]
    assert header["gcs"][-2:] == ["cos", "aux_used"]
    assert header["pcgrad"][-2:] == ["cos", "conflict"]
    uncertainty = metrics_rows(runs["uncertainty"])
    assert uncertainty[0]["s_main"] != uncertainty[-1]["s_main"]  # learnt
    result = runner.invoke(app, ["report", str(builtins_run)])
    assert result.exit_code == 0, result.output
    report = json.loads((builtins_run / "report.json").read_text())
    paired = {p["label"]: p for p in report["paired"]}
    assert set(paired) == {g["label"] for g in report["groups"]} - {"plain"}
    assert all(p["baseline"] == "plain" for p in paired.values())
    assert all(p["metrics"]["val_loss"]["n"] == 2 for p in paired.values())
    holm = [p["metrics"]["test_loss"]["t_p_holm"] for p in paired.values()]
    raw = [p["metrics"]["test_loss"]["t_p"] for p in paired.values()]
    assert all(h is None or h >= r for h, r in zip(holm, raw, strict=True))


def test_weights_figure_draws_each_logged_state(builtins_run):
    from lossbench.results import plot, report

    runs = report.load_runs(builtins_run)
    figures = plot.make_figures(runs, report.summarize(runs))
    titles = [ax.get_title() for ax in figures["weights"].axes]
    assert titles == ["theta", "s_main", "s_aux", "w_main", "w_aux", "cos", "aux_used",
                      "conflict"]
    w_aux = figures["weights"].axes[4]
    assert len(w_aux.get_lines()) == 2  # uncertainty and dwa


def test_resumed_learnable_and_epoch_state_continue_exactly(tiny, tmp_path):
    """uncertainty (learnable log-variances) and dwa (loss history): stop after epoch 2,
    resume, and the rows equal a run that never stopped."""
    class Stop(Events):
        def epoch_done(self, cfg, row):
            if row["epoch"] == 2:
                raise KeyboardInterrupt

    settings = {"config": tiny, "epochs": 4}
    for name in ("uncertainty", "dwa"):
        with pytest.raises(KeyboardInterrupt):
            api.run(strategy=name, out=tmp_path / "stopped", events=Stop(), **settings)
        resumed = api.run(strategy=name, out=tmp_path / "stopped", **settings).runs[0]
        straight = api.run(strategy=name, out=tmp_path / "straight", **settings).runs[0]
        assert metrics_rows(resumed.dir) == metrics_rows(straight.dir)


def test_strategy_parameters_as_options(runner, tiny, tmp_path):
    result = runner.invoke(app, ["run", "--config", str(tiny), "-s", "weighted", "--w", "0.25",
                                 "-s", "reweight", "--alpha=0.5", "--detach-theta",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    configs = {json.loads(p.read_text())["strategy"]: json.loads(p.read_text())["params"]
               for p in tmp_path.glob("*/*/config.json")}
    assert configs["weighted"] == {"w": 0.25}
    assert configs["reweight"]["alpha"] == 0.5 and configs["reweight"]["detach_theta"] is True


@pytest.mark.parametrize("args, message", [
    (["--w", "-1"], "w must be >= 0"),
    (["--dwa-temp", "0"], "dwa_temp must be > 0"),
    (["--w"], "requires an argument"),
    (["--detach-theta=yes"], "is a flag and takes no value"),
    (["--frobnicate", "3"], "No such option: --frobnicate"),
    (["-s", "uncertainty-flod"], "unknown strategy 'uncertainty-flod'"),
    (["--set", "params=1"], "'params' is not a setting"),
])
def test_bad_strategy_options_are_one_line(runner, tiny, tmp_path, args, message):
    result = runner.invoke(app, ["run", "--config", str(tiny), "-s", "weighted", *args,
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_sweep_of_a_strategy_parameter_selects_on_validation(runner, tiny, tmp_path):
    result = runner.invoke(app, ["sweep", "--strategy", "weighted", "--param", "w", "--grid",
                                 "0.1,1", "--seeds", "2", "--config", str(tiny),
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith("sweep-synthetic-weighted-w-")
    sweep = json.loads((folder / "sweep.json").read_text())
    assert sweep["param"] == "w" and sweep["grid"] == [0.1, 1.0]
    means = {float(v): e["val"]["mean"] for v, e in sweep["per_value"].items()}
    assert sweep["selected"] == min(means, key=means.get)
    assert f"selected w = {sweep['selected']:g}" in result.stdout
    bad = runner.invoke(app, ["sweep", "--strategy", "weighted", "--param", "alpha",
                              "--grid", "0.1", "--config", str(tiny), "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "has no parameter 'alpha'" in bad.stderr


def readme_plugin() -> str:
    """The plugin as the guide shows it (the first python block of docs/how-to/
    own-strategy.md), run as written."""
    text = GUIDE.read_text()
    start = text.index("```python\n") + len("```python\n")
    return text[start:text.index("```", start)]


def test_the_readme_plugin_runs_reports_and_plots(runner, tiny, tmp_path, monkeypatch):
    (tmp_path / "mystrategies.py").write_text(readme_plugin())
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results"
    result = runner.invoke(app, ["run", "--strategy", "mystrategies:HalfAux", "--strategy",
                                 "plain", "--seeds", "2", "--config", str(tiny), "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    (folder,) = out.iterdir()
    runs = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert sum("mystrategies.HalfAux" in name for name in runs) == 2
    half = next(folder.glob("*mystrategies.HalfAux*s0*"))
    rows = metrics_rows(half)
    for row in rows:  # the plugin's objective: L_main + 0.5 L_aux
        expected = float(row["train_main_loss"]) + 0.5 * float(row["train_aux_loss"])
        assert float(row["train_loss"]) == pytest.approx(expected, rel=1e-6)
    reported = runner.invoke(app, ["report", "--out", str(out)])
    assert reported.exit_code == 0, reported.output
    report = json.loads((folder / "report.json").read_text())
    (pair,) = report["paired"]
    assert pair["label"] == "mystrategies:HalfAux" and pair["baseline"] == "plain"
    plotted = runner.invoke(app, ["plot", "--out", str(out)])
    assert plotted.exit_code == 0 and "loss_curves.png" in plotted.stdout


def test_a_plugin_named_in_a_config_file_takes_its_parameters_from_everywhere(
        runner, tiny, tmp_path, monkeypatch):
    """`strategy = "mystrategies:HalfAux"` in a TOML file: its parameter is a known key in
    the same file, in --set, and as the generated option `--aux-weight` (the plugin is
    resolved before any other key or option is checked)."""
    (tmp_path / "fromtoml.py").write_text(readme_plugin())  # a module no other test loads
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "mine.toml"
    config.write_text(tiny.read_text() + '\nstrategy = "fromtoml:HalfAux"\n'
                      "aux_weight = 0.3\n")
    (tmp_path / "fromtoml_api.py").write_text(readme_plugin())
    api_config = tmp_path / "api.toml"
    api_config.write_text('strategy = "fromtoml_api:HalfAux"\naux_weight = 0.4\n')
    assert api.base_config(api_config).strategy.params == {"aux_weight": 0.4}
    weights = {}
    for extra, label in ((["--aux-weight", "0.1"], "option"),  # first: nothing loaded yet
                         (["--set", "aux_weight=0.2"], "set"), ([], "file")):
        result = runner.invoke(app, ["run", "--config", str(config), *extra,
                                     "--out", str(tmp_path / label)])
        assert result.exit_code == 0, result.output
        (run_config,) = (tmp_path / label).glob("*/*/config.json")
        weights[label] = json.loads(run_config.read_text())["params"]["aux_weight"]
    assert weights == {"file": 0.3, "set": 0.2, "option": 0.1}


BROKEN = {
    "missing.py": ("", "cannot load strategy plugin"),
    "raises.py": ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
    "notastrategy.py": ("class Bad:\n    name = 'bad'\n", "is not a subclass"),
    "vector.py": (textwrap.dedent("""
        from lossbench.strategies import Strategy
        class Bad(Strategy):
            name = "vector"
            def forward(self, main, aux):
                return main.per_example
    """), "does not keep the Strategy interface"),
}


@pytest.mark.parametrize("filename", BROKEN)
def test_broken_plugins_are_one_line_and_write_nothing(runner, tiny, tmp_path, monkeypatch,
                                                       filename):
    source, message = BROKEN[filename]
    if source:
        (tmp_path / filename).write_text(source)
    monkeypatch.chdir(tmp_path)
    cls = "Bad" if filename != "raises.py" else "X"
    result = runner.invoke(app, ["run", "--strategy", f"{filename[:-3]}:{cls}",
                                 "--config", str(tiny), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_installed_plugins_register_through_the_entry_point_group(tmp_path, monkeypatch):
    """A package that declares `[project.entry-points."lossbench.strategies"]` is found
    without --strategy module:Class (a dist-info folder stands in for pip install)."""
    (tmp_path / "thirdparty.py").write_text(readme_plugin().replace("HalfAux", "Third"))
    info = tmp_path / "thirdparty-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[lossbench.strategies]\nthird = thirdparty:Third\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from lossbench.strategies import registry as registry_module

    monkeypatch.setattr(registry_module, "_ENTRY_POINTS_LOADED", False)
    monkeypatch.setattr(registry_module, "REGISTRY", dict(registry_module.REGISTRY))
    assert registry.expand(["third-flood"]) == ["third-flood"]
    assert "third" in [row["name"] for row in registry.describe()]
