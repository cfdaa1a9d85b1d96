"""`lossbench experiments`: the experiment files that ship with lossbench, one line each.

    lossbench experiments              # each file's name and what it is for
    lossbench experiments --json       # the same with each file's path (copy one to change it)
    lossbench run --config ml-100k     # run one by its name (lossbench.bundled.resolve_config)

Registered in cli.py with `app.command("experiments", short_help=EXPERIMENTS_HELP)(
experiments_command)`. Importing this module imports no torch (typer, rich,
lossbench.bundled); cli.py's `guard` is imported when the command runs, as cli_export.py does.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from lossbench.bundled import describe_bundled
from lossbench.cli.display import console

EXPERIMENTS_HELP = "List the experiment files that ship with lossbench."
"""The command's one-sentence summary in `lossbench --help`."""
JsonOpt = Annotated[bool, typer.Option(
    "--json", help="Print name, description and path of each file as JSON.")]


def experiment_lines(rows: list[dict[str, str]]) -> list[str]:
    """One line per experiment: its name, padded to the longest, then its description."""
    width = max((len(row["name"]) for row in rows), default=0)
    return [f"{row['name']:<{width}}  {row['description']}".rstrip() for row in rows]


def experiments_command(as_json: JsonOpt = False) -> None:
    """The experiment files that ship with lossbench, one line each: name and what it is
    for. Run one with `lossbench run --config NAME`."""
    from lossbench.cli.app import guard

    with guard():
        rows = describe_bundled()
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        for line in experiment_lines(rows) or ["(none: this installation ships no "
                                               "experiment files)"]:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        console.print("run one: lossbench run --config NAME (--json gives the files' paths; "
                      "copy one to change it)", markup=False, highlight=False, soft_wrap=True)
