"""Time `lossbench --help` and every `lossbench COMMAND --help` as a user starts them.

    python benchmarks/bench_cli_help.py              # best of 5 runs per command
    python benchmarks/bench_cli_help.py --repeats 1  # one run each (CI: it still runs)

Each command runs as a subprocess (`python -m lossbench ... --help`, interpreter start-up
included), `--repeats` times; the table gives the best and the median wall time, and the
last line the slowest command's best time. The target (issue 26) is 0.5 s on 2 cores: help
must not import torch (tests/test_cli.py checks that; this script measures the time).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def command_paths() -> list[list[str]]:
    """[], ["run"], ["data", "info"], ...: every command of the app (read from it)."""
    import typer.main

    from lossbench.cli.app import app

    root = typer.main.get_command(app)
    paths: list[list[str]] = [[]]
    for name, command in root.commands.items():
        paths.append([name])
        paths += [[name, sub] for sub in getattr(command, "commands", {})]
    return paths


def wall_time(args: list[str]) -> float:
    """Seconds for `python -m lossbench ARGS` to finish (exit code 0 required)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lossbench", *args], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command")
    args = parser.parse_args()
    print("| command | best s | median s |\n| --- | ---: | ---: |")
    worst = 0.0
    for path in command_paths():
        times = [wall_time([*path, "--help"]) for _ in range(args.repeats)]
        worst = max(worst, min(times))
        print(f"| lossbench {' '.join([*path, '--help'])} | {min(times):.2f} | "
              f"{statistics.median(times):.2f} |")
    print(f"slowest --help, best of {args.repeats}: {worst:.2f} s")


if __name__ == "__main__":
    main()
