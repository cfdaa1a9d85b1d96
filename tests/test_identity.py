"""A run's identity: its folder name covers only the settings that differ from their
defaults, so a new setting renames nothing, and `lossbench migrate` brings the folders of
earlier versions to today's names."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from helpers import EventLog

from lossbench import api
from lossbench.cli import app
from lossbench.config import sections, setting_params

OLD = Path(__file__).with_name("data") / "results-0.1"


class StopAtEpoch2(EventLog):
    """Ctrl-C in the reweight run's second epoch: a run killed halfway, with its checkpoint."""

    def epoch_done(self, cfg, row: dict) -> None:
        super().epoch_done(cfg, row)
        if cfg.strategy.name == "reweight" and row["epoch"] == 2:
            raise KeyboardInterrupt


def test_a_new_setting_with_a_neutral_default_renames_nothing(tiny, tmp_path, monkeypatch):
    """Results written before a setting existed are found again once it exists: complete runs
    are skipped, the run killed halfway resumes from its checkpoint."""
    settings = {"strategy": ["plain", "flood", "reweight"], "config": tiny, "b": 3.0,
                "out": tmp_path}
    with pytest.raises(KeyboardInterrupt):
        api.run(**settings, events=StopAtEpoch2())
    before = sorted(p.name for p in tmp_path.glob("*/*"))

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class ModelWithKnob(sections.ModelConfig):
        new_knob: float = 0.0
        """A setting added after the results were written; 0 keeps today's behaviour."""

    monkeypatch.setattr(sections, "ModelConfig", ModelWithKnob)
    assert "new_knob" in setting_params()
    log = EventLog()
    api.run(**settings, events=log)
    assert sorted(p.name for p in tmp_path.glob("*/*")) == before
    assert log.by_run["plain b=0 [] s0"] == ["started", "skipped"]
    assert log.by_run["flood b=3 [] s0"] == ["started", "skipped"]
    resumed = next(v for k, v in log.by_run.items() if k.startswith("reweight "))
    assert resumed == ["started", "epoch 2", "epoch 3", "finished"]  # from its checkpoint
    knob = api.run(strategy="plain", config=tiny, b=3.0, out=tmp_path, new_knob=0.5)
    assert knob.runs[0].dir.name not in before  # a value other than the default is new


def test_migrate_brings_lossbench_0_1_results_to_todays_names(runner, tiny, tmp_path):
    """lossbench 0.1's folders (every setting hashed, parameters at the top level): after
    `lossbench migrate` the command that wrote them skips every run."""
    old = shutil.copytree(OLD, tmp_path / "results")
    dry = runner.invoke(app, ["migrate", str(old), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would rename 5 folders" in dry.stdout and (old / "synthetic-4c3c5834").exists()
    done = runner.invoke(app, ["migrate", str(old)])
    assert done.exit_code == 0 and "renamed 5 folders" in done.stdout
    log = EventLog()
    api.run(strategy="all", config=tiny, b=7.9, epochs=6, aux_mask_prob=0.3, out=old,
            events=log)
    assert len(log.by_run) == 4 and log.every_run_was("started", "skipped")
    again = runner.invoke(app, ["migrate", str(old)])
    assert "renamed 0 folders" in again.stdout
    missing = runner.invoke(app, ["migrate", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no such results folder" in missing.stderr
