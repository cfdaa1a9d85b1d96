"""Config files by name (the experiments that ship with the package), `lossbench
experiments`, and the one-line message for an unknown setting."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lossbench.bundled import bundled_experiments, description
from lossbench.cli.app import app
from lossbench.config import flat, load_config, with_settings
from lossbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
NAMES = sorted(path.stem for path in EXPERIMENTS.glob("*.toml"))
TINY_SYNTHETIC = ["--set", "n_train_users=64", "--set", "n_val_users=32", "--set",
                  "n_test_users=32", "--set", "n_items=30", "--set", "hidden=16", "--set",
                  "inner=32", "--set", "batch_size=32", "--epochs", "1", "--set",
                  "eval_batch_size=64"]


def one_error_line(result, message: str) -> None:
    """Bad input: exit code 2, nothing on stdout, one `error:` line holding `message`."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]


# --- the experiments ship with the package ---------------------------------------------


def test_the_wheel_ships_the_top_level_experiments_folder():
    """pyproject.toml maps the package lossbench.experiments onto experiments/ (one copy of
    the files) with its *.toml as package data, and lists every package under lossbench/
    (the list is explicit, so a new sub-package must be added to it)."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"] == {"lossbench.experiments": "experiments"}
    assert tool["package-data"] == {"lossbench.experiments": ["*.toml"]}
    on_disk = {".".join(init.parent.relative_to(ROOT).parts)
               for init in (ROOT / "lossbench").rglob("__init__.py")}
    assert set(tool["packages"]) == on_disk | {"lossbench.experiments"}
    assert (EXPERIMENTS / "__init__.py").is_file()
    assert not (ROOT / "lossbench" / "experiments").exists()  # no second copy to drift


def test_bundled_experiments_are_the_files_of_the_experiments_folder():
    bundled = bundled_experiments()
    assert list(bundled) == NAMES and "ml-100k" in NAMES
    for name, path in bundled.items():
        assert path.samefile(EXPERIMENTS / f"{name}.toml")


def test_config_by_name_loads_the_bundled_file(tmp_path, monkeypatch):
    by_path = load_config(EXPERIMENTS / "ml-100k.toml")
    assert load_config("ml-100k") == load_config("ml-100k.toml") == by_path
    assert by_path.optim.lr == 0.004 and by_path.task.name == "movielens"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ml-100k").mkdir()  # say, the extracted MovieLens folder: not a config
    assert load_config("ml-100k") == by_path
    (tmp_path / "ml-100k.toml").write_text("lr = 0.25\n")  # a file of yours wins
    assert load_config("ml-100k.toml").optim.lr == 0.25
    assert load_config("ml-100k").optim.lr == 0.004


def test_run_with_a_bundled_config_name(runner, tmp_path):
    result = runner.invoke(app, ["run", "--config", "synthetic", *TINY_SYNTHETIC,
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (config,) = tmp_path.glob("*/*/config.json")
    assert json.loads(config.read_text())["noise"] == 0.9


def test_an_unknown_config_names_the_bundled_choices(runner, tmp_path):
    choices = "bundled experiments (--config NAME): " + ", ".join(NAMES)
    for value, problem in (("ml-100", "no config file or bundled experiment named 'ml-100'"),
                           ("no/such/file.toml", "config file not found: no/such/file.toml"),
                           (str(tmp_path), f"config {tmp_path} is a folder, not a file")):
        result = runner.invoke(app, ["run", "--config", value, "--out", str(tmp_path / "r")])
        one_error_line(result, f"{problem}; {choices}")
        assert result.stdout == ""
    assert not (tmp_path / "r").exists()


def test_experiments_lists_one_line_per_bundled_file(runner):
    result = runner.invoke(app, ["experiments"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(NAMES) + 1 and "lossbench run --config NAME" in lines[-1]
    for name, line in zip(NAMES, lines, strict=False):
        assert line.split()[0] == name
        assert line.endswith(description(EXPERIMENTS / f"{name}.toml"))
    ml_100k = lines[NAMES.index("ml-100k")]
    assert ml_100k.split(None, 1)[1] == ("MovieLens 100K, leave-one-out, full ranking (see "
                                         "lossbench/tasks/movielens.py).")


def test_experiments_json_gives_the_paths(runner):
    result = runner.invoke(app, ["experiments", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == NAMES
    synthetic = rows[NAMES.index("synthetic")]
    assert Path(synthetic["path"]).samefile(EXPERIMENTS / "synthetic.toml")
    assert synthetic["description"].startswith("The default experiment: the synthetic task")


def test_the_experiments_command_imports_no_torch():
    code = ("import sys\nfrom lossbench.cli import app\n"
            "app(['experiments'], prog_name='lossbench', standalone_mode=False)\n"
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# --- an unknown setting ----------------------------------------------------------------


def test_an_unknown_setting_suggests_the_closest_keys(runner, tiny, tmp_path):
    for pairs, message in (
            (["epoch=2"], "unknown setting 'epoch' in the command line; did you mean "
                          "'epochs'?"),
            (["time-col=when"], "unknown setting 'time-col' in the command line; did you "
                                "mean 'time_col'?"),
            (["xyzzy=1"], "unknown setting 'xyzzy' in the command line; the settings are "
                          "listed in the reference (lossbench/config/sections.py), the strategy "
                          "parameters by `lossbench strategies`")):
        args = [a for pair in pairs for a in ("--set", pair)]
        result = runner.invoke(app, ["run", "--config", str(tiny), *args,
                                     "--out", str(tmp_path)])
        one_error_line(result, message)
        assert len(result.stderr) < 250  # not the list of every key


def test_an_unknown_key_in_a_config_file_suggests_too(runner, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim]\nbatch_sise = 8\n")
    result = runner.invoke(app, ["run", "--config", str(bad), "--out", str(tmp_path)])
    one_error_line(result, f"unknown setting 'batch_sise' in {bad}; did you mean "
                           "'batch_size' or 'eval_batch_size'?")


# --- the configuration in sections ----------------------------------------------------


def test_a_toml_table_may_name_its_section(tmp_path):
    """`[model] dropout = 0.4` sets what the flat key does; a key in another section's
    table, or an unknown table, is one line naming where it belongs."""
    flat_file, tables = tmp_path / "flat.toml", tmp_path / "tables.toml"
    flat_file.write_text('dropout = 0.4\nlr = 0.1\nn_items = 40\nalpha = 0.3\n')
    tables.write_text('[model]\ndropout = 0.4\n[optim]\nlr = 0.1\n[task.synthetic]\n'
                      'n_items = 40\n[strategy]\nalpha = 0.3\n')
    by_table = load_config(tables)
    assert by_table == load_config(flat_file)
    assert (by_table.model.dropout, by_table.optim.lr, by_table.task.synthetic.n_items,
            by_table.strategy.params) == (0.4, 0.1, 40, {"alpha": 0.3})
    for text, message in (("[optim]\ndropout = 0.4\n", "'dropout' is not a setting of "
                           "[optim]; it belongs to [model]"),
                          ("[models]\ndropout = 0.4\n", "unknown table [models]")):
        wrong = tmp_path / "wrong.toml"
        wrong.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(wrong)


def test_each_part_takes_its_own_section(tiny):
    """The sections a user's settings land in, and the flat keys that read them back."""
    cfg = load_config(tiny, {"hidden": 8, "lr": 0.2, "epochs": 2, "b": 1.5, "aux": "none"})
    assert (cfg.model.hidden, cfg.optim.lr, cfg.train.epochs, cfg.strategy.b,
            cfg.losses.aux) == (8, 0.2, 2, 1.5, "none")
    values = flat(cfg)
    assert (values["hidden"], values["lr"], values["epochs"], values["b"]) == (8, 0.2, 2, 1.5)
    assert with_settings(cfg, {"hidden": 16}).model.hidden == 16
