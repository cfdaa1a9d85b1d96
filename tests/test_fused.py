"""Fused training (lossbench/training/fused.py): the runs of a seed trained as one stacked
model must write what the same runs write one after another.

Tolerance: fused and unfused runs compute the same formulas with batched kernels that sum in
another order, so they differ by float32 rounding. TOL (relative 1e-5) is ~70x the largest
difference measured on tests/tiny.toml (1.5e-7 on the CPU, every number of metrics.csv and
summary.json, up to 10 epochs), and far below what a real mismatch gives (another augmented
view or batch changes the losses by ~1e-2). Runs with equal weights inside one group compute
identically (checked exactly).

`LOSSBENCH_FUSED_TEST_DEVICE=cuda python -m pytest tests/test_fused.py` runs them on a GPU
(benchmarks/gpu_fused.sh does).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from helpers import TINY

from lossbench.config import flat, load_config
from lossbench.errors import ConfigError
from lossbench.events import Events
from lossbench.results.folders import read_metrics, run_dir_name
from lossbench.runner.execute import run_record, train_in_folders
from lossbench.runner.plan import plan_runs
from lossbench.tasks import build_task
from lossbench.training import fused
from lossbench.training.fused import can_fuse, fusable_groups, fuse_blocker, train_fused

DEVICE = os.environ.get("LOSSBENCH_FUSED_TEST_DEVICE", "cpu")
TOL = 1e-5
DROPOUT = 0.0 if DEVICE == "cuda" else 0.2  # dropout does not fuse on CUDA (fused.py)


def plan(strategies: list[str], seeds=(0,), **settings) -> list:
    """Validated runs of tests/tiny.toml on DEVICE, as `lossbench run` plans them."""
    return plan_runs(load_config(TINY, {"device": DEVICE, **settings}), strategies, list(seeds))


def folder(out: Path, cfg) -> Path:
    return out / run_dir_name(flat(cfg))


def in_folders(cfgs, task, out: Path, events=None) -> list[tuple[dict, list[dict]]]:
    """(summary, rows) of each run, trained in its folder under `out` as `lossbench run`
    trains it: one run alone, two or more as one fused group."""
    todo = [(c, folder(out, c), run_record(c, task)) for c in cfgs]
    return [(o.summary, o.rows) for o in train_in_folders(todo, task, events or Events())]


def sequential(cfgs, task, out: Path) -> list:
    return [result for c in cfgs for result in in_folders([c], task, out)]


def together(cfgs, task, out: Path, events=None) -> list:
    return in_folders(cfgs, task, out, events)


def numbers(d: dict) -> dict:
    """The numbers of a row or summary that must match (times excluded)."""
    return {k: v for k, v in d.items() if k not in ("seconds", "wall_seconds", "fused")}


def max_difference(a: dict, b: dict) -> float:
    """Largest relative difference between two rows or summaries with the same keys."""
    assert a.keys() == b.keys()
    worst = 0.0
    for key, x in a.items():
        y = b[key]
        if isinstance(x, float) and isinstance(y, float):
            if not (math.isfinite(x) and math.isfinite(y)):
                assert x == y or (math.isnan(x) and math.isnan(y)), key
                continue
            worst = max(worst, abs(x - y) / max(abs(x), 1e-3))
        else:
            assert x == y, (key, x, y)
    return worst


def assert_same_runs(expected: list, got: list, tol: float = TOL) -> float:
    """Every (summary, rows) pair equal within `tol`; returns the largest difference."""
    worst = 0.0
    for (s1, rows1), (s2, rows2) in zip(expected, got, strict=True):
        assert [r["epoch"] for r in rows1] == [r["epoch"] for r in rows2]
        for r1, r2 in zip(rows1, rows2, strict=True):
            worst = max(worst, max_difference(numbers(r1), numbers(r2)))
        worst = max(worst, max_difference(numbers(s1), numbers(s2)))
    assert worst <= tol, worst
    print(f"largest relative difference: {worst:.3g}")
    return worst


def test_groups_are_the_fusable_runs_of_one_seed_and_settings():
    cfgs = plan(["plain", "flood", "uncertainty", "gcs", "weighted", "dwa", "pcgrad",
                 "reweight-iflood", "uncertainty-flood"], seeds=(0, 1))
    groups = [[(c.strategy.name, c.seed) for c in g] for g in fusable_groups(cfgs)]
    fusable = ["plain", "flood", "weighted", "dwa", "reweight-iflood"]
    alone = ["uncertainty", "gcs", "pcgrad", "uncertainty-flood"]
    assert groups == [[(s, 0) for s in fusable], *[[(s, 0)] for s in alone],
                      [(s, 1) for s in fusable], *[[(s, 1)] for s in alone]]
    assert [len(g) for g in fusable_groups(cfgs[:6], max_size=2)] == [2, 1, 1, 2]
    assert can_fuse(plan(["plain", "flood", "reweight"]))
    assert not can_fuse(plan(["plain", "gcs"]))
    assert not can_fuse(plan(["plain"], seeds=(0, 1)))  # another seed: other data
    assert not can_fuse([*plan(["plain"]), *plan(["flood"], lr=0.1)])
    assert fuse_blocker(plan(["plain"], model="gru")[0]) == "model 'gru' cannot be vmapped"
    with pytest.raises(ConfigError, match="strategy 'uncertainty' is not fusable"):
        train_fused(plan(["plain", "uncertainty"]), None, [Path("a"), Path("b")], print, print)


def test_dropout_on_cuda_does_not_fuse_unless_allowed(monkeypatch):
    """On CUDA the unfused attention draws its dropout inside a kernel that vmap cannot run,
    so a fused run would not reproduce its unfused twin (fused.py's docstring)."""
    monkeypatch.setattr(fused, "resolve_device", lambda name: torch.device("cuda"))
    cfg = plan(["plain"], dropout=0.1)[0]
    assert "dropout > 0 on CUDA" in fuse_blocker(cfg)
    assert fuse_blocker(cfg, allow_dropout=True) is None
    assert fuse_blocker(plan(["plain"])[0]) is None


def test_fused_runs_equal_sequential_runs_and_write_the_same_files(tmp_path):
    """Eight strategies with dropout, early stopping (runs stop at epochs 3 to 8) and
    flooding that acts: every number within TOL, the same files and columns; flood with
    b = 0 equals plain exactly, reweight-flood with b = 0 reweight."""
    settings = {"dropout": DROPOUT, "patience": 2, "epochs": 8, "lr": 0.1}
    cfgs = [*plan(["plain", "flood", "reweight", "weighted", "dwa", "iflood"], b=7.5,
                  **settings),
            *plan(["flood", "reweight-flood"], b=0.0, b_reweight=-1.0, **settings)]
    task = build_task(cfgs[0].task, cfgs[0].seed)
    expected = sequential(cfgs, task, tmp_path / "seq")
    got = together(cfgs, task, tmp_path / "fused")
    assert_same_runs(expected, got)
    assert len({len(rows) for _, rows in got}) > 2  # the runs stopped at different epochs
    assert any(r["flood_frac"] > 0 for r in got[1][1])  # flooding acted
    for cfg, (summary, rows) in zip(cfgs, got, strict=True):
        seq, fus = folder(tmp_path / "seq", cfg), folder(tmp_path / "fused", cfg)
        assert sorted(p.name for p in fus.iterdir()) == sorted(p.name for p in seq.iterdir())
        assert not (fus / "checkpoint.pkl").exists()
        assert (fus / "metrics.csv").read_text().split("\n")[0] == \
            (seq / "metrics.csv").read_text().split("\n")[0]
        assert read_metrics(fus / "metrics.csv") == [
            {k: float(v) if k != "epoch" else v for k, v in r.items()} for r in rows]
        assert json.loads((fus / "summary.json").read_text())["fused"] == len(cfgs)
        assert summary["status"] == "complete" and summary["test_loss"] > 0
    plain, flood0, reweight, reweight_flood0 = got[0], got[6], got[2], got[7]
    assert [numbers(r) for r in flood0[1]] == [numbers(r) for r in plain[1]]
    assert [numbers(r) for r in reweight_flood0[1]] == [numbers(r) for r in reweight[1]]


def test_fused_runs_follow_the_cosine_schedule_as_sequential_runs_do(tmp_path):
    cfgs = plan(["plain", "flood"], b=7.5, lr_schedule="cosine", lr=0.1, epochs=4)
    task = build_task(cfgs[0].task, cfgs[0].seed)
    assert_same_runs(sequential(cfgs, task, tmp_path / "seq"),
                     together(cfgs, task, tmp_path / "fused"))


def test_fused_runs_warm_up_as_sequential_runs_do(tmp_path):
    cfgs = plan(["plain", "reweight"], lr_warmup=1, lr=0.1, epochs=2)
    task = build_task(cfgs[0].task, cfgs[0].seed)
    assert_same_runs(sequential(cfgs, task, tmp_path / "seq"),
                     together(cfgs, task, tmp_path / "fused"))


def test_fused_runs_train_the_item_bias_as_sequential_runs_do(tmp_path):
    cfgs = plan(["plain", "reweight"], item_bias=True, epochs=2)
    task = build_task(cfgs[0].task, cfgs[0].seed)
    assert_same_runs(sequential(cfgs, task, tmp_path / "seq"),
                     together(cfgs, task, tmp_path / "fused"))


def test_a_diverging_run_is_dropped_without_disturbing_the_others(tmp_path):
    """weighted with w = 1e30 blows up in its second step; it is finished as `diverged` at
    the step where its unfused run diverges, and the other runs equal the group without it
    (the same batched kernels: exactly, here)."""
    cfgs = plan(["plain", "flood", "weighted"], b=7.5, w=1e30, epochs=4)
    task = build_task(cfgs[0].task, cfgs[0].seed)
    with_it = together(cfgs, task, tmp_path / "with")
    without = together(cfgs[:2], task, tmp_path / "without")
    assert [r for _, r in with_it[:2]] == [r for _, r in without] or \
        assert_same_runs(without, with_it[:2]) <= TOL
    (alone, _), = sequential(cfgs[2:], task, tmp_path / "seq")
    summary, rows = with_it[2]
    assert summary["status"] == alone["status"] == "diverged"
    assert summary["diverged_at"] == alone["diverged_at"] == {"epoch": 1, "step": 2}
    assert rows == [] and "test_loss" not in summary
    assert all(s["status"] == "complete" and len(r) == 4 for s, r in with_it[:2])


class StopAfter(Events):
    """Ctrl-C after epoch `epoch` of the run named `strategy`."""

    def __init__(self, strategy: str, epoch: int) -> None:
        self.strategy, self.epoch = strategy, epoch

    def epoch_done(self, cfg, row) -> None:
        if cfg.strategy.name == self.strategy and row["epoch"] == self.epoch:
            raise KeyboardInterrupt


def test_kill_and_resume_ends_as_the_uninterrupted_fused_run(tmp_path):
    """Interrupted after epoch 2: every run is marked interrupted and keeps its checkpoint;
    resuming gives the uninterrupted result (exactly on the CPU; on CUDA within TOL, as an
    unfused run resumes there). Then with one checkpoint lost (that run restarts alone from
    epoch 1, the others from epoch 3) and with a fused checkpoint resumed unfused (TOL)."""
    cfgs = plan(["plain", "flood", "reweight"], b=7.5, epochs=4)
    task = build_task(cfgs[0].task, cfgs[0].seed)
    whole = together(cfgs, task, tmp_path / "whole")
    for case in ("resume", "one lost", "unfused"):
        out = tmp_path / case
        with pytest.raises(KeyboardInterrupt):
            together(cfgs, task, out, StopAfter("reweight", 2))
        for cfg in cfgs:
            run_dir = folder(out, cfg)
            assert json.loads((run_dir / "summary.json").read_text())["status"] == \
                "interrupted"
            assert (run_dir / "checkpoint.pkl").exists()
            assert len(read_metrics(run_dir / "metrics.csv")) == 2
        if case == "one lost":
            (folder(out, cfgs[1]) / "checkpoint.pkl").unlink()
        if case == "unfused":
            assert_same_runs(whole, sequential(cfgs, task, out))
            continue
        resumed = together(cfgs, task, out)
        assert_same_runs(whole, resumed, tol=0.0 if DEVICE == "cpu" else TOL)
        assert not any((folder(out, c) / "checkpoint.pkl").exists() for c in cfgs)


def test_an_unfused_checkpoint_resumes_fused(tmp_path):
    cfgs = plan(["plain", "reweight"], epochs=3)
    task = build_task(cfgs[0].task, cfgs[0].seed)
    whole = sequential(cfgs, task, tmp_path / "whole")
    out = tmp_path / "resumed"
    for cfg in cfgs:
        with pytest.raises(KeyboardInterrupt):
            in_folders([cfg], task, out, StopAfter(cfg.strategy.name, 1))
    assert_same_runs(whole, together(cfgs, task, out))


def test_the_cli_fuses_what_it_can_and_matches_unfused(runner, tmp_path):
    """`lossbench run --fuse` as a user types it: the seed's four fuse (summary `fused` = 4),
    uncertainty runs alone in the same command, and every run equals its `--no-fuse` twin
    within TOL; the same folders appear."""
    from lossbench.cli.app import app
    from lossbench.results.folders import read_json, read_metrics

    args = ["run", "--config", str(TINY), "-s", "all", "-s", "uncertainty", "--b", "7.5"]
    for flag, out in (("--fuse", "f"), ("--no-fuse", "u")):
        result = runner.invoke(app, [*args, flag, "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
        assert "runs 5/5 done, 0 running; epochs" in result.stdout  # every epoch reported
        assert "15/15" in result.stdout
    fused = sorted(p.relative_to(tmp_path / "f") for p in (tmp_path / "f").glob("*/*"))
    assert fused == sorted(p.relative_to(tmp_path / "u") for p in (tmp_path / "u").glob("*/*"))
    pairs = []
    for rel in fused:
        a, b = tmp_path / "f" / rel, tmp_path / "u" / rel
        summary = read_json(a / "summary.json")
        assert summary.get("fused") == (None if "uncertainty" in rel.name else 4)
        pairs.append(((read_json(b / "summary.json"), read_metrics(b / "metrics.csv")),
                      (summary, read_metrics(a / "metrics.csv"))))
    assert_same_runs([p[0] for p in pairs], [p[1] for p in pairs])
