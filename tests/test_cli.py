"""The command line as a user first meets it: `--help` on every command, fast (no torch),
readable (one full sentence per command, option values named), and the Python API taking
the same defaults as the CLI."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import typer.main

from lossbench import api
from lossbench.cli.app import app

COMMAND = typer.main.get_command(app)


def every_command_path() -> list[list[str]]:
    """[["run"], ["data", "info"], ...]: every command a user can ask `--help` of."""
    paths = []
    for name, command in COMMAND.commands.items():
        if hasattr(command, "commands"):  # a group: data
            paths += [[name, sub] for sub in command.commands]
        paths.append([name])
    return paths


def test_no_help_imports_torch():
    """`lossbench --help` and every `lossbench COMMAND --help` in one fresh interpreter: torch
    (about 3 s of imports) and numpy are never imported."""
    code = ("import sys\n"
            "from lossbench.cli.app import app\n"
            f"for path in {[[], *every_command_path()]!r}:\n"
            "    try:\n"
            "        app([*path, '--help'], prog_name='lossbench')\n"
            "    except SystemExit as exit:\n"
            "        assert exit.code == 0, (path, exit.code)\n"
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("group", [[], ["data"]], ids=["lossbench", "data"])
def test_help_gives_each_command_a_whole_sentence(runner, group):
    result = runner.invoke(app, [*group, "--help"], terminal_width=100)
    assert result.exit_code == 0
    listed = result.stdout.split("Commands:")[1]
    for name, command in command_at(group).commands.items():
        assert command.short_help, name
        assert " ".join(command.short_help.split()) in " ".join(listed.split()), name
    assert "..." not in listed
    if not group:  # the main job leads
        assert listed.split()[:3] == ["run", "Train", "and"]


def command_at(path: list[str]):
    command = COMMAND
    for name in path:
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", every_command_path(), ids=" ".join)
def test_help_names_option_values_and_prints_brackets(runner, path):
    """Every option that takes a value names it (`--seeds N`), never Typer's type names
    (`<list[str]>`, `<bool>` on a flag); help texts keep their brackets (`lossbench[ray]`)."""
    for param in command_at(path).params:
        if param.param_type_name == "option" and not param.is_flag and not param.count:
            assert param.metavar, (path, param.name)
    result = runner.invoke(app, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert "<list[" not in result.stdout and "<bool>" not in result.stdout
    if "--backend" in result.stdout:
        assert 'pip install "lossbench[ray]"' in " ".join(result.stdout.split())


def test_strategy_parameters_are_listed_as_options(runner):
    result = runner.invoke(app, ["sweep", "--help"], terminal_width=100)
    section = result.stdout.split("Strategy parameters")[1]
    assert "--dwa-temp FLOAT" in section and "--gcs-weighted " in section
    assert "[reweight, default 0.1, in (0, 1]]" in " ".join(section.split())


API_OF = {"run": [api.run], "sweep": [api.sweep], "sweep-b": [api.sweep_b, api.sweep],
          "report": [api.report], "plot": [api.plot], "export": [api.export]}
"""Command -> the API function (and the one it passes its **kwargs to)."""
CLI_ONLY_DEFAULTS = {"jobs": "auto"}
"""Defaults that differ on purpose: the API runs in the caller's process (jobs 1, see
api.run), the CLI in parallel workers."""


@pytest.mark.parametrize("name", list(API_OF))
def test_the_api_takes_the_cli_defaults(name):
    """Each API function mirrors its command: an option and the parameter of the same name
    have the same default (--resume is the API's restart=False)."""
    signature = {}
    for function in reversed(API_OF[name]):
        signature.update(inspect.signature(function).parameters)
    compared = 0
    for param in COMMAND.commands[name].params:
        if param.required:
            continue
        key = {"format_": "fmt", "range_": "value_range"}.get(param.name, param.name)
        if key == "resume":
            assert param.default is True and signature["restart"].default is False
            continue
        if key not in signature or signature[key].default is inspect.Parameter.empty:
            continue
        default = param.default
        if key in CLI_ONLY_DEFAULTS:
            assert default == CLI_ONLY_DEFAULTS[key]
            continue
        api_default = signature[key].default
        assert str(default) == str(api_default), (name, key, default, api_default)
        compared += 1
    assert compared >= 1
