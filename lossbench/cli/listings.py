"""`lossbench strategies` and `lossbench experiments`: what lossbench can compare, and the
experiment files that ship with it. Neither imports torch to list (the registry and the
bundled files are torch-free); `strategies` does to describe each strategy's class.

    lossbench experiments              # each file's name and what it is for
    lossbench experiments --json       # the same with each file's path (copy one to change it)
    lossbench run --config ml-100k     # run one by its name (lossbench.bundled.resolve_config)
"""

from __future__ import annotations

import json
import textwrap
from typing import Annotated

import typer
from rich.text import Text

from lossbench.bundled import describe_bundled
from lossbench.cli.app import app, guard
from lossbench.cli.display import console


@app.command("strategies", short_help="List every strategy: formula, parameters, citation.")
def strategies_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """Every registered strategy: its formula, parameters with defaults and ranges, logged
    state, flooded variants, the baseline it is compared with, and its citation; then the
    flooding modifiers and their flood levels."""
    from lossbench import api  # here, not at the top: api imports torch, --help must not

    with guard():
        rows = api.strategies()
        if as_json:
            print(json.dumps(rows, indent=2, default=str))
            return
        for row in rows:
            console.print(strategy_block(row), highlight=False)
        console.print("Groups: all = plain, reweight, flood, reweight-flood; builtins = every "
                      "built-in weighting that needs no extra, flood, reweight-flood, iflood; "
                      "jd = torchjd's gradient aggregators (lossbench[jd]). Plugins: --strategy "
                      "module:Class, or the entry-point group lossbench.strategies.",
                      markup=False, highlight=False)


def strategy_block(row: dict) -> Text:
    """One strategy of `lossbench strategies`: its name, formula, parameters, logs, flooded
    variants, baseline and citation, as lines that wrap in any terminal width."""
    notes = [*(["combines gradients"] if row["gradients"] else []),
             *([f"needs lossbench[{row['extra']}]"
                + ("" if row["installed"] else ", not installed")] if row["extra"] else [])]
    kind = f" ({'; '.join(notes)})" if notes else ""
    text = Text(f"{row['name']}{kind}\n", style="bold")
    text.append(textwrap.indent(row["doc"], "    ") + "\n")
    for p in row["params"]:
        bound = f", {p['range']}" if p["range"] else ""
        text.append(f"  --{p['name'].replace('_', '-')} {p['type']} = {p['default']}{bound}: "
                    f"{p['doc']}\n")
    facts = [("logs", ", ".join(row["logs"])), ("as", ", ".join(row["variants"])),
             ("compared with", row["baseline"]), ("citation", row["citation"]),
             ("install", f'pip install "lossbench[{row["extra"]}]"'
              if row["extra"] and not row["installed"] else "")]
    for name, value in facts:
        if value and value != "-":
            text.append(f"  {name}: {value}\n")
    return text


EXPERIMENTS_HELP = "List the experiment files that ship with lossbench."
"""The command's one-sentence summary in `lossbench --help`."""
JsonOpt = Annotated[bool, typer.Option(
    "--json", help="Print name, description and path of each file as JSON.")]


def experiment_lines(rows: list[dict[str, str]]) -> list[str]:
    """One line per experiment: its name, padded to the longest, then its description."""
    width = max((len(row["name"]) for row in rows), default=0)
    return [f"{row['name']:<{width}}  {row['description']}".rstrip() for row in rows]


@app.command("experiments", short_help=EXPERIMENTS_HELP)
def experiments_command(as_json: JsonOpt = False) -> None:
    """The experiment files that ship with lossbench, one line each: name and what it is
    for. Run one with `lossbench run --config NAME`."""
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
