"""A strategy parameter: its name, default (whose type is the parameter's type), doc and valid
range, and the one function that reads a value of it (from TOML, `--set` or an option).

Torch-free, like the rest of what the registry knows before a strategy is built: the
command line lists every parameter in `--help` without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lossbench.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """A registered strategy parameter: name, default (its type is the parameter's type), a
    one-line doc, and an optional range [lo, hi] (open at an end with `lo_open`/`hi_open`)."""

    name: str
    default: Any
    doc: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

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
        """`value` converted to the parameter's type and checked against its range; a
        ConfigError naming the parameter otherwise. Strings (from the command line) are
        parsed."""
        want = self.type
        out: Any = None
        if want is bool:
            if isinstance(value, bool):
                out = value
            elif isinstance(value, str) and value.lower() in ("true", "false", "1", "0",
                                                               "yes", "no"):
                out = value.lower() in ("true", "1", "yes")
        elif want is int:
            if isinstance(value, int) and not isinstance(value, bool):
                out = value
            elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
                out = int(value)
        elif want is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                out = float(value)
            elif isinstance(value, str):
                try:
                    out = float(value)
                except ValueError:
                    pass
        elif want is str and isinstance(value, str):
            out = value
        if out is None:
            raise ConfigError(f"setting '{self.name}'{where} must be {want.__name__}, "
                              f"got {value!r}")
        if isinstance(out, float) and not math.isfinite(out):
            raise ConfigError(f"{self.name} must be a finite number, got {out}{where}")
        too_low = self.lo is not None and (out <= self.lo if self.lo_open else out < self.lo)
        too_high = self.hi is not None and (out >= self.hi if self.hi_open else out > self.hi)
        if too_low or too_high:
            raise ConfigError(f"{self.name} must be {self.bound_text()}, got {out}{where}")
        return out
