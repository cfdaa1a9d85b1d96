"""Optuna as a tune uses it: one study per arm in a journal file, and a proposer that is a pure
function of the arm's complete trials.

    storage = open_journal(folder / "journal.log")
    study = arm_study(storage, "plain", lower_is_better=True)
    done = complete_trials(study)
    params, attrs = propose(done, dims, sampler="tpe", sampler_seed=0, trials=20,
                            lower_is_better=True)
    ... train the trial's runs, score it on validation ...
    record_trial(study, dims, params, score, attrs, {"runs": [...]})

Ask-and-tell, arranged so that a killed tune (SIGKILL included) resumes without losing or
repeating a trial and proposes what an uninterrupted tune proposes:

- The journal (Optuna's JournalStorage: a file, no server; `optuna-dashboard journal.log`
  opens it) holds complete trials only, each written by one append (`Study.add_trial`).
  A trial that was running when the process died left nothing there; its runs are on disk.
- Trial n of an arm is proposed by a fresh in-memory study holding the arm's first n
  complete trials, with a sampler seeded from (sampler seed, n). Proposing again after a
  kill gives the same trial n, whose runs are then found on disk (complete, or resumed from
  their checkpoints). State a sampler keeps in its study (QMC's position in its sequence)
  travels with each recorded trial (STATE_KEY) and is restored before the next proposal.

Samplers: `tpe` (Optuna's TPESampler with its default 10 random start-up trials: a tune of
10 trials or fewer is a random search), `random`, `qmc` (scrambled Sobol; its first trial is
random, as Optuna's QMCSampler does) and `grid` (per range the most values, at least 2, for
which the grid with every choice holds at most `--trials` points; trials beyond the grid
repeat grid points, whose runs are then found on disk). Every arm's sampler starts from the
same seed, so arms with the same space draw the same first trials.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from lossbench.runner.space import Dimension

SAMPLERS = ("tpe", "random", "qmc", "grid")
STATE_KEY = "lossbench:study_system_attrs"
"""The trial system attribute that carries the sampler's study state after its proposal."""

optuna.logging.set_verbosity(optuna.logging.ERROR)
"""Optuna's own messages (a study created, a grid re-evaluated) would interleave with the
progress display; what they say is in tune.json."""


def open_journal(path: Path) -> JournalStorage:
    """Optuna's journal storage in the file `path`, after cutting a last line left unfinished
    by a killed writer (Optuna would otherwise join the next record to it)."""
    if path.exists() and path.stat().st_size:
        with open(path, "rb+") as handle:
            data = handle.read()
            if not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
    return JournalStorage(JournalFileBackend(str(path)))


def arm_study(storage: JournalStorage, arm: str, lower_is_better: bool) -> optuna.Study:
    """The arm's study in the journal (created on first use), named after the arm."""
    return optuna.create_study(storage=storage, study_name=arm, load_if_exists=True,
                               direction="minimize" if lower_is_better else "maximize")


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The arm's complete trials in the order they were recorded."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(trials, key=lambda t: t.number)


def trial_seed(sampler_seed: int, n: int) -> int:
    """The seed of trial n's sampler: a hash of (sampler seed, n) (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([sampler_seed, n]).generate_state(1)[0])


def grid_points(dims: list[Dimension], trials: int) -> int:
    """Values per range for the grid sampler: the most (at least 2) for which the grid, with
    every choice of the categorical dimensions, has at most `trials` points."""
    ranges = sum(1 for d in dims if not d.search.choices)
    categories = math.prod(len(d.search.choices) for d in dims if d.search.choices)
    if not ranges:
        return 2
    return max(2, int((trials / categories) ** (1 / ranges) + 1e-9))


def make_sampler(name: str, sampler_seed: int, n: int, dims: list[Dimension],
                 trials: int) -> optuna.samplers.BaseSampler:
    """The sampler that proposes trial n (see the module docstring)."""
    seed = trial_seed(sampler_seed, n)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(
                seed=sampler_seed, independent_sampler=optuna.samplers.RandomSampler(seed=seed),
                warn_independent_sampling=False)
    if name == "grid":
        points = grid_points(dims, trials)
        return optuna.samplers.GridSampler({d.name: d.grid(points) for d in dims},
                                           seed=sampler_seed)
    raise ValueError(f"unknown sampler {name}")


def propose(done: list[FrozenTrial], dims: list[Dimension], sampler: str, sampler_seed: int,
            trials: int, lower_is_better: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Trial len(done) of an arm: its parameters and the system attributes to record with it
    (the sampler's, and the study state under STATE_KEY). A pure function of its arguments."""
    n = len(done)
    memory = optuna.create_study(direction="minimize" if lower_is_better else "maximize",
                                 sampler=make_sampler(sampler, sampler_seed, n, dims, trials))
    storage, study_id = memory._storage, memory._study_id  # no public setter for these
    for key, value in (done[-1].system_attrs.get(STATE_KEY, {}) if done else {}).items():
        storage.set_study_system_attr(study_id, key, value)
    memory.add_trials(done)
    trial = memory.ask({d.name: d.distribution() for d in dims})
    frozen = storage.get_trial(trial._trial_id)
    attrs = {k: v for k, v in frozen.system_attrs.items() if k != STATE_KEY}
    attrs[STATE_KEY] = storage.get_study_system_attrs(study_id)
    return dict(trial.params), attrs


def record_trial(study: optuna.Study, dims: list[Dimension], params: dict[str, Any],
                 score: float, system_attrs: dict[str, Any], user_attrs: dict[str, Any]) -> None:
    """Append one complete trial to the arm's study: one line of the journal."""
    trial = optuna.trial.create_trial(
        params=params, distributions={d.name: d.distribution() for d in dims}, value=score,
        system_attrs=system_attrs, user_attrs=user_attrs)
    study.add_trial(trial)
