"""torchjd's gradient aggregators as strategies (lossbench/strategies/jd.py): lossbench's own
PCGrad against torchjd's, MGDA against its two-loss closed form, ConFIG through its Gramian
against torchjd's on the gradients, a tiny run of each through the CLI, an exact resume of
the stateful and random ones, and the global RNG left alone.

Skips without the extra `lossbench[jd]`; tests/test_extras.py checks what a user without it
sees (it runs everywhere).
"""

from __future__ import annotations

import json
import math
import pickle

import pytest

pytest.importorskip("torchjd", reason='needs the extra lossbench[jd]: pip install "lossbench[jd]"')

import torch  # noqa: E402
from helpers import metrics_rows, only_run  # noqa: E402

from lossbench import api  # noqa: E402
from lossbench import strategies as registry  # noqa: E402
from lossbench.cli.app import app  # noqa: E402
from lossbench.events import Events  # noqa: E402
from lossbench.strategies import build_strategy  # noqa: E402
from lossbench.strategies.gradient import flatten  # noqa: E402
from lossbench.training.checkpoint import to_numpy, to_torch  # noqa: E402

SHAPES = [(4, 3), (7,), (2, 2, 2)]
"""A model's parameters, as the trainer hands their gradients over (one tensor each)."""
JD = registry.GROUPS["jd"]


def grads(generator: torch.Generator, scale: float = 1.0) -> list[torch.Tensor]:
    return [scale * torch.randn(s, generator=generator, dtype=torch.float64) for s in SHAPES]


def pair(seed: int, conflicting: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Random (g_main, g_aux) whose dot product is < 0 when `conflicting`, else > 0; norms
    differ by up to 10x."""
    generator = torch.Generator().manual_seed(seed)
    g_main, g_aux = grads(generator), grads(generator, scale=10.0 ** (seed % 3 - 1))
    if (flatten(g_main) @ flatten(g_aux) < 0) != conflicting:
        g_aux = [-g for g in g_aux]
    return g_main, g_aux


def skip_without_solvers(name: str) -> None:
    missing = registry.entry(name).missing()
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)} (lossbench[jd] brings them)")


@pytest.mark.parametrize("conflicting", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_lossbench_pcgrad_equals_torchjd_pcgrad(seed, conflicting):
    from torchjd.aggregation import PCGrad

    g_main, g_aux = pair(seed, conflicting)
    (ours,) = [flatten(build_strategy("pcgrad").weighting.combine_grads(g_main, g_aux))]
    theirs = PCGrad()(torch.stack([flatten(g_main), flatten(g_aux)]))
    assert float((ours - theirs).abs().max()) <= 1e-6 * max(1.0, float(theirs.abs().max()))
    if not conflicting:  # no surgery: the sum
        assert torch.allclose(ours, flatten(g_main) + flatten(g_aux), rtol=1e-12)


def mgda_closed_form(g1: torch.Tensor, g2: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The min-norm point of the segment [g1, g2]: gamma* = clamp((g2 - g1).g2 /
    |g1 - g2|^2, 0, 1), d = gamma* g1 + (1 - gamma*) g2 (weights summing to 1)."""
    gamma = min(1.0, max(0.0, float((g2 - g1) @ g2 / (g1 - g2).square().sum())))
    return gamma, gamma * g1 + (1 - gamma) * g2


@pytest.mark.parametrize("case", ["conflicting", "agreeing", "parallel", "opposite"])
@pytest.mark.parametrize("seed", range(3))
def test_mgda_is_the_two_loss_closed_form(seed, case):
    """torchjd's MGDA returns the convex combination itself (its weights sum to 1, no other
    scaling), so it is compared with the closed form as it is. `parallel`: g_aux = 3 g_main,
    gamma* clamps to 1 (the shorter gradient); `opposite`: g_aux = -2 g_main, d = 0."""
    g_main, g_aux = pair(seed, case == "conflicting")
    if case == "parallel":
        g_aux = [3 * g for g in g_main]
    elif case == "opposite":
        g_aux = [-2 * g for g in g_main]
    strategy = build_strategy("mgda").weighting
    got = flatten(strategy.combine_grads(g_main, g_aux))
    gamma, want = mgda_closed_form(flatten(g_main), flatten(g_aux))
    assert float((got - want).abs().max()) <= 1e-6 * max(1.0, float(flatten(g_main).abs().max()))
    state = strategy.log_state()
    assert state["w_main"] == pytest.approx(gamma, abs=1e-6)
    assert state["w_main"] + state["w_aux"] == pytest.approx(1.0)
    if case == "parallel":
        assert gamma == 1.0
    if case == "opposite":
        assert float(got.abs().max()) < 1e-12


@pytest.mark.parametrize("case", ["conflicting", "agreeing", "parallel", "zero"])
@pytest.mark.parametrize("seed", range(2))
def test_config_through_its_gramian_equals_torchjd_config_on_the_gradients(seed, case):
    """config-grad gives torchjd's ConFIG a 2 x 2 matrix with the gradients' Gramian, not
    the 2 x P matrix J (jd.ConFIG says why): the same direction and length as ConFIG(J)."""
    from torchjd.aggregation import ConFIG

    g_main, g_aux = pair(seed, case == "conflicting")
    if case in ("parallel", "zero"):
        g_aux = [(2.0 if case == "parallel" else 0.0) * g for g in g_main]
    got = flatten(build_strategy("config-grad").weighting.combine_grads(g_main, g_aux))
    want = ConFIG()(torch.stack([flatten(g_main), flatten(g_aux)]))
    assert float((got - want).abs().max()) <= 1e-6 * max(1.0, float(want.abs().max()))


def test_groups_hold_every_aggregator_and_builtins_none():
    assert set(JD) == {"mgda", "cagrad", "nash-mtl", "imtl-g", "aligned-mtl", "upgrad",
                       "graddrop", "dualproj", "gradvac", "config-grad"}
    assert not set(JD) & set(registry.GROUPS["builtins"])
    names = [p.name for name in JD for p in registry.entry(name).all_params]
    assert len(names) == len(set(names))  # no parameter shared between two aggregators


@pytest.mark.parametrize("name", JD)
def test_each_aggregator_trains_a_tiny_run(name, runner, tiny, tmp_path):
    skip_without_solvers(name)
    result = runner.invoke(app, ["run", "--config", str(tiny), "--strategy", name,
                                 "--set", "epochs=1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    folder = only_run(tmp_path)
    assert json.loads((folder / "summary.json").read_text())["status"] == "complete"
    (row,) = metrics_rows(folder)
    logs = registry.entry(name).load().logs
    assert {"cos", *logs} <= set(row)
    assert all(math.isfinite(float(row[key])) for key in ("train_loss", "val_loss", *logs))


class Stop(Events):
    """Interrupt a run after its first epoch (as Ctrl-C would)."""

    def epoch_done(self, cfg, row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt


@pytest.mark.parametrize("name", ["gradvac", "graddrop"])
def test_a_resumed_run_equals_an_uninterrupted_one(name, tiny, tmp_path):
    """gradvac: its EMA targets phi_hat are checkpointed; graddrop: its random signs come
    from the epoch's own stream. Stopped after epoch 1 of 3 and resumed, the rows equal a
    run that never stopped."""
    settings = {"config": tiny, "epochs": 3}
    with pytest.raises(KeyboardInterrupt):
        api.run(strategy=name, out=tmp_path / "stopped", events=Stop(), **settings)
    stopped = only_run(tmp_path / "stopped")
    assert len(metrics_rows(stopped)) == 1 and (stopped / "checkpoint.pkl").exists()
    resumed = api.run(strategy=name, out=tmp_path / "stopped", **settings).runs[0]
    straight = api.run(strategy=name, out=tmp_path / "straight", **settings).runs[0]
    assert metrics_rows(resumed.dir) == metrics_rows(straight.dir)


def checkpointed(strategy: torch.nn.Module) -> dict:
    """The strategy's state as a checkpoint stores and reads it back (numpy, pickled)."""
    return to_torch(pickle.loads(pickle.dumps(to_numpy(strategy.state_dict()))))


@pytest.mark.parametrize("name", ["gradvac", "nash-mtl"])
def test_stateful_aggregators_continue_from_their_saved_state(name):
    """Three steps, save, then two more: a fresh strategy loaded from the save gives the
    same two steps (Nash-MTL's convex problem is built again from its saved weights)."""
    skip_without_solvers(name)
    generator = torch.Generator().manual_seed(1)
    steps = [(grads(generator), grads(generator)) for _ in range(5)]
    first = build_strategy(name).weighting
    for g_main, g_aux in steps[:3]:
        first.combine_grads(g_main, g_aux)
    saved = checkpointed(first)
    second = build_strategy(name).weighting
    second.load_state_dict(saved)
    for g_main, g_aux in steps[3:]:
        want = flatten(first.combine_grads(g_main, g_aux))
        assert torch.equal(flatten(second.combine_grads(g_main, g_aux)), want)


def test_graddrop_leaves_the_global_rng_and_draws_per_epoch():
    g_main, g_aux = pair(0, conflicting=True)
    a, b = (build_strategy("graddrop").weighting for _ in range(2))
    before = torch.get_rng_state()
    a.begin_epoch(1, 20_000)
    first = flatten(a.combine_grads(g_main, g_aux))
    assert torch.equal(torch.get_rng_state(), before)  # dropout's draws are untouched
    b.begin_epoch(1, 20_000)
    assert torch.equal(flatten(b.combine_grads(g_main, g_aux)), first)  # paired runs alike
    a.begin_epoch(2, 20_000)
    assert not torch.equal(flatten(a.combine_grads(g_main, g_aux)), first)  # a new epoch
