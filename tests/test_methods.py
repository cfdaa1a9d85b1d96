"""The methods of issue 30 written in lossbench (RLW, GradNorm, FAMO, MetaBalance) against
hand-worked cases, their hooks in the training engines (RLW's draws, FAMO's losses after the
step, GradNorm's shared layer), resuming, and the `shared_only` rule of gradient methods."""

from __future__ import annotations

import math
import zlib

import pytest
import torch
from helpers import TINY, assert_fused_equals_unfused, assert_resume_equals_whole, task_of

from lossbench.config import load_config
from lossbench.strategies import LossTerm, build_strategy
from lossbench.training.fused import fuse_blocker
from lossbench.training.losses import Losses
from lossbench.training.trainer import train_one, train_step

NEW = ("rlw", "gradnorm", "famo", "metabalance")


def term(value: float) -> tuple[LossTerm, torch.Tensor]:
    leaf = torch.tensor(value, dtype=torch.float64, requires_grad=True)
    return LossTerm(leaf.reshape(1), leaf), leaf


def adam(grads: list[list[float]], lr: float) -> list[float]:
    """The change of a vector after Adam steps (betas 0.9, 0.999, eps 1e-8, no decay) with
    the gradients `grads`, one list per step, written out."""
    n = len(grads[0])
    m, v, x = [0.0] * n, [0.0] * n, [0.0] * n
    for t, g in enumerate(grads, 1):
        m = [0.9 * a + 0.1 * b for a, b in zip(m, g, strict=True)]
        v = [0.999 * a + 0.001 * b * b for a, b in zip(v, g, strict=True)]
        x = [xi - lr * (mi / (1 - 0.9 ** t)) / (math.sqrt(vi / (1 - 0.999 ** t)) + 1e-8)
             for xi, mi, vi in zip(x, m, v, strict=True)]
    return x


# --- RLW -------------------------------------------------------------------------------------


def test_rlw_weights_are_a_softmax_of_normal_draws_from_batch_seed_and_epoch():
    s = build_strategy("rlw").weighting
    s.begin_epoch(2, 20_000)
    seed = ((20_000 * 100_003 + 2) * 1_000_003 + zlib.crc32(b"rlw")) % 2**63
    draws = torch.randn(4, generator=torch.Generator().manual_seed(seed)).tolist()
    for z0, z1 in (draws[:2], draws[2:]):  # two steps, two draws each
        (main, m), (aux, a) = term(2.0), term(0.5)
        total = s(main, aux)
        total.backward()
        w0 = math.exp(z0) / (math.exp(z0) + math.exp(z1))  # LibMTL: softmax, sum 1 (not K)
        assert total.item() == pytest.approx(w0 * 2.0 + (1 - w0) * 0.5, rel=1e-6)
        assert (float(m.grad), float(a.grad)) == pytest.approx((w0, 1 - w0), rel=1e-6)
    s.begin_epoch(2, 20_000)  # the same epoch again (a resumed run): the same draws
    first = s(term(2.0)[0], term(0.5)[0]).item()
    s.begin_epoch(3, 20_000)
    assert s(term(2.0)[0], term(0.5)[0]).item() != first


def test_rlw_runs_of_a_seed_share_draws_and_batches(tiny, monkeypatch):
    """rlw and rlw-flood with b = 0 (|L - 0| + 0 = L) of one seed write the same numbers:
    they drew the same weights; plain sees the batches and augmentations rlw sees; seed 1
    draws other weights."""
    import lossbench.training.trainer as trainer

    seen: dict[str, list] = {}
    running: list[str] = []
    real = trainer.compute_losses

    def spy(model, inputs, targets, cfg, epoch, generator):
        seen.setdefault(running[-1], []).append((inputs.clone(), generator.get_state().clone()))
        return real(model, inputs, targets, cfg, epoch, generator)

    monkeypatch.setattr(trainer, "compute_losses", spy)
    rows = {}
    for name in ("rlw", "rlw-flood", "plain"):
        cfg = load_config(tiny, {"strategy": name, "b": 0.0, "epochs": 2})
        running.append(name)
        rows[name] = [{k: v for k, v in r.items() if k != "seconds"}
                      for r in train_one(cfg, task_of(cfg), None, lambda *_: None,
                                         lambda *_: None).rows]
    assert rows["rlw"] == rows["rlw-flood"]
    assert len(seen["rlw"]) == 4  # 2 epochs x 2 batches
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
               for a, b in zip(seen["rlw"], seen["plain"], strict=True))
    other = load_config(tiny, {"strategy": "rlw", "seed": 1, "epochs": 1})
    running.append("other")
    other_rows = train_one(other, task_of(other), None, lambda *_: None, lambda *_: None).rows
    assert other_rows[0]["w_main"] != rows["rlw"][0]["w_main"]


def test_rlw_fused_equals_unfused(tmp_path, tiny):
    cfgs = [load_config(tiny, {"strategy": s, "epochs": 2, "device": "cpu"})
            for s in ("rlw", "plain")]
    assert fuse_blocker(cfgs[0]) is None
    for other in ("gradnorm", "famo", "metabalance"):  # shared layer, losses again, gradients
        assert fuse_blocker(load_config(tiny, {"strategy": other})) is not None
    assert_fused_equals_unfused(cfgs, tmp_path, ("train_loss", "val_loss", "w_main", "w_aux"))


# --- GradNorm ------------------------------------------------------------------------------


def test_gradnorm_weights_follow_the_gradient_norm_loss_by_hand():
    """W = one scalar p = 1; L_main = a p, L_aux = b p, so ||grad_W L_i|| = a, b."""
    s = build_strategy("gradnorm", gradnorm_alpha=1.5, gradnorm_lr=0.025).weighting
    p = torch.tensor(1.0, requires_grad=True)
    s.set_shared_layer([p])
    steps = [(3.0, 1.0), (1.5, 1.0)]
    w, grads = [1.0, 1.0], []
    for a, b in steps:
        main, aux = a * p, b * p
        total = s(LossTerm(main.reshape(1), main), LossTerm(aux.reshape(1), aux))
        p.grad = None
        total.backward()
        assert total.item() == pytest.approx(w[0] * a + w[1] * b, rel=1e-6)
        assert float(p.grad) == pytest.approx(w[0] * a + w[1] * b, rel=1e-6)
        # by hand: G_i = w_i ||grad L_i||, targets mean(G) r_i^alpha, r from L(0) = (3, 1)
        g = [w[0] * a, w[1] * b]
        ratios = [a / 3.0, b / 1.0]
        r = [x / (sum(ratios) / 2) for x in ratios]
        target = [(g[0] + g[1]) / 2 * ri ** 1.5 for ri in r]
        grads.append([math.copysign(a, g[0] - target[0]), math.copysign(b, g[1] - target[1])])
        moved = [1.0 + d for d in adam(grads, 0.025)]
        w = [2 * x / sum(moved) for x in moved]  # renormalised to K = 2
        assert s.weights.tolist() == pytest.approx(w, rel=1e-6)
    assert grads[0] == [3.0, -1.0]  # step 1: r = 1, the larger gradient's weight falls
    state = s.log_state()
    assert state["w_main"] + state["w_aux"] == pytest.approx(2.0)


def test_gradnorm_needs_the_shared_layer():
    s = build_strategy("gradnorm").weighting
    with pytest.raises(RuntimeError, match="shared layer"):
        s(term(1.0)[0], term(1.0)[0])


# --- FAMO ----------------------------------------------------------------------------------


def test_famo_objective_gradient_and_logit_update_by_hand():
    s = build_strategy("famo", famo_lr=0.025, famo_gamma=0.001).weighting
    (main, m), (aux, a) = term(2.0), term(1.0)
    total = s(main, aux)
    total.backward()
    c = 1 / (0.5 / 2.0 + 0.5 / 1.0)  # z = (1/2, 1/2), min losses 0
    assert total.item() == pytest.approx(c * (0.5 * math.log(2.0) + 0.5 * math.log(1.0)),
                                         rel=1e-6)
    assert (float(m.grad), float(a.grad)) == pytest.approx((c * 0.5 / 2.0, c * 0.5 / 1.0),
                                                           rel=1e-6)
    s.after_step(term(1.0)[0], term(0.9)[0])  # the losses after the step
    delta = [math.log(2.0) - math.log(1.0), math.log(1.0) - math.log(0.9)]
    d = [0.25 * (delta[0] - delta[1]), 0.25 * (delta[1] - delta[0])]  # J_softmax^T delta
    xi = adam([d], 0.025)  # xi = 0: the weight decay adds nothing on the first step
    assert s.logits.tolist() == pytest.approx(xi, rel=1e-5)
    z0 = math.exp(xi[0]) / (math.exp(xi[0]) + math.exp(xi[1]))
    (main, m), (aux, a) = term(1.0), term(0.9)
    total = s(main, aux)
    c = 1 / (z0 / 1.0 + (1 - z0) / 0.9)
    assert total.item() == pytest.approx(c * (z0 * 0.0 + (1 - z0) * math.log(0.9)), rel=1e-5)
    assert s.log_state()["w_main"] == pytest.approx((0.5 + z0) / 2, rel=1e-6)


def test_famo_next_batch_updates_the_logits_at_the_next_step_from_its_losses():
    """famo_update next-batch: the first step saves its losses (2, 1) and updates nothing; the
    second step's losses (1, 0.9) make the same xi update as the same-batch rule with those
    losses after the step, before the second step reads its weights."""
    s = build_strategy("famo", famo_lr=0.025, famo_gamma=0.001,
                       famo_update="next-batch").weighting
    assert not s.needs_new_losses
    s(term(2.0)[0], term(1.0)[0])
    assert s.logits.tolist() == [0.0, 0.0]
    total = s(term(1.0)[0], term(0.9)[0])
    delta = [math.log(2.0) - math.log(1.0), math.log(1.0) - math.log(0.9)]
    xi = adam([[0.25 * (delta[0] - delta[1]), 0.25 * (delta[1] - delta[0])]], 0.025)
    assert s.logits.tolist() == pytest.approx(xi, rel=1e-5)
    z0 = math.exp(xi[0]) / (math.exp(xi[0]) + math.exp(xi[1]))
    c = 1 / (z0 / 1.0 + (1 - z0) / 0.9)
    assert total.item() == pytest.approx(c * (1 - z0) * math.log(0.9), rel=1e-5)


def test_famo_next_batch_needs_no_extra_forward_pass_and_resumes_exactly(tiny, tmp_path,
                                                                         monkeypatch):
    import lossbench.training.trainer as trainer

    cfg = load_config(tiny, {"strategy": "famo", "famo_update": "next-batch"})
    assert_resume_equals_whole(cfg, tmp_path)  # the last step's losses are in the checkpoint
    calls = []
    real = trainer.compute_losses
    monkeypatch.setattr(trainer, "compute_losses", lambda *a: calls.append(1) or real(*a))
    one = load_config(tiny, {"strategy": "famo", "famo_update": "next-batch", "epochs": 1})
    train_one(one, task_of(one), None, lambda *_: None, lambda *_: None)
    assert len(calls) == 2  # 2 steps, one forward pass each


def test_famo_gets_the_same_batch_again_with_the_same_draws(tiny, monkeypatch):
    """The engine's losses after the step: one extra forward per step, the same inputs and
    the same augmented view (the epoch generator at the same state), and the epoch's
    generator does not move (the next batch is the same as without FAMO)."""
    import lossbench.training.trainer as trainer

    calls = []
    real = trainer.compute_losses

    def spy(model, inputs, targets, cfg, epoch, generator):
        calls.append((inputs.clone(), generator.get_state().clone(), torch.is_grad_enabled()))
        return real(model, inputs, targets, cfg, epoch, generator)

    monkeypatch.setattr(trainer, "compute_losses", spy)
    cfg = load_config(tiny, {"strategy": "famo", "epochs": 1, "dropout": 0.2})
    train_one(cfg, task_of(cfg), None, lambda *_: None, lambda *_: None)
    assert len(calls) == 4  # 2 steps, each with its losses again
    for (x, g, grad), (y, h, again) in (calls[:2], calls[2:]):
        assert torch.equal(x, y) and torch.equal(g, h) and grad and not again
    plain = load_config(tiny, {"epochs": 1, "dropout": 0.2})
    calls.clear()
    train_one(plain, task_of(plain), None, lambda *_: None, lambda *_: None)
    assert torch.equal(calls[1][1], h)  # the second batch's state: as without FAMO


def test_losses_again_draws_the_same_view_and_dropout_masks(tiny):
    """With unchanged weights the losses computed again are the step's, bit for bit (the same
    augmented view and dropout masks), and neither the epoch generator nor the global RNG
    has moved."""
    from lossbench.seeds import epoch_generator
    from lossbench.training.losses import compute_losses
    from lossbench.training.trainer import init_model, losses_again, replay_point

    cfg = load_config(tiny, {"dropout": 0.3})
    task = task_of(cfg)
    model = init_model(task, cfg, torch.device("cpu")).train()
    generator = epoch_generator(123, 1)
    inputs, targets = task.train.inputs[:8], task.train.targets[:8]
    replay = replay_point(generator, torch.device("cpu"))
    first = compute_losses(model, inputs, targets, cfg.losses, 1, generator)
    state, rng = generator.get_state(), torch.get_rng_state()
    again = losses_again(model, inputs, targets, cfg.losses, 1, replay)
    for a, b in ((first.main, again.main), (first.aux, again.aux)):
        assert torch.equal(a.per_example.detach(), b.per_example)
    assert torch.equal(generator.get_state(), state) and torch.equal(torch.get_rng_state(), rng)


# --- MetaBalance ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant, t1, t2", [
    ("reduce", [3.0, 4.0 + 10.0 * 0.65], [1.5, 0.0]),        # t1's g_aux larger: reduced
    ("enlarge", [3.0, 14.0], [1.0 + 0.5 * 1.7, 0.0]),        # t2's g_aux smaller: enlarged
    ("both", [3.0, 4.0 + 10.0 * 0.65], [1.0 + 0.5 * 1.7, 0.0]),
])
def test_metabalance_moves_each_tensors_aux_gradient_towards_main(variant, t1, t2):
    """Two tensors: ||g_main|| = 5, 1; ||g_aux|| = 10, 0.5. Step 1's moving averages are
    0.1 of the norms, so the factors are (5 / 10) 0.7 + 0.3 = 0.65 and (1 / 0.5) 0.7 + 0.3
    = 1.7; a third tensor L_aux does not reach keeps g_main."""
    s = build_strategy("metabalance", mb_beta=0.9, mb_relax=0.7, mb_variant=variant).weighting
    g_main = [torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0]), torch.tensor([2.0])]
    g_aux = [torch.tensor([0.0, 10.0]), torch.tensor([0.5, 0.0]), torch.tensor([0.0])]
    out = s.combine_grads(g_main, g_aux)
    assert [g.tolist() for g in out] == [pytest.approx(t1), pytest.approx(t2), [2.0]]
    g_aux[0] = torch.tensor([0.0, 20.0])  # step 2: m_main = 0.95, m_aux = 0.9 + 2 = 2.9
    out = s.combine_grads(g_main, g_aux)
    scale = 0.95 / 2.9 * 0.7 + 0.3 if variant != "enlarge" else 1.0
    assert out[0].tolist() == pytest.approx([3.0, 4.0 + 20.0 * scale])


# --- shared_only -----------------------------------------------------------------------------


class TwoParams(torch.nn.Module):
    """w, reached by both losses; c (an item bias), reached by L_main only."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))
        self.c = torch.nn.Parameter(torch.tensor(0.0))


@pytest.mark.parametrize("shared_only, w_grad, c_grad", [
    # all parameters as one vector: g_main = (-1, -2), g_aux = (3, 0) conflict (dot -3):
    # g_main - (-3/9) g_aux + g_aux - (-3/5) g_main = (0, -2) + (2.4, -1.2)
    (False, 2.4, -3.2),
    # only w is combined: -1 and 3 project to 0 each; c takes g_main alone
    (True, 0.0, -2.0),
])
def test_shared_only_combines_only_what_both_losses_reach(shared_only, w_grad, c_grad):
    model = TwoParams()
    main = (model.w - 1) ** 2 + (model.c - 1) ** 2
    aux = (model.w + 1) ** 2
    losses = Losses(LossTerm(main.reshape(1), main), LossTerm(aux.reshape(1), aux))
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    train_step(model, optimizer, build_strategy("pcgrad"), losses, shared_only)
    assert float(model.w.detach()) == pytest.approx(0.5 - w_grad)
    assert float(model.c.detach()) == pytest.approx(0.0 - c_grad)


def test_shared_only_changes_item_bias_runs_and_is_off_by_default(tiny):
    assert load_config(tiny).strategy.shared_only is False
    rows = {}
    for shared_only in (False, True):
        cfg = load_config(tiny, {"strategy": "pcgrad", "item_bias": True, "epochs": 1,
                                 "shared_only": shared_only})
        rows[shared_only] = train_one(cfg, task_of(cfg), None, lambda *_: None,
                                      lambda *_: None).rows[0]
    assert rows[False]["val_loss"] != rows[True]["val_loss"]


# --- resuming and the command line -----------------------------------------------------------


@pytest.mark.parametrize("strategy", NEW)
def test_a_resumed_run_equals_an_uninterrupted_one(strategy, tiny, tmp_path):
    assert_resume_equals_whole(load_config(tiny, {"strategy": strategy, "device": "cpu"}),
                               tmp_path)


@pytest.mark.parametrize("strategy", NEW)
def test_each_method_trains_from_the_command_line(strategy, runner, tmp_path):
    from lossbench.cli.app import app

    result = runner.invoke(app, ["run", "--config", str(TINY), "--strategy", strategy,
                                 "--set", "epochs=1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert strategy in result.stdout
