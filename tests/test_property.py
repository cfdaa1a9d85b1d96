"""Property-based bad input: whatever a user types or writes, lossbench answers with exit 0 or
one `error:` line and exit 2, never a traceback.

Hypothesis profiles: CI runs a fixed set of examples (`ci`, derandomized: reproducible);
locally `HYPOTHESIS_PROFILE=explore python -m pytest tests/test_property.py` searches afresh.
They are set here, not in conftest.py, so that only the test process that runs this file
imports hypothesis (about 2 s on 2 cores).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lossbench.cli.app import app
from lossbench.config import setting_params

CHEAP = ["--set", "task=synthetic", "--set", "n_items=20", "--set", "n_train_users=32",
         "--set", "n_val_users=16", "--set", "n_test_users=16", "--set", "seq_len=4",
         "--set", "hidden=8", "--set", "inner=8", "--set", "n_layers=1", "--set", "n_heads=1",
         "--set", "batch_size=16", "--set", "epochs=1", "--set", "eval_batch_size=64",
         "--set", "taste_dim=4", "--set", "markov_fanout=2", "--set", "max_len=8"]
"""Appended last, so random values never make a valid run expensive."""
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

FIXTURES = [HealthCheck.function_scoped_fixture]  # tmp_path is reused across examples: fine

CHEAP_KEYS = sorted(set(setting_params()) - {a.split("=")[0] for a in CHEAP[1::2]} - {"seed"})
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
NUMBER = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True))
VALUE = st.one_of(TEXT, NUMBER.map(str), st.sampled_from(["true", "false", "", "1e400",
                                                            "-0", "0x10", "nan"]))
OPTIONS = st.lists(st.one_of(
    st.tuples(st.sampled_from(["--strategy", "--b", "--alpha", "--lam", "--theta0", "--seeds",
                               "--seed", "--aux", "--model", "--device", "--epochs",
                               "--task"]), VALUE),
    st.tuples(st.just("--set"), st.builds(lambda k, v: f"{k}={v}",
                                          st.sampled_from(CHEAP_KEYS + ["bogus", ""]), VALUE)),
    st.tuples(st.sampled_from(["--detach-theta", "--keep-theta-grad", "--nonsense"]),
              st.none()),
), max_size=4)


def check(result) -> None:
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def flatten(options) -> list[str]:
    return [x for name, value in options for x in ((name,) if value is None else (name, value))]


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES)
@given(options=OPTIONS)
def test_run_with_random_options(tmp_path, options):
    args = ["run", *flatten(options), *CHEAP, "--seeds", "1", "--out", str(tmp_path / "r")]
    check(CliRunner().invoke(app, args))


@settings(max_examples=12, deadline=None, suppress_health_check=FIXTURES)
@given(options=OPTIONS, grid=st.one_of(st.none(), TEXT, st.lists(NUMBER, max_size=3)
                                       .map(lambda xs: ",".join(map(str, xs)))),
       b_range=st.one_of(st.none(), TEXT, st.tuples(NUMBER, NUMBER, st.integers(-2, 3))
                         .map(lambda t: ":".join(map(str, t)))))
def test_sweep_with_random_options(tmp_path, options, grid, b_range):
    args = ["sweep-b", *[x for x in flatten(options) if x not in ("--strategy",)],
            *(["--b-grid", grid] if grid is not None else []),
            *(["--b-range", b_range] if b_range is not None else []),
            *CHEAP, "--seeds", "1", "--out", str(tmp_path / "s")]
    check(CliRunner().invoke(app, args))


TOML_VALUE = st.one_of(st.integers(-10**9, 10**9), st.floats(allow_nan=False), st.booleans(),
                       TEXT, st.lists(st.integers(), max_size=2))


def toml_literal(value) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES)
@given(pairs=st.dictionaries(st.sampled_from(CHEAP_KEYS + ["bogus", "task"]), TOML_VALUE,
                             max_size=4),
       junk=st.one_of(st.just(""), TEXT, st.binary(max_size=20).map(lambda b: b.decode("latin-1"))))
def test_run_with_random_toml(tmp_path, pairs, junk):
    text = "".join(f"{k} = {toml_literal(v)}\n" for k, v in pairs.items()) + junk
    config = tmp_path / "random.toml"
    config.write_text(text, encoding="utf-8")
    args = ["run", "--config", str(config), *CHEAP, "--out", str(tmp_path / "r")]
    check(CliRunner().invoke(app, args))


@settings(max_examples=15, deadline=None, suppress_health_check=FIXTURES)
@given(files=st.dictionaries(st.sampled_from(["config.json", "metrics.csv", "summary.json"]),
                             st.one_of(st.binary(max_size=60), TEXT.map(str.encode),
                                       st.just(b'{"status": "complete"}'),
                                       st.just(b"epoch,val_loss\n1,2.0\n")), max_size=3),
       verb=st.sampled_from([["report"], ["plot"], ["plot", "--format", "svg"]]))
def test_report_and_plot_on_random_run_folders(tmp_path, files, verb):
    folder = tmp_path / "results" / "exp" / "synthetic__plain__b0__s0__abc123"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "metrics.csv", "summary.json"):
        (folder / name).unlink(missing_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    check(CliRunner().invoke(app, [verb[0], str(tmp_path / "results"), *verb[1:]]))


def test_truncated_checkpoint_is_a_clear_error(runner, tiny, tmp_path):
    result = runner.invoke(app, ["run", "--config", str(tiny), "--out", str(tmp_path)])
    assert result.exit_code == 0
    (folder,) = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    (folder / "summary.json").unlink()
    (folder / "checkpoint.pkl").write_bytes(b"PK\x03\x04 truncated")
    again = runner.invoke(app, ["run", "--config", str(tiny), "--out", str(tmp_path)])
    assert again.exit_code == 2
    assert "checkpoint.pkl" in again.stderr and len(again.stderr.strip().splitlines()) == 1


def test_foreign_pickle_as_checkpoint_is_a_clear_error(runner, tiny, tmp_path):
    import pickle

    runner.invoke(app, ["run", "--config", str(tiny), "--out", str(tmp_path)])
    (folder,) = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    (folder / "summary.json").unlink()
    (folder / "checkpoint.pkl").write_bytes(pickle.dumps({"epoch": 2, "model": {}}))
    again = runner.invoke(app, ["run", "--config", str(tiny), "--out", str(tmp_path)])
    assert again.exit_code == 2
    assert "not a lossbench checkpoint" in again.stderr and "checkpoint.pkl" in again.stderr


def test_corrupt_summary_is_rerun_and_corrupt_metrics_named_by_report(runner, tiny, tmp_path):
    runner.invoke(app, ["run", "--config", str(tiny), "--out", str(tmp_path)])
    (folder,) = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    (folder / "metrics.csv").write_text("epoch,train_loss\n1,abc\n")
    result = runner.invoke(app, ["report", str(folder.parent)])
    assert result.exit_code == 2 and "metrics.csv" in result.stderr
    rerun = runner.invoke(app, ["run", "--config", str(tiny), "--out", str(tmp_path)])
    assert rerun.exit_code == 0 and "skipped" not in rerun.stdout
    assert json.loads((folder / "summary.json").read_text())["status"] == "complete"
    assert Path(folder / "metrics.csv").read_text().count("\n") == 4
