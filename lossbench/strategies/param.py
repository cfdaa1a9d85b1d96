"""A setting's declaration: its name, default (whose type is the setting's type), doc, valid
range or choices, and the one function that reads a value of it (from TOML, `--set` or an
option). Strategy parameters are `Param`s, and so is every field of the run configuration
(lossbench/config.py builds them from its dataclasses): one checker for every value.

A parameter may also declare a tuning range (`Search`): where `lossbench tune` looks for
its value, next to its default and its valid range.

Torch-free, like the rest of what the registry knows before a strategy is built: the
command line lists every parameter in `--help` without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lossbench.errors import ConfigError


@dataclass(frozen=True)
class Search:
    """A tuning range: [low, high] on a linear scale, or on a log scale (`log`: sampled
    uniformly in log(value), low > 0), or the `choices` listed. `relative`: low and high are
    multiples of a reference value known only when the tune starts (the flood level's: the
    no-flood baseline's training loss; a setting's: its configured value)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    relative: bool = False
    choices: tuple = ()

    def text(self) -> str:
        """`0.01..10 (log)`, `0.5x..1.1x`, `false, true`: for help, tables and errors."""
        if self.choices:
            return ", ".join(str(c).lower() if isinstance(c, bool) else str(c)
                             for c in self.choices)
        x = "x" if self.relative else ""
        return f"{self.low:g}{x}..{self.high:g}{x}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class Param:
    """A setting: name, default (its type is the setting's type), a one-line doc, an
    optional range [lo, hi] (open at an end with `lo_open`/`hi_open`) or `choices`, and an
    optional tuning range `search` (None: `lossbench tune` leaves it at its value unless
    `--space` gives a range)."""

    name: str
    default: Any
    doc: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    search: Search | None = None

    @property
    def type(self) -> type:
        return type(self.default)

    def bound_text(self) -> str:
        """`in (0, 1]`, `>= 0`, `< 5`, or '' without a range: for docs and errors."""
        if self.lo is not None and self.hi is not None:
            return (f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}"
                    f"{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return ""

    def check(self, value: Any, where: str = "") -> Any:
        """`value` converted to the setting's type (`parse`) and checked against its range
        or choices; a ConfigError naming the setting (and `where`, e.g. " in FILE")
        otherwise."""
        out = parse(self.type, value)
        if out is None:
            raise ConfigError(f"setting '{self.name}'{where} must be {self.type.__name__}, "
                              f"got {value!r}")
        if self.choices and out not in self.choices:
            raise ConfigError(f"unknown {self.name} '{out}'{where}; choose one of: "
                              f"{', '.join(self.choices)}")
        if isinstance(out, float) and not math.isfinite(out):
            raise ConfigError(f"{self.name} must be a finite number, got {out}{where}")
        too_low = self.lo is not None and (out <= self.lo if self.lo_open else out < self.lo)
        too_high = self.hi is not None and (out >= self.hi if self.hi_open else out > self.hi)
        if too_low or too_high:
            raise ConfigError(f"{self.name} must be {self.bound_text()}, got {out}{where}")
        return out


def parse(want: type, value: Any) -> Any:
    """`value` as a `want` (bool, int, float or str), or None when it is not one. Strings (from
    the command line) are parsed: true/false/yes/no/1/0 for a bool, Python's int() and
    float() for numbers; a bool is never taken for a number, an int is a float."""
    if want is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0",
                                                                 "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        return None
    if isinstance(value, bool):
        return None
    if want is int:
        if isinstance(value, int):
            return value
        try:
            return int(value) if isinstance(value, str) else None
        except ValueError:
            return None
    if want is float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return float(value) if isinstance(value, str) else None
        except ValueError:
            return None
    return value if isinstance(value, want) else None
