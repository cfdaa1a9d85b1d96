"""Config files: the one-line message for an unknown setting."""

from __future__ import annotations

from lossbench.cli import app


def one_error_line(result, message: str) -> None:
    """Bad input: exit code 2, nothing on stdout, one `error:` line holding `message`."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]


# --- an unknown setting ----------------------------------------------------------------


def test_an_unknown_setting_suggests_the_closest_keys(runner, tiny, tmp_path):
    for pairs, message in (
            (["epoch=2"], "unknown setting 'epoch' in the command line; did you mean "
                          "'epochs'?"),
            (["time-col=when"], "unknown setting 'time-col' in the command line; did you "
                                "mean 'time_col'?"),
            (["xyzzy=1"], "unknown setting 'xyzzy' in the command line; the settings are "
                          "RunConfig's fields (lossbench/config.py), the strategy parameters "
                          "those `lossbench strategies` lists")):
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
