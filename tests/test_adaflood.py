"""AdaFlood (`X-adaflood`: per-example flood levels from auxiliary models trained on the other
folds, cached on disk) and `flood_target` (what batch flooding floods), against hand-worked
cases, from the command line, and resumed."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import (
    TINY,
    assert_fused_equals_unfused,
    assert_resume_equals_whole,
    one_parameter_step,
    only_run,
    task_of,
)

from lossbench import strategies as registry
from lossbench.cli.app import app
from lossbench.config import RunConfig, flat, load_config
from lossbench.errors import ConfigError
from lossbench.results.folders import run_dir_name
from lossbench.strategies import LossTerm, adaflood_level, build_strategy
from lossbench.training import adaflood
from lossbench.training.fused import fuse_blocker
from lossbench.training.trainer import epoch_batches


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Every test keeps its auxiliary models in a folder of its own."""
    monkeypatch.setenv("LOSSBENCH_CACHE_DIR", str(tmp_path / "cache"))


def term(*values: float) -> tuple[LossTerm, torch.Tensor]:
    leaf = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    return LossTerm(leaf, leaf.mean()), leaf


# --- the level and the objective ------------------------------------------------------------


def test_theta_is_the_corrected_heldout_loss_by_hand():
    """theta = -log((1 - gamma) exp(-l) + gamma), written out with math.log and math.exp."""
    heldout = torch.tensor([2.0, 50.0, 0.0], dtype=torch.float64)
    assert adaflood_level(heldout, 0.5).tolist() == pytest.approx(
        [0.5662191695169727, 0.6931471805599453, 0.0], rel=1e-12)  # at most -log 0.5
    assert adaflood_level(torch.tensor([2.0], dtype=torch.float64), 0.1).item() == \
        pytest.approx(1.505971291955821, rel=1e-12)
    assert torch.equal(adaflood_level(heldout, 0.0), heldout)  # gamma 0: the loss itself
    assert adaflood_level(torch.tensor([800.0]), 0.0).item() == 800.0  # no overflow
    assert adaflood_level(heldout, 1.0).tolist() == [0.0, 0.0, 0.0]  # gamma 1: no flooding


def test_objective_floods_each_example_at_its_level_by_hand():
    """plain-adaflood, gamma 0 (theta = held-out loss): l = [1, 3, 2] at levels [2, 1, 2.5].
    Examples 1 and 3 are below their level: |l - theta| + theta = 2 theta - l, gradient -1/3;
    example 2 above: l, gradient 1/3."""
    s = build_strategy("adaflood", adaflood_gamma=0.0)
    (main, m), (aux, a) = term(1.0, 3.0, 2.0), term(0.4)
    step = s(main, aux, heldout=torch.tensor([2.0, 1.0, 2.5], dtype=torch.float64))
    step.objective.backward()
    assert step.objective.item() == pytest.approx((3.0 + 3.0 + 3.0) / 3 + 0.4)
    assert m.grad.tolist() == pytest.approx([-1 / 3, 1 / 3, -1 / 3])  # below: ascent
    assert a.grad.tolist() == pytest.approx([1.0])  # L_aux is not flooded
    assert float(step.below) == pytest.approx(2 / 3)
    assert s.flood_level is None  # no single level: summary.json's flood flags stay None
    gamma = build_strategy("adaflood", adaflood_gamma=0.1)  # theta = 1.50597... for l_aux = 2
    (main, m), (aux, _) = term(1.0, 2.0), term(0.0)
    step = gamma(main, aux, heldout=torch.tensor([2.0, 2.0], dtype=torch.float64))
    step.objective.backward()
    assert step.objective.item() == pytest.approx((2 * 1.505971291955821 - 1.0 + 2.0) / 2)
    assert m.grad.tolist() == pytest.approx([-0.5, 0.5])
    with pytest.raises(ValueError, match="held-out"):
        s(main, aux)


# --- flood_target -----------------------------------------------------------------------------


@pytest.mark.parametrize("target, b, value, g_main, g_aux, below", [
    ("main", 2.0, 2.5 + 0.5 * 4.0, [-0.5, -0.5], 0.5, 1.0),     # L_main 1.5 < 2: 2b - 1.5
    ("main", 1.0, 1.5 + 0.5 * 4.0, [0.5, 0.5], 0.5, 0.0),       # above b: unchanged
    ("aux", 5.0, 1.5 + 0.5 * 6.0, [0.5, 0.5], -0.5, 1.0),       # L_aux 4 < 5: 2b - 4
    ("aux", 3.0, 1.5 + 0.5 * 4.0, [0.5, 0.5], 0.5, 0.0),
    ("total", 5.0, 10.0 - 3.5, [-0.5, -0.5], -0.5, 1.0),        # total 3.5 < 5: 2b - 3.5
])
def test_flood_target_value_and_gradient_by_hand(target, b, value, g_main, g_aux, below):
    """weighted (w = 0.5) flooded by flood_target: L_main = mean(1, 2) = 1.5, L_aux = 4."""
    s = build_strategy("weighted-flood", w=0.5, b=b, flood_target=target)
    (main, m), (aux, a) = term(1.0, 2.0), term(4.0)
    step = s(main, aux)
    step.objective.backward()
    assert step.objective.item() == pytest.approx(value)
    assert m.grad.tolist() == pytest.approx(g_main)
    assert a.grad.tolist() == pytest.approx([g_aux])
    assert float(step.below) == below
    if target == "main":  # the examples follow the flooded mean (2b - l_i below b)
        assert step.main.per_example.mean().item() == pytest.approx(step.main.mean.item())


def test_flood_target_total_is_the_batch_flooding_of_before():
    (main, _), (aux, _) = term(1.0, 2.0), term(4.0)
    default = build_strategy("reweight-flood", b=2.0)(main, aux)
    total = build_strategy("reweight-flood", b=2.0, flood_target="total")(main, aux)
    assert torch.equal(default.objective, total.objective)
    assert load_config(TINY).strategy.flood_target == "total"
    settings = flat(RunConfig())
    without = {k: v for k, v in settings.items() if k != "flood_target"}  # an old config.json
    assert run_dir_name(settings) == run_dir_name(without)


@pytest.mark.parametrize("b, weight", [(0.0, 0.6), (1.0, 0.1)])
def test_flood_target_main_flips_l_mains_gradient_in_a_gradient_strategy(b, weight):
    """gcs-flood, flood_target main, one parameter p = 0.5: L_main = (p - 1)^2 = 0.25,
    L_aux = (p + 1)^2. b = 0: g_main = -1 and g_aux = 3 conflict, the step is -1 (p -> 0.6).
    b = 1: L_main < b, g_main flips to 1, agrees with g_aux: the step is 1 + 3 (p -> 0.1)."""
    p, _ = one_parameter_step(build_strategy("gcs-flood", b=b, flood_target="main"))
    assert p == pytest.approx(weight)


@pytest.mark.parametrize("args, message", [
    (["--strategy", "iflood", "--set", "flood_target=main"], "flood_target = main applies"),
    (["--strategy", "adaflood", "--set", "flood_target=aux"], "X-adaflood floods L_main"),
    (["--strategy", "flood", "--set", "flood_target=both"], "unknown flood_target 'both'"),
    (["--strategy", "adaflood", "--set", "adaflood_gamma=1.5"], "adaflood_gamma must be"),
    (["--strategy", "adaflood", "--set", "adaflood_folds=1"], "adaflood_folds must be"),
])
def test_invalid_settings_exit_2_with_one_line(args, message, runner, tmp_path):
    result = runner.invoke(app, ["run", "--config", str(TINY), *args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # refused before anything was written
    with pytest.raises(ConfigError, match="flood_target"):
        build_strategy("adaflood", flood_target="main")


def test_flood_target_main_trains_fused_as_unfused(tmp_path):
    cfgs = [load_config(TINY, {"strategy": s, "b": 3.5, "flood_target": "main", "epochs": 2,
                               "device": "cpu"}) for s in ("flood", "reweight-flood")]
    alone = assert_fused_equals_unfused(
        cfgs, tmp_path, ("train_loss", "train_objective", "flood_frac", "val_loss"))
    assert any(row["flood_frac"] > 0 for row in alone)  # L_main fell below 3.5


# --- folds, the cache, the command line -------------------------------------------------------


def test_folds_are_balanced_and_drawn_from_the_data_seed():
    folds = adaflood.fold_of(64, 2, 0)
    assert torch.bincount(folds).tolist() == [32, 32]
    assert torch.equal(folds, adaflood.fold_of(64, 2, 0))
    assert not torch.equal(folds, adaflood.fold_of(64, 2, 1))
    assert torch.bincount(adaflood.fold_of(64, 3, 0)).tolist() == [22, 21, 21]
    with pytest.raises(ConfigError, match="adaflood_folds"):
        adaflood.fold_of(3, 5, 0)


def test_each_level_comes_from_the_model_that_did_not_train_on_it(monkeypatch):
    """train_folds: model k trains on the rows outside fold k and evaluates the rows of fold k,
    so no row's held-out loss comes from a model that trained on it."""
    cfg = load_config(TINY, {"strategy": "adaflood", "adaflood_folds": 3})
    task = task_of(cfg)
    n = len(task.train)
    trained, evaluated = {}, {}

    def fake_train(aux_cfg, task_, rows, device, engine):
        k = len(trained)
        trained[k] = rows.clone()
        return f"model {k}", 1

    def fake_heldout(model, split, aux_cfg, device):
        evaluated[model] = split.inputs.clone()
        return torch.full(split.targets.shape, float(model.split()[1]))

    monkeypatch.setattr(adaflood, "train_fold", fake_train)
    monkeypatch.setattr(adaflood, "heldout_of", fake_heldout)
    folds = adaflood.fold_of(n, 3, 0)
    table, _ = adaflood.train_folds(cfg, task, folds, 3, torch.device("cpu"), None)
    for k in range(3):
        held = folds == k
        assert torch.equal(trained[k], ~held)  # trained on the other folds only
        assert torch.equal(evaluated[f"model {k}"], task.train.inputs[held])
        assert (table[held] == k).all()  # fold k's rows got model k's losses


def test_epoch_batches_give_the_rows_of_each_batch(tiny):
    cfg = load_config(tiny)
    task = task_of(cfg)
    generator = torch.Generator().manual_seed(5)
    order = torch.randperm(len(task.train), generator=torch.Generator().manual_seed(5))
    batches = list(epoch_batches(task, 32, generator, torch.device("cpu")))
    assert torch.equal(torch.cat([rows for _, _, rows in batches]), order)
    for inputs, targets, rows in batches:
        assert torch.equal(inputs, task.train.inputs[rows])
        assert torch.equal(targets, task.train.targets[rows])


def summary_of(out):
    return json.loads((only_run(out) / "summary.json").read_text())


def test_adaflood_from_the_command_line_trains_its_models_once(runner, tmp_path):
    """adaflood trains its auxiliary models and reports their cost; reweight-adaflood of the
    same seed, and adaflood with another gamma, reuse them (the file is not rewritten);
    another K trains new ones."""
    def run(out, *settings):
        args = ["run", "--config", str(TINY), "--set", "epochs=2", "--out", str(tmp_path / out)]
        for setting in settings:
            args += ["--set", setting]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return summary_of(tmp_path / out)

    first = run("a", "strategy=adaflood", "adaflood_gamma=0")
    assert first["adaflood_aux_seconds"] > 0 and first["adaflood_cache_hit"] is False
    assert len(first["adaflood_aux_best_epochs"]) == 2 and first["status"] == "complete"
    cache = tmp_path / "cache" / "adaflood"
    assert first["adaflood_cache"].startswith(str(cache))
    written = (cache / first["adaflood_cache"].split("/")[-1]).stat().st_mtime_ns
    paired = run("b", "strategy=reweight-adaflood")
    gamma = run("c", "strategy=adaflood", "adaflood_gamma=0.3")
    for other in (paired, gamma):
        assert other["adaflood_cache_hit"] is True
        assert other["adaflood_cache"] == first["adaflood_cache"]
        assert other["adaflood_aux_seconds"] == first["adaflood_aux_seconds"]
    assert len(list(cache.glob("*.pt"))) == 1
    assert (cache / first["adaflood_cache"].split("/")[-1]).stat().st_mtime_ns == written
    folds = run("d", "strategy=adaflood", "adaflood_folds=3")
    assert folds["adaflood_cache_hit"] is False and len(folds["adaflood_aux_best_epochs"]) == 3
    assert len(list(cache.glob("*.pt"))) == 2
    assert not list(cache.glob("*.tmp"))


def test_adaflood_is_listed_registered_and_not_fused(runner):
    result = runner.invoke(app, ["strategies", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    row = rows["X-adaflood"]
    assert [p["name"] for p in row["params"]] == ["adaflood_gamma", "adaflood_folds",
                                                  "adaflood_aux_epochs"]
    assert row["params"][0]["search"] == "0..0.9" and "Bae" in row["citation"]
    assert not row["fusable"] and "reweight-adaflood" in rows["reweight"]["variants"]
    assert "flood_target" in rows["X-flood"]["doc"]
    assert registry.split_name("adaflood") == ("plain", "adaflood")
    assert registry.split_name("dwa-adaflood") == ("dwa", "adaflood")
    assert registry.canonical("plain-adaflood") == "adaflood"
    assert registry.run_params("adaflood", {})["adaflood_gamma"] == 0.5
    assert "adaflood_gamma" not in registry.run_params("reweight-flood", {})
    assert registry.owners("adaflood_folds") == ["X-adaflood"]
    assert fuse_blocker(load_config(TINY, {"strategy": "adaflood"})) is not None
    from lossbench.runner.sweep import check_sweep

    with pytest.raises(ConfigError, match="adaflood_gamma"):
        check_sweep("adaflood", "b", "val_loss")
    assert check_sweep("adaflood", "adaflood_gamma", "val_loss") == "adaflood"


def test_a_resumed_adaflood_run_equals_an_uninterrupted_one(tmp_path):
    cfg = load_config(TINY, {"strategy": "reweight-adaflood", "adaflood_gamma": 0.0,
                             "device": "cpu"})
    resumed = assert_resume_equals_whole(cfg, tmp_path)
    assert any(row["flood_frac"] > 0 for row in resumed.rows)  # the levels act
    assert resumed.summary["adaflood_cache_hit"] is True
