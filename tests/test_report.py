"""report.py: statistics against scipy on hand-checkable numbers, then summaries of real run
folders (tests/tiny.toml, 4 strategies x 3 seeds) and of hand-built runs."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from lossbench.errors import DataError
from lossbench.results import report
from lossbench.results import tables as report_tables
from lossbench.results.folders import read_json, read_metrics, write_json
from lossbench.results.report import Run
from lossbench.results.stats import curve_band, holm, mean_ci, paired_test

# --- statistics by hand ----------------------------------------------------------------


def test_mean_ci_matches_scipy_and_hand():
    from scipy import stats  # slow to import: here, not when every worker collects

    ci = mean_ci([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.302653
    assert ci["n"] == 3 and ci["mean"] == 2.0
    assert ci["hi"] - 2.0 == pytest.approx(4.302653 / math.sqrt(3), abs=1e-6)
    x = np.array([0.3, 0.1, 0.4, 0.15, 0.9])
    lo, hi = stats.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    ci = mean_ci(x, confidence=0.9)
    assert (ci["lo"], ci["hi"]) == pytest.approx((lo, hi))


def test_mean_ci_edge_cases():
    one = mean_ci([3.0])
    assert one["mean"] == 3.0 and math.isnan(one["lo"]) and math.isnan(one["hi"])
    assert mean_ci([2.0, 2.0, 2.0]) == {"n": 3, "mean": 2.0, "lo": 2.0, "hi": 2.0}
    assert math.isnan(mean_ci([])["mean"])
    assert mean_ci([1.0, float("nan"), 3.0])["n"] == 2


def test_paired_test_matches_scipy():
    from scipy import stats  # slow to import: here, not when every worker collects

    base = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    diffs = np.array([0.1, 0.3, -0.1, 0.2, 0.4, 0.15])
    out = paired_test(diffs)
    assert out["n"] == 6
    assert out["t_p"] == pytest.approx(stats.ttest_rel(base + diffs, base).pvalue)
    assert out["wilcoxon_p"] == pytest.approx(stats.wilcoxon(diffs).pvalue)
    three = paired_test(diffs[:3])  # Wilcoxon only from 6 seeds on
    assert three["t_p"] == pytest.approx(stats.ttest_1samp(diffs[:3], 0).pvalue)
    assert math.isnan(three["wilcoxon_p"])


def test_paired_test_edge_cases():
    one = paired_test([0.5])
    assert math.isnan(one["t_p"]) and "too few seeds for a test" in one["note"]
    assert paired_test([0.0, 0.0, 0.0])["t_p"] == 1.0
    six_zeros = paired_test([0.0] * 6)
    assert six_zeros["t_p"] == 1.0 and six_zeros["wilcoxon_p"] == 1.0
    constant = paired_test([0.2, 0.2, 0.2])
    assert math.isnan(constant["t_p"]) and "zero variance" in constant["note"]
    # the same hit-count difference on two seeds, equal but for its last bits (as measured
    # on ml-100k): no t-test, where scipy's would give p ~ 1e-16
    rounded = paired_test([4 / 943, 4 / 943 * (1 + 2e-16)])
    assert math.isnan(rounded["t_p"]) and "zero variance" in rounded["note"]
    assert paired_test([1e-17, -1e-17, 2e-17])["t_p"] == 1.0
    assert 0 < paired_test([0.2, 0.2 + 1e-6, 0.2])["t_p"] < 1e-5  # a real (tiny) spread


def test_holm_hand_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> cummax
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.02, float("nan"), 0.04])  # nan is no test: m = 2
    assert out[[0, 2]] == pytest.approx([0.04, 0.04]) and math.isnan(out[1])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert len(holm([])) == 0


def test_curve_band_pads_shorter_curves():
    band = curve_band([np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0])])
    assert band["epoch"].tolist() == [1, 2, 3]
    assert band["mean"].tolist() == [2.0, 3.0, 3.0]
    assert band["n"].tolist() == [2, 2, 1]
    assert math.isnan(band["lo"][2])


# --- hand-built runs -------------------------------------------------------------------


def fake_run(strategy: str, seed: int, val_loss: float, b: float = 0.0,
             curve: list[float] | None = None) -> Run:
    """A complete run with one metric set by hand and a val_loss curve."""
    curve = curve or [val_loss] * 3
    rows = [{"epoch": e + 1, "val_loss": v, "train_loss": 1.0, "flood_frac": 0.5,
             "theta": 1.0} for e, v in enumerate(curve)]
    config = {"task": "synthetic", "strategy": strategy, "b": b, "seed": seed, "epochs": 3,
              "alpha": 0.1, "lam": 5.0}
    return Run(Path(f"/x/{strategy}__b{b}__s{seed}"), config, rows,
               {"status": "complete", "val_loss": val_loss})


def test_paired_differences_matched_by_seed():
    from scipy import stats  # slow to import: here, not when every worker collects

    runs = [fake_run("flood", 2, 2.9, b=0.1), fake_run("plain", 0, 1.0),
            fake_run("flood", 0, 1.1, b=0.1), fake_run("plain", 2, 3.0),
            fake_run("plain", 1, 2.0), fake_run("flood", 1, 2.3, b=0.1),
            fake_run("flood", 3, 9.0, b=0.1)]  # seed 3 has no plain partner
    summary = report.summarize(runs)
    (pair,) = summary["paired"]
    d = pair["metrics"]["val_loss"]
    assert pair["label"] == "flood b=0.1" and pair["baseline"] == "plain"
    assert d["seeds"] == [0, 1, 2]
    assert d["diffs"] == pytest.approx([0.1, 0.3, -0.1])
    assert d["t_p"] == pytest.approx(stats.ttest_1samp([0.1, 0.3, -0.1], 0).pvalue)
    assert d["t_p_holm"] == pytest.approx(d["t_p"])  # a family of one


def test_too_few_seeds_is_said_plainly():
    summary = report.summarize([fake_run("plain", 0, 1.0), fake_run("flood", 0, 1.2, b=0.1)])
    d = summary["paired"][0]["metrics"]["val_loss"]
    assert d["t_p"] is None and "too few seeds for a test" in d["note"]
    assert any("too few seeds for a test" in n for n in summary["notes"])
    assert any("no confidence interval" in n for n in summary["notes"])


def test_double_descent_found_on_constructed_curve():
    curve = [3.0, 2.0, 1.5, 1.2, 1.0, 1.4, 1.8, 1.6, 1.2, 1.0, 0.9]
    runs = [fake_run("plain", 0, 1.0), fake_run("flood", 0, 0.9, b=0.5, curve=curve)]
    (dd,) = report.summarize(runs, window=1)["double_descent"]
    assert dd["found"] and (dd["m1"], dd["t1"]) == (1.0, 5)
    assert (dd["peak"], dd["t_peak"], dd["m2"], dd["t2"]) == (1.8, 7, 0.9, 11)
    assert dd["recovered"] == pytest.approx(0.9 / 0.8) and dd["frac_below_b"] == 0.5


def test_flood_advice_scales_the_baseline_of_the_flooded_seeds_only():
    """Plain's train_loss at its best epoch (epoch 2) is 8 on seed 0 and 10 on seed 1; flood
    b=5 ran seed 0 only and never acted. The suggestion is 0.9 x 8 = 7.2 whether the plain
    runs are passed (`report` on the folder) or not (`run -s flood`, which passes its own
    runs): seed 1 has no flood run, so its plain run must not enter (not 0.9 x 9 = 8.1)."""
    def run(strategy: str, seed: int, losses: list[float], b: float = 0.0) -> Run:
        out = fake_run(strategy, seed, 1.0, b=b)
        out.rows = [{**row, "train_loss": t, "flood_frac": 0.0}
                    for row, t in zip(out.rows, losses, strict=True)]
        out.summary["best_epoch"] = 2
        return out

    plain = [run("plain", 0, [9.0, 8.0, 8.5]), run("plain", 1, [11.0, 10.0, 10.5])]
    flood = [run("flood", 0, [9.0, 8.0, 8.5], b=5.0)]
    notes = [report.flood_notes(runs, report.varying_settings(runs))
             for runs in (plain + flood, flood)]
    assert notes[0] == notes[1] and len(notes[0]) == 1
    assert notes[0][0].startswith("flood b=5 never acted: the training loss stayed above b "
                                  "(lowest 8); this run equals plain. Try b near 0.9 × "
                                  "plain's training loss at its best epoch (≈ 7.2 here)")


def test_alpha_splits_groups_when_it_differs():
    other = fake_run("reweight", 0, 1.1)
    other.config["alpha"] = 0.5
    summary = report.summarize([fake_run("plain", 0, 1.0), fake_run("reweight", 0, 1.2), other])
    assert [g["label"] for g in summary["groups"]] == [
        "plain alpha=0.1", "reweight alpha=0.1", "reweight alpha=0.5"]
    assert {p["baseline"] for p in summary["paired"]} == {"plain alpha=0.1"}


# --- real run folders ------------------------------------------------------------------


@pytest.fixture(scope="session")
def experiment(tiny_experiment) -> Path:
    return tiny_experiment


@pytest.fixture
def copy(experiment, tmp_path) -> Path:
    """A writable copy of the experiment folder, one level down (like a sweep)."""
    shutil.copytree(experiment, tmp_path / "sweep" / experiment.name)
    return tmp_path / "sweep"


def test_load_runs_at_any_depth(experiment, copy):
    one = sorted(experiment.iterdir())[0]
    assert len(report.load_runs(one)) == 1
    assert len(report.load_runs(experiment)) == 12
    runs = report.load_runs(copy)
    assert len(runs) == 12 and all(r.summary and r.rows and r.config for r in runs)


def test_summary_of_real_runs_agrees_with_files(experiment):
    from scipy import stats  # slow to import: here, not when every worker collects

    summary = report.summarize(report.load_runs(experiment))
    labels = [g["label"] for g in summary["groups"]]
    assert labels == ["plain", "reweight", "flood b=4", "reweight-flood b=4"]
    files = {(s["strategy"], s["seed"]): s for s in
             (read_json(p) for p in experiment.glob("*/summary.json"))}
    reweight = summary["groups"][1]
    values = [files["reweight", seed]["test_loss"] for seed in (0, 1, 2)]
    assert reweight["seeds"] == [0, 1, 2]
    assert reweight["stats"]["test_loss"]["mean"] == pytest.approx(np.mean(values))
    pair = next(p for p in summary["paired"] if p["label"] == "reweight")
    d = pair["metrics"]["val_loss"]
    a = [files["reweight", s]["val_loss"] for s in (0, 1, 2)]
    z = [files["plain", s]["val_loss"] for s in (0, 1, 2)]
    assert d["diffs"] == pytest.approx(np.subtract(a, z))
    assert d["t_p"] == pytest.approx(stats.ttest_rel(a, z).pvalue)
    p_all = [p["metrics"]["val_loss"]["t_p"] for p in summary["paired"]]
    holm_all = [p["metrics"]["val_loss"]["t_p_holm"] for p in summary["paired"]]
    assert holm_all == pytest.approx(holm(p_all).tolist())
    assert any("Wilcoxon needs >= 6" in n for n in summary["notes"])
    # b = 4 is below every training loss of tiny.toml: flooding never acts, flood == plain
    flood = next(p for p in summary["paired"] if p["label"] == "flood b=4")
    assert flood["metrics"]["val_loss"]["t_p"] == 1.0
    lowest = min(row["train_loss"] for path in experiment.glob("*__flood__*/metrics.csv")
                 for row in read_metrics(path))
    (note,) = [n for n in summary["notes"] if n.startswith("flood b=4 never acted")]
    assert f"(lowest {lowest:.3g}); this run equals plain" in note
    plain_level = np.mean([read_metrics(p.parent / "metrics.csv")[read_json(p)["best_epoch"] - 1]
                           ["train_loss"] for p in experiment.glob("*__plain__*/summary.json")])
    assert f"(≈ {0.9 * plain_level:.3g} here)" in note


def test_double_descent_numbers_for_flood_runs(experiment):
    """The reported numbers must be read off the run's own val_loss curve (window 1: the raw
    curve): m1, peak and m2 are its values at t1, t_peak and t2, m1 is the minimum before the
    peak, m2 the minimum after it, and frac_below_b the mean flood_frac of metrics.csv."""
    runs = {r.dir.name: r for r in report.load_runs(experiment)}
    summary = report.summarize(list(runs.values()), window=1, rise=1.0, recover=0.0)
    dd = summary["double_descent"]
    assert len(dd) == 6 and {d["label"] for d in dd} == {"flood b=4", "reweight-flood b=4"}
    for d in dd:
        rows = read_metrics(runs[d["run"]].dir / "metrics.csv")
        curve = [r["val_loss"] for r in rows]
        assert d["epochs"] == len(curve) == 3
        assert d["frac_below_b"] == pytest.approx(np.mean([r["flood_frac"] for r in rows]))
        if d["t_peak"] == 0:  # no candidate peak (an inner epoch) rises above its past
            assert all(curve[p] <= min(curve[:p]) for p in range(1, len(curve) - 1))
            continue
        assert 1 <= d["t1"] < d["t_peak"] < d["t2"] <= len(curve)
        assert d["m1"] == curve[d["t1"] - 1] == min(curve[:d["t_peak"] - 1])
        assert d["peak"] == curve[d["t_peak"] - 1] > d["m1"]
        assert d["m2"] == curve[d["t2"] - 1] == min(curve[d["t_peak"]:])
        assert d["recovered"] == pytest.approx((d["peak"] - d["m2"]) / (d["peak"] - d["m1"]))


def test_diverged_run_is_shown_not_dropped(copy):
    path = next(copy.glob("*/*__flood__*__s1__*/summary.json"))
    write_json(path, {**read_json(path), "status": "diverged",
                      "diverged_at": {"epoch": 2, "step": 3}})
    summary = report.summarize(report.load_runs(copy))
    (div,) = summary["diverged"]
    assert (div["label"], div["seed"], div["epoch"], div["step"]) == ("flood b=4", 1, 2, 3)
    flood = next(g for g in summary["groups"] if g["label"] == "flood b=4")
    assert flood["seeds"] == [0, 2] and flood["diverged_seeds"] == [1]
    assert summary["paired"][1]["metrics"]["val_loss"]["seeds"] == [0, 2]
    assert any("diverged" in n for n in summary["notes"])
    _, md = report_tables.write_report(summary, copy)
    assert "diverged runs" in md.read_text()


def test_missing_metrics_is_reported_incomplete(copy):
    broken = next(copy.glob("*/*__plain__*__s0__*"))
    (broken / "metrics.csv").unlink()
    summary = report.summarize(report.load_runs(copy))
    (entry,) = summary["incomplete"]
    assert entry["run"] == str(broken) and "metrics.csv" in entry["problem"]
    assert next(g for g in summary["groups"] if g["label"] == "plain")["seeds"] == [1, 2]
    assert any("incomplete" in n for n in summary["notes"])


def test_run_and_report_suggest_the_same_b(runner, tiny, copy):
    """`run -s flood --b 0.1` into the folder of plain seeds 0-2 prints the advice line that
    `report` on the folder writes: both scale the training loss of plain's seed 0, the
    seed flood ran (not the mean over plain's three seeds)."""
    from lossbench.cli.app import app

    result = runner.invoke(app, ["run", "--config", str(tiny), "-s", "flood", "--b", "0.1",
                                 "--out", str(copy)])
    assert result.exit_code == 0, result.output
    assert len(list(copy.glob("*/*__flood__b0.1*"))) == 1  # it landed in the same folder
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("flood b=0.1 never")]
    assert line in report.summarize(report.load_runs(copy))["notes"]


def one_error_line(result, message: str) -> None:
    """Bad input: exit code 2, one `error:` line holding `message`."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]


def test_report_and_plot_say_what_a_wrong_path_is(runner, experiment, tmp_path):
    from lossbench.cli.app import app

    run_dir = next(experiment.glob("*__plain__*"))
    notes = tmp_path / "notes.txt"
    notes.write_text("not results")
    (tmp_path / "empty").mkdir()
    cases = [
        (run_dir / "summary.json", f"{run_dir / 'summary.json'} is a file, not a results "
                                   f"folder; give the run folder that holds it: {run_dir}"),
        (notes, f"{notes} is a file, not a results folder; give a folder that `lossbench run` "
                "wrote"),
        (tmp_path / "empty", f"no runs found in {tmp_path / 'empty'}: not a results folder"),
        (tmp_path / "missing", f"no such results folder: {tmp_path / 'missing'}")]
    for command in ("report", "plot"):
        for path, message in cases:
            one_error_line(runner.invoke(app, [command, str(path)]), message)


def test_no_results_yet_names_no_other_command(runner, tmp_path):
    """report, plot and export share the message for an --out without results: it says to
    run `lossbench run` first and names no other command (plot used to suggest report)."""
    from lossbench.cli.app import app

    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("")
    for args in (["plot"], ["report"], ["export", "--to", "tensorboard"]):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "empty")])
        one_error_line(result, f"no results folder under {tmp_path / 'empty'}: run "
                               "`lossbench run` first, or give the results folder as the "
                               "argument (or its parent as --out)")
        assert "report" not in result.stderr and "plot" not in result.stderr
    result = runner.invoke(app, ["plot", "--out", str(tmp_path / "file")])
    one_error_line(result, f"{tmp_path / 'file'} is a file, not a folder of results")


def test_no_runs_or_only_broken_runs_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="no runs found in"):
        report.load_runs(tmp_path)
    with pytest.raises(DataError, match="no such results folder"):
        report.load_runs(tmp_path / "nowhere")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{not json")
    with pytest.raises(DataError, match="config.json"):
        report.load_runs(tmp_path)


def test_write_report_and_tables(experiment, tmp_path):
    summary = report.summarize(report.load_runs(experiment))
    paths = report_tables.write_report(summary, tmp_path)
    assert [p.name for p in paths] == ["report.json", "report.md"]
    loaded = json.loads(paths[0].read_text(), parse_constant=lambda c: pytest.fail(c))
    assert loaded == json.loads(json.dumps(summary))
    md = paths[1].read_text()
    assert "| plain | 3 |" in md and "paired differences" in md
    tables = report_tables.render_tables(loaded)  # works on report.json read back, too
    assert tables[0].row_count == 4 and tables[3].row_count == 3 * len(report.METRICS)


def test_reweight_flood_sweep_pairs_with_reweight_without_plain():
    runs = [fake_run(strategy, seed, 1.0 + seed + 0.1 * (strategy == "reweight-flood"),
                     b=0.1 * (strategy == "reweight-flood"))
            for strategy in ("reweight", "reweight-flood") for seed in (0, 1)]
    (pair,) = report.summarize(runs)["paired"]
    assert (pair["label"], pair["baseline"]) == ("reweight-flood b=0.1", "reweight")
    assert pair["metrics"]["val_loss"]["diffs"] == pytest.approx([0.1, 0.1])


# --- the noise rule and the puzzle, on constructed curves --------------------------------


def test_noise_std_is_the_spread_around_the_centred_mean():
    from lossbench.results.curves import noise_std

    flat = np.full(20, 3.0)
    assert noise_std(flat) == 0.0
    zigzag = 3.0 + 0.1 * np.array([1, -1] * 10)  # residuals around the 5-mean: +-0.08
    assert noise_std(zigzag) == pytest.approx(np.std([0.08, -0.08] * 8, ddof=1), rel=1e-6)
    line = np.linspace(0, 1, 12)  # a straight line is its own moving average: no noise
    assert noise_std(line) == pytest.approx(0.0, abs=1e-12)


def test_clear_double_descent_needs_a_rise_of_four_noise_stds():
    base = [3.0, 2.5, 2.0, 1.8, 1.7, 1.7, 1.9, 2.2, 2.5, 2.6, 2.5, 2.2, 1.9, 1.7, 1.6, 1.6,
            1.6, 1.6]
    smooth = fake_run("flood", 0, 1.6, b=0.5, curve=base)
    noisy = fake_run("flood", 1, 1.6, b=0.5,
                     curve=[v + 0.35 * (-1) ** i for i, v in enumerate(base)])
    summary = report.summarize([fake_run("plain", 0, 1.0), fake_run("plain", 1, 1.0),
                                smooth, noisy])
    dd = {d["seed"]: d for d in summary["double_descent"]}
    assert dd[0]["found"] and dd[0]["clear"] and dd[0]["rise_over_noise"] >= 4
    assert dd[1]["rise_over_noise"] < 4 and not dd[1]["clear"]
    ratio = (dd[1]["peak"] - dd[1]["m1"]) / dd[1]["noise"]
    assert dd[1]["rise_over_noise"] == pytest.approx(ratio)


def test_the_seeds_puzzle_is_found_and_flooding_credited_only_when_it_removes_it():
    from lossbench.results.curves import overconfident_epochs, spans

    loss = np.array([5, 4, 3, 2.5, 2.4, 2.4, 2.5, 2.7, 2.9, 3.1, 3.3, 3.5, 3.6, 3.7])
    acc = np.linspace(0.1, 0.5, 14)  # keeps rising
    ndcg = np.linspace(0.2, 0.6, 14)
    epochs = overconfident_epochs(loss, acc, ndcg, window=3)
    # 3-epoch means of the loss rise from the window centred on epoch 6 on; acc, ndcg always
    assert epochs == list(range(7, 14)) and spans(epochs) == [(7, 13)]
    assert overconfident_epochs(loss, acc[::-1].copy(), ndcg, window=3) == []  # acc falls

    def run(strategy, b, curve_loss):
        r = fake_run(strategy, 0, 1.0, b=b, curve=list(curve_loss))
        for row, a, n in zip(r.rows, acc, ndcg, strict=True):
            row.update(val_acc=float(a), val_ndcg10=float(n))
        return r

    falling = np.linspace(5, 2, 14)
    summary = report.summarize([run("plain", 0.0, loss), run("flood", 0.5, falling),
                                run("reweight-flood", 0.5, loss)], window=3)
    found = {d["label"]: d for d in summary["overconfidence"]}
    assert found["plain"]["n_epochs"] == 7 and found["plain"]["spans"] == [[7, 13]]
    assert found["flood b=0.5"]["verdict"] == "removed"
    assert found["flood b=0.5"]["baseline"] == "plain"
    assert found["reweight-flood b=0.5"]["verdict"] == "not removed"
    md = report_tables.to_markdown(summary)
    assert "puzzle: epochs where" in md and "| plain | 0 | 7 | 7-13 |" in md


def test_plot_shades_the_puzzle_epochs():
    from lossbench.results import plot

    loss = [5, 4, 3, 2.5, 2.4, 2.4, 2.5, 2.7, 2.9, 3.1, 3.3, 3.5, 3.6, 3.7]
    runs = [fake_run("plain", s, 1.0, curve=loss) for s in (0, 1)]
    for r in runs:
        for i, row in enumerate(r.rows):
            row.update(val_acc=0.1 + 0.01 * i, val_ndcg10=0.2 + 0.01 * i, val_hr10=0.3)
    summary = report.summarize(runs, window=3)
    fig = plot.make_figures(runs, summary)["loss_curves"]
    strip = next(ax for ax in fig.axes if ax.get_label() == plot.PUZZLE_STRIP)
    shaded = list(strip.patches)
    assert len(shaded) == 2  # one span per seed, on the strip under the validation panel
    assert shaded[0].get_x() == pytest.approx(6.5)
    assert shaded[0].get_width() == pytest.approx(7.0)


def test_the_title_names_a_learning_rate_schedule_and_warm_up_only_when_there_are_some():
    shared = {"task": "movielens", "dataset": "ml-100k", "model": "sasrec", "aux": "none",
              "epochs": 30, "optimizer": "adam", "lr": 0.002, "seeds": [0, 1, 2]}
    assert report_tables.describe_settings(shared) == \
        "ml-100k · sasrec · aux none · 30 epochs · adam lr 0.002 · 3 seeds"
    assert report_tables.describe_settings({**shared, "lr_schedule": "cosine"}) == \
        "ml-100k · sasrec · aux none · 30 epochs · adam lr 0.002 · cosine schedule · 3 seeds"
    assert report_tables.describe_settings({**shared, "lr_warmup": 2, "lr_schedule": "constant"}) \
        == "ml-100k · sasrec · aux none · 30 epochs · adam lr 0.002 · 2-epoch warm-up · 3 seeds"


def test_report_prints_one_compact_table_that_fits_100_columns(runner, tiny_experiment,
                                                               tmp_path):
    """By default `lossbench report` leads with one table a terminal of 100 columns holds
    (per group: n, the selection metric, the paired test differences with Holm p), then the
    double descent by group; `--full` prints every metric as report.md keeps them."""
    from rich.console import Console

    from lossbench.cli import app

    folder = shutil.copytree(tiny_experiment, tmp_path / "copy")
    summary = report.summarize(report.load_runs(folder))
    compact = report_tables.render_tables(summary, full=False)
    assert Console(width=200).measure(compact[0]).maximum <= 100
    assert [c.header for c in compact[0].columns] == [
        "group", "n", "val_loss", "Δ test_loss", "p", "Δ test_ndcg10", "p"]
    assert compact[0].row_count == len(summary["groups"])
    assert len(compact) < len(report_tables.render_tables(summary, full=True))
    short = runner.invoke(app, ["report", str(folder)], terminal_width=100)
    full = runner.invoke(app, ["report", str(folder), "--full"], terminal_width=100)
    assert short.exit_code == full.exit_code == 0
    assert "paired differences (group - baseline" not in short.stdout
    assert "paired differences (group - baseline" in full.stdout
    assert "summary: val_loss at the best epoch" in (folder / "report.md").read_text()
