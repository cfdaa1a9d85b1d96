"""`lossbench tune` as a user runs it: the equal budget, the choice on validation (recomputed
from the run folders), fresh paired final seeds, Optuna's journal, a SIGKILL in the middle,
the verdict and the figures, and bad input."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
from helpers import TINY, EventLog

from lossbench import api
from lossbench.cli.app import app

TRIALS, SEEDS, FINAL = 2, 2, 2
ARGS = ["tune", "--config", str(TINY), "-s", "flood", "--trials", str(TRIALS), "--seeds",
        str(SEEDS), "--final-seeds", str(FINAL), "--jobs", "1"]
"""Arms main-only, plain and flood (a flood level relative to plain's training loss): 12
trial runs, 2 reference runs and 6 final runs of tests/tiny.toml."""


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    """One tune folder shared by the tests below (read-only)."""
    from typer.testing import CliRunner

    out = tmp_path_factory.mktemp("tune")
    result = CliRunner().invoke(app, [*ARGS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "verdict:" in result.output and "equal budget" in result.output
    (folder,) = out.glob("tune-synthetic-*")
    return folder


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_arm_gets_the_same_budget_and_is_chosen_on_validation(tuned):
    from lossbench.runner.tune import ARM_JSON, TUNE_JSON

    tune = read(tuned / "tune.json")
    assert list(tune) == list(TUNE_JSON)  # the reference page lists every key
    assert all(list(arm) == list(ARM_JSON) for arm in tune["arms"])
    assert [arm["arm"] for arm in tune["arms"]] == ["main-only", "plain", "flood"]
    assert tune["tuning_seeds"] == [0, 1]
    for arm in tune["arms"]:
        assert [t["number"] for t in arm["trials"]] == list(range(TRIALS))
        assert arm["budget"]["trials"] == TRIALS
        scores = []
        for trial in arm["trials"]:
            configs = [read(tuned / name / "config.json") for name in trial["runs"]]
            assert [c["seed"] for c in configs] == tune["tuning_seeds"]  # paired seeds
            for name, value in trial["params"].items():  # the runs are the trial's setting
                assert all(c[name] == value for c in configs), (arm["arm"], name)
            assert all(c["aux"] == ("none" if arm["arm"] == "main-only" else "supcon")
                       for c in configs)
            summaries = [read(tuned / name / "summary.json") for name in trial["runs"]]
            assert all(s["best_by"] == "val_loss" for s in summaries)
            score = sum(s["val_loss"] for s in summaries) / len(summaries)
            assert math.isclose(trial["score"], score, rel_tol=1e-12)
            scores.append(score)
        best = min(range(TRIALS), key=lambda i: (scores[i], i))  # lowest; ties: earlier
        assert arm["chosen"]["trial"] == best
        assert arm["chosen"]["params"] == arm["trials"][best]["params"]
    flood = tune["arms"][2]
    level = flood["space"][-1]
    assert level["name"] == "b" and level["relative_to"] > 0
    assert all(level["low"] <= t["params"]["b"] <= level["high"] for t in flood["trials"])
    assert flood["budget"]["reference_runs"] == SEEDS


def test_final_runs_use_fresh_paired_seeds_and_hold_the_only_test_metrics(tuned):
    tune = read(tuned / "tune.json")
    final = tune["final_seeds"]
    assert len(final) == FINAL and not set(final) & set(tune["tuning_seeds"])
    for arm in tune["arms"]:
        assert arm["final"]["seeds"] == final  # the same seeds for every arm: paired
        configs = [read(tuned / name / "config.json") for name in arm["final"]["runs"]]
        assert [c["seed"] for c in configs] == final
        for name, value in arm["chosen"]["params"].items():
            assert all(c[name] == value for c in configs)
        summaries = [read(tuned / name / "summary.json") for name in arm["final"]["runs"]]
        assert arm["final"]["per_seed"]["test_loss"] == [s["test_loss"] for s in summaries]
        used = {name for trial in arm["trials"] for name in trial["runs"]}
        assert not used & set(arm["final"]["runs"])


def test_the_journal_is_an_optuna_study_per_arm(tuned):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(tuned / "journal.log")))
    tune = read(tuned / "tune.json")
    for arm in tune["arms"]:
        study = optuna.load_study(study_name=arm["arm"], storage=storage)
        trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        assert [t.params for t in trials] == [t["params"] for t in arm["trials"]]
        assert [t.value for t in trials] == [t["score"] for t in arm["trials"]]
        assert study.best_trial.number == arm["chosen"]["trial"]


def test_report_and_plot_read_a_tune_folder(runner, tuned, tmp_path):
    import shutil

    folder = Path(shutil.copytree(tuned, tmp_path / tuned.name))
    result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    assert "flood beats tuned plain:" in result.output
    assert "the auxiliary loss" in result.output
    report = read(folder / "report.json")
    assert report["kind"] == "tune-report"
    assert [a["label"] for a in report["arms"]] == ["main-only", "plain", "flood"]
    assert "flood beats tuned plain" in (folder / "report.md").read_text()
    result = runner.invoke(app, ["plot", str(folder)])
    assert result.exit_code == 0, result.output
    for name in ("tune_history", "tune_final", "tune_params"):
        assert (folder / "plots" / f"{name}.png").read_bytes().startswith(b"\x89PNG\r\n")
    assert not list((folder / "plots").glob(".*"))  # no temporary file left behind


def test_the_api_mirrors_the_cli_and_a_rerun_trains_nothing(tuned):
    before = read(tuned / "tune.json")
    events = EventLog()
    result = api.tune(strategy="flood", trials=TRIALS, seeds=SEEDS, final_seeds=FINAL,
                      config=TINY, out=tuned.parent, events=events)
    assert Path(result["dir"]) == tuned
    assert events.by_run and all(set(got) == {"started", "skipped"}  # no epoch trained
                                 for got in events.by_run.values())
    for arm, again in zip(before["arms"], result["arms"], strict=True):
        assert again["trials"] == arm["trials"] and again["chosen"] == arm["chosen"]
        assert again["final"] == arm["final"]


def test_more_trials_continue_the_tune_and_best_counts_the_earlier_ones(tuned, tmp_path):
    """`--trials` is not part of the folder's name: a larger budget continues the same tune.
    Each new trial's record (the CLI prints it) gives the best score over every complete
    trial of its arm, the earlier session's included, in the direction of --select."""
    import shutil

    from lossbench.runner.tune import choose

    folder = tmp_path / tuned.name
    shutil.copytree(tuned, folder)
    records: list[tuple[str, dict]] = []
    result = api.tune(strategy="flood", trials=TRIALS + 1, seeds=SEEDS, final_seeds=FINAL,
                      config=TINY, out=tmp_path, on_trial=lambda arm, r: records.append((arm, r)))
    assert Path(result["dir"]) == folder
    assert [(arm, r["number"]) for arm, r in records] == [
        ("main-only", TRIALS), ("plain", TRIALS), ("flood", TRIALS)]
    for (_, record), arm in zip(records, result["arms"], strict=True):
        assert arm["trials"][:TRIALS] == next(
            a for a in read(tuned / "tune.json")["arms"] if a["arm"] == arm["arm"])["trials"]
        assert record["best"] == min(t["score"] for t in arm["trials"])  # val_loss: lowest
    higher = [{"number": 0, "score": 0.1, "per_seed": {"0": 0.1}, "params": {}},
              {"number": 1, "score": 0.2, "per_seed": {"0": 0.2}, "params": {}}]
    assert choose(higher, "val_ndcg10")["trial"] == 1 and choose(higher, "val_loss")["trial"] == 0


def tune_until_killed(out: str) -> None:
    """The body of a forked child: the fixture's tune through the API (which prints nothing)."""
    api.tune(strategy="flood", trials=TRIALS, seeds=SEEDS, final_seeds=FINAL, config=TINY,
             out=out, jobs=1)
    os._exit(0)


def test_a_killed_tune_resumes_to_the_choice_of_an_uninterrupted_one(runner, tuned, tmp_path):
    """SIGKILL in the second round (its first trial runs begun, none recorded); the same
    command then finishes the tune with exactly TRIALS trials per arm and the same trials,
    choice and final metrics as the uninterrupted tune (same machine: exact). The tune runs
    in a child forked from this process (torch and Optuna imported already, as PyTorch's
    DataLoader forks its workers), so the test pays no start-up."""
    out = tmp_path / "killed"
    child = multiprocessing.get_context("fork").Process(target=tune_until_killed,
                                                        args=(str(out),))
    child.start()
    first_round = 2 + 3 * SEEDS  # the reference runs, then 3 arms x SEEDS
    deadline = time.time() + 120
    while time.time() < deadline and child.exitcode is None:
        journals = list(out.glob("tune-*/journal.log"))
        runs = list(out.glob("tune-*/*/metrics.csv"))
        if journals and journals[0].read_text().count('"op_code":4') == 3 and \
                len(runs) > first_round:
            break
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    (folder,) = out.glob("tune-*")
    assert folder.name == tuned.name and not (folder / "tune.json").exists()
    resumed = runner.invoke(app, [*ARGS, "--out", str(out)])
    assert resumed.exit_code == 0, resumed.output
    want, got = read(tuned / "tune.json"), read(folder / "tune.json")
    assert (folder / "journal.log").read_text().count('"op_code":4') == 3 * TRIALS
    for arm, again in zip(want["arms"], got["arms"], strict=True):
        assert [t["params"] for t in again["trials"]] == [t["params"] for t in arm["trials"]]
        assert again["chosen"] == arm["chosen"] and again["final"] == arm["final"]


@pytest.mark.parametrize("bad, says", [
    (["--space", "nope=0:1"], "no arm of this tune has a parameter 'nope'"),
    (["--space", "b=1:0"], "empty or reversed"),
    (["--space", "b=2:2"], "empty or reversed"),
    (["--space", "lr=0:1:log"], "a log range must stay above 0"),
    (["--space", "lr=a:b"], "must be numbers"),
    (["--space", "alpha=0.1:2", "-s", "reweight"], "alpha must be in (0, 1]"),
    (["--space", "alpha=0.1:0.5", "-s", "reweight", "--alpha", "0.3"], "is fixed"),
    (["--trials", "0"], "--trials"),
    (["--final-seeds", "1"], "--final-seeds"),
    (["--tune", "n_items"], "cannot be tuned"),
    (["--tune", "model"], "cannot be tuned"),
    (["--tune", "hidden"], "no default tuning range"),
    (["--sampler", "anneal"], "--sampler must be one of"),
    (["--select", "test_loss"], "--select must be one of"),
])
def test_bad_input_is_one_line_and_writes_nothing(runner, tmp_path, bad, says):
    out = tmp_path / "out"
    result = runner.invoke(app, [*ARGS, "--out", str(out), *bad])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert says in result.stderr
    assert not out.exists()


def test_adaflood_arm_tunes_gamma_and_no_single_flood_level():
    """AdaFlood floods each example at its own level: its arm searches gamma, never a b, and
    `--space b=...` names nothing it has; iFlood keeps its b."""
    from lossbench.config import RunConfig
    from lossbench.errors import ConfigError
    from lossbench.runner.space import arm_dimensions, check_overrides

    dims = [d.name for d in arm_dimensions(RunConfig(), "reweight-adaflood", ["lr"], {}, set())]
    assert dims == ["lr", "alpha", "lam", "adaflood_gamma"]
    assert [d.name for d in arm_dimensions(RunConfig(), "iflood", [], {}, set())] == ["b"]
    with pytest.raises(ConfigError, match="no arm of this tune has a parameter 'b'"):
        check_overrides({"b": None}, set(), ["adaflood"], ["lr"])
