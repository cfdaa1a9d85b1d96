"""The options of the `lossbench` commands, declared once, and the strategy parameters as
command-line options generated from the registry (lossbench/strategies/).

    lossbench run --strategy reweight --alpha 0.3 --detach-theta --strategy weighted --w 0.2

Every registered parameter is an option `--<name>` (underscores as dashes); a bool parameter
is a flag with a `--no-<name>` twin. Plugins' parameters work the same once the plugin is
named with --strategy. `StrategyCommand` lists them in the commands' help.

Every option names its value (`metavar`): help reads `--seeds N`, `--config FILE|NAME`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from lossbench import strategies as registry
from lossbench.config import parse_set
from lossbench.errors import ConfigError

STRATEGY_OPTIONS = {"allow_extra_args": True, "ignore_unknown_options": True}
"""Context settings of the commands that take strategy parameters as options: click leaves
the options it does not know in ctx.args, and `parse_strategy_options` reads them."""


class StrategyCommand(TyperCommand):
    """A command that takes strategy parameters as options: its help ends with a "Strategy
    parameters" section listing them like the other options (`strategy_param_rows`)."""

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        with formatter.section("Strategy parameters (also --set NAME=VALUE or in --config)"):
            formatter.write_dl(strategy_param_rows())
        super().format_epilog(ctx, formatter)


def strategy_param_rows() -> list[tuple[str, str]]:
    """(`--name TYPE`, `doc [owners; default, range]`) for every registered parameter: the
    built-ins' and those of the plugins loaded so far."""
    rows = []
    for name, param in registry.all_params().items():
        flag = f"--{name.replace('_', '-')}"
        if param.type is not bool:
            flag += f" {param.type.__name__.upper()}"
        facts = ", ".join([*registry.owners(name), f"default {param.default}",
                           *([param.bound_text()] if param.bound_text() else [])])
        rows.append((flag, f"{param.doc} [{facts}]"))
    return rows


def parse_strategy_options(args: list[str]) -> dict[str, Any]:
    """`--alpha 0.3 --detach-theta --no-gcs-weighted --w=0.2` -> {"alpha": "0.3",
    "detach_theta": True, "gcs_weighted": False, "w": "0.2"} (values are checked later, by
    the registry). Anything else is the error click would give: no such option."""
    params = registry.all_params()
    out: dict[str, Any] = {}
    rest = list(args)
    while rest:
        token = rest.pop(0)
        if not token.startswith("--"):
            raise ConfigError(f"Got unexpected extra argument ({token})")
        key, has_value, value = token[2:].partition("=")
        name = key.replace("-", "_")
        negated = name.startswith("no_") and name[3:] in params
        if negated or (name in params and params[name].type is bool):
            target = name[3:] if negated else name
            if has_value:
                raise ConfigError(f"option {token.split('=')[0]} is a flag and takes no value")
            out[target] = not negated
        elif name in params:
            if not has_value:
                if not rest:
                    raise ConfigError(f"Option '{token}' requires an argument.")
                value = rest.pop(0)
            out[name] = value
        else:
            raise ConfigError(f"No such option: {token.split('=')[0]}")
    return out


DataDirOpt = Annotated[str | None, typer.Option(
    metavar="DIR",
    help="movielens: data folder (default $LOSSBENCH_DATA_DIR, else ~/.cache/lossbench).")]
DataFileOpt = Annotated[str | None, typer.Option(
    "--data", metavar="FILE",
    help="interactions: your file (CSV/TSV with a header, RecBole .inter, Parquet); "
    "implies --task interactions.")]
UserColOpt = Annotated[str | None, typer.Option(
    metavar="COLUMN", help="interactions: user id column (default: user_id, userId or user).")]
ItemColOpt = Annotated[str | None, typer.Option(
    metavar="COLUMN",
    help="interactions: item id column (default: item_id, itemId, movieId or item).")]
TimeColOpt = Annotated[str | None, typer.Option(
    metavar="COLUMN", help="interactions: timestamp column (default: timestamp, time or ts).")]
RatingColOpt = Annotated[str | None, typer.Option(
    metavar="COLUMN", help="interactions: rating column (default: rating, if present).")]
MinRatingOpt = Annotated[float | None, typer.Option(
    metavar="RATING",
    help="movielens, interactions: keep ratings >= this (0 = all, RecBole's default).")]
KCoreOpt = Annotated[int | None, typer.Option(
    metavar="K",
    help="movielens, interactions: keep users and items with >= k interactions (0 = off).")]
JobsOpt = Annotated[str, typer.Option(
    envvar="LOSSBENCH_JOBS", show_envvar=True, metavar="N|auto",
    help="Worker processes for independent runs: a number, or auto (CPU: one per core, at "
    "most one per run; CUDA: one per GPU).")]
ThreadsOpt = Annotated[int | None, typer.Option(
    min=1, metavar="N", help="torch threads per run (default 1, so CPU results do not "
    "depend on the machine's core count; more threads give other last digits).")]
StrategyOpt = Annotated[list[str] | None, typer.Option(
    "--strategy", "-s", metavar="NAME",
    help="A strategy (plain, reweight, flood, reweight-flood, weighted, "
    "uncertainty, dwa, gcs, pcgrad, iflood, adaflood, any X-flood, X-iflood or X-adaflood; "
    "see lossbench "
    "strategies), a group (all = plain, reweight, flood, reweight-flood; builtins) or a "
    "plugin module:Class; repeatable.")]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", metavar="FILE|NAME", help="TOML file of settings (see experiments/).")]
BExampleOpt = Annotated[float | None, typer.Option(
    metavar="B", help="Flood level of example flooding (X-iflood), on one L_main example's "
    "scale; negative = --b.")]
SeedOpt = Annotated[int | None, typer.Option(min=0, metavar="N", help="First seed.")]
TaskOpt = Annotated[str | None, typer.Option(
    metavar="NAME", help="synthetic (default), movielens or interactions (your own file, --data).")]
DatasetOpt = Annotated[str | None, typer.Option(
    metavar="NAME", help="movielens: ml-100k or ml-1m.")]
EpochsOpt = Annotated[int | None, typer.Option(metavar="N", help="Training epochs.")]
DeviceOpt = Annotated[str | None, typer.Option(metavar="NAME", help="auto, cpu or cuda.")]
OutOpt = Annotated[Path, typer.Option(metavar="DIR", help="Results folder.")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume/--restart", help="Unfinished runs (killed or interrupted) continue from their "
    "checkpoint (--resume, the default) or start afresh (--restart). Complete runs are "
    "skipped either way; delete a run folder to redo it.")]
BackendOpt = Annotated[str, typer.Option(
    metavar="local|ray",
    help="local (this machine: --jobs worker processes) or ray (every run a Ray task; "
    "pip install \"lossbench[ray]\").")]
AddressOpt = Annotated[str | None, typer.Option(
    metavar="ADDRESS",
    help="ray: the cluster to join (auto, ray://host:10001, or $RAY_ADDRESS); default: a "
    "local Ray on all cores.")]
StorageOpt = Annotated[str | None, typer.Option(
    metavar="PATH|URL",
    help="ray: where workers keep checkpoints and results between epochs (a path or an "
    "fsspec URL such as s3://bucket/lossbench); default: the results folder.")]
NumCpusOpt = Annotated[float | None, typer.Option(
    metavar="N", help="ray: CPUs per run (fractions allowed; default 1).")]
NumGpusOpt = Annotated[float | None, typer.Option(
    metavar="N",
    help="ray: GPUs per run (fractions allowed, so small runs share a GPU; default 0).")]
FuseOpt = Annotated[bool | None, typer.Option(
    "--fuse/--no-fuse", show_default=False, help="Train the runs of a seed as one stacked "
    "model (torch.vmap). Default: on with CUDA, off on the CPU. Runs that cannot fuse "
    "(uncertainty, gcs, pcgrad, gru, dropout on CUDA) run unfused.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE", help="Override any setting: --set key=value (repeatable).")]


def collect_overrides(options: dict[str, Any], pairs: list[str] | None) -> dict[str, Any]:
    """CLI overrides: the options the user gave (not None), then --set key=value pairs. A
    data file without a task means --task interactions."""
    overrides = {k: v for k, v in options.items() if v is not None}
    overrides.update(parse_set(pairs or []))
    if overrides.get("data") and "task" not in overrides:
        overrides["task"] = "interactions"
    return overrides



ResultsArg = Annotated[Path | None, typer.Argument(
    metavar="RESULTS_DIR",
    help="A results folder: one run, an experiment (run --strategy all) or a sweep. "
    "Default: the most recently written folder under --out.", show_default=False)]
ReadOutOpt = Annotated[Path, typer.Option(
    metavar="DIR", help="Where to look for the most recent results folder when none is given.")]
