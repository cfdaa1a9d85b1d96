"""Each strategy against a hand computation of its value and gradient, over several steps."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import one_parameter_step

from lossbench.strategies import build_strategy, flood

ALPHA, LAM, THETA0, EPS = 0.1, 5.0, 0.0, 1e-12
STEPS = [(2.0, 1.0), (1.5, 0.8), (1.2, 0.9), (0.7, 1.3)]  # (L_main, L_aux) per step


def leaves(main: float, aux: float) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(main, dtype=torch.float64, requires_grad=True),
            torch.tensor(aux, dtype=torch.float64, requires_grad=True))


def hand_reweight(main: float, aux: float, theta_old: float, detach: bool):
    """Value, dL/dmain, dL/daux and theta_new of L = m + theta_new * a, worked out by hand."""
    denom = main + LAM * aux + EPS
    theta_new = ALPHA * main / denom + (1 - ALPHA) * theta_old
    value = main + theta_new * aux
    if detach:
        return value, 1.0, theta_new, theta_new
    dtheta_dm = ALPHA * (LAM * aux + EPS) / denom**2
    dtheta_da = -ALPHA * main * LAM / denom**2
    return value, 1.0 + aux * dtheta_dm, theta_new + aux * dtheta_da, theta_new


def test_flood_values_from_the_style_guide():
    assert float(flood(torch.tensor(0.9), 0.5)) == pytest.approx(0.9)
    assert float(flood(torch.tensor(0.3), 0.5)) == pytest.approx(0.7)


def test_flood_gradient_flips_sign_below_b():
    for loss, expected in ((0.9, 1.0), (0.3, -1.0)):
        x = torch.tensor(loss, requires_grad=True)
        flood(x, 0.5).backward()
        assert float(x.grad) == expected


def test_plain_is_the_sum_with_unit_gradients():
    s = build_strategy("plain")
    for main_value, aux_value in STEPS:
        main, aux = leaves(main_value, aux_value)
        total = s(main, aux).objective
        total.backward()
        assert total.item() == pytest.approx(main_value + aux_value)
        assert (float(main.grad), float(aux.grad)) == (1.0, 1.0)
        assert s.theta == 1.0


def test_flood_on_the_total_over_steps():
    b = 2.5
    s = build_strategy("flood", b=b)
    for main_value, aux_value in STEPS:
        main, aux = leaves(main_value, aux_value)
        total = s(main, aux).objective
        total.backward()
        raw = main_value + aux_value
        sign = 1.0 if raw > b else -1.0
        assert total.item() == pytest.approx(abs(raw - b) + b)
        assert float(s.raw_total) == pytest.approx(raw)
        assert float(main.grad) == sign and float(aux.grad) == sign


@pytest.mark.parametrize("detach", [False, True])
def test_reweight_value_gradient_and_theta_over_steps(detach):
    s = build_strategy("reweight", alpha=ALPHA, lam=LAM, theta0=THETA0, detach_theta=detach)
    theta = THETA0
    for main_value, aux_value in STEPS:
        main, aux = leaves(main_value, aux_value)
        total = s(main, aux).objective
        total.backward()
        value, grad_main, grad_aux, theta = hand_reweight(main_value, aux_value, theta, detach)
        assert total.item() == pytest.approx(value, rel=1e-12)
        assert float(main.grad) == pytest.approx(grad_main, rel=1e-12)
        assert float(aux.grad) == pytest.approx(grad_aux, rel=1e-12)
        assert s.theta == pytest.approx(theta, rel=1e-12)


def test_reweight_first_step_by_hand():
    # m = 2, a = 1: theta~ = 2/7, theta_1 = 0.1 * 2/7, L = 2 + theta_1.
    s = build_strategy("reweight", alpha=0.1, lam=5.0, theta0=0.0)
    main, aux = leaves(2.0, 1.0)
    total = s(main, aux).objective
    total.backward()
    assert total.item() == pytest.approx(2.0 + 0.2 / 7)
    assert float(main.grad) == pytest.approx(1.0 + 0.1 * 5.0 / 49)
    assert float(aux.grad) == pytest.approx(0.2 / 7 - 0.1 * 2.0 * 5.0 / 49)


@pytest.mark.parametrize("detach", [False, True])
def test_reweight_flood_floods_the_reweighted_total(detach):
    b = 1.6
    s = build_strategy("reweight-flood", alpha=ALPHA, lam=LAM, theta0=0.5, b=b,
                       detach_theta=detach)
    theta = 0.5
    for main_value, aux_value in STEPS:
        main, aux = leaves(main_value, aux_value)
        total = s(main, aux).objective
        total.backward()
        value, grad_main, grad_aux, theta = hand_reweight(main_value, aux_value, theta, detach)
        sign = 1.0 if value > b else -1.0
        assert total.item() == pytest.approx(abs(value - b) + b, rel=1e-12)
        assert float(main.grad) == pytest.approx(sign * grad_main, rel=1e-12)
        assert float(aux.grad) == pytest.approx(sign * grad_aux, rel=1e-12)
        assert s.theta == pytest.approx(theta, rel=1e-12)


def test_theta_is_fresh_for_every_strategy_object():
    first = build_strategy("reweight", theta0=0.25)
    first(*leaves(2.0, 1.0))
    assert first.theta != 0.25
    assert build_strategy("reweight", theta0=0.25).theta == 0.25


def test_reweight_keeps_theta_finite_when_both_losses_are_zero():
    s = build_strategy("reweight", lam=0.0)
    total = s(*leaves(0.0, 0.0)).objective
    assert math.isfinite(total.item()) and math.isfinite(s.theta)


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "bogus"}, "unknown strategy"),
    ({"name": "flood", "b": -0.1}, "b must be >= 0"),
    ({"name": "reweight", "alpha": 0.0}, "alpha must be in (0, 1]"),
    ({"name": "reweight", "alpha": 1.5}, "alpha must be in (0, 1]"),
    ({"name": "reweight", "lam": -1.0}, "lam must be >= 0"),
])
def test_bad_parameters_are_config_errors(kwargs, message):
    from lossbench.errors import ConfigError

    name = kwargs.pop("name")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        build_strategy(name, **kwargs)


# --- the field's baselines, by hand ------------------------------------------------------


def term(*values: float) -> tuple:
    """A LossTerm of leaf per-example values (float64) and its mean; returns (term, leaf)."""
    from lossbench.strategies import LossTerm

    leaf = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    return LossTerm(leaf, leaf.mean()), leaf


def test_weighted_is_main_plus_w_aux():
    s = build_strategy("weighted", w=0.3)
    (main, m), (aux, a) = term(2.0), term(1.5)
    step = s(main, aux)
    step.objective.backward()
    assert step.objective.item() == pytest.approx(2.0 + 0.3 * 1.5)
    assert (float(m.grad), float(a.grad)) == pytest.approx((1.0, 0.3))


def test_uncertainty_value_and_gradients_by_hand():
    s = build_strategy("uncertainty", log_var0=-0.5)
    (main, m), (aux, a) = term(2.0), term(1.0)
    total = s(main, aux).objective
    total.backward()
    w = 1 / (2 * math.exp(-0.5))
    assert total.item() == pytest.approx(2.0 * w - 0.25 + 1.0 * w - 0.25)
    assert (float(m.grad), float(a.grad)) == pytest.approx((w, w))
    # dL/ds_k = -L_k / (2 e^{s_k}) + 1/2
    assert s.weighting.log_var.grad.tolist() == pytest.approx([-2.0 * w + 0.5, -w + 0.5])
    state = s.weighting.log_state()
    assert (state["s_main"], state["w_aux"]) == pytest.approx((-0.5, w))


def test_dwa_weights_from_the_last_two_epochs():
    s = build_strategy("dwa", dwa_temp=2.0).weighting
    assert (s.w_main, s.w_aux) == (1.0, 1.0)
    s.end_epoch({"main": 2.0, "aux": 1.0})
    assert (s.w_main, s.w_aux) == (1.0, 1.0)  # equal weights in the first two epochs
    s.end_epoch({"main": 1.5, "aux": 0.9})
    r_main, r_aux = 1.5 / 2.0, 0.9 / 1.0
    expected = 2 * math.exp(r_main / 2) / (math.exp(r_main / 2) + math.exp(r_aux / 2))
    assert s.w_main == pytest.approx(expected) and s.w_main + s.w_aux == pytest.approx(2.0)
    (main, _), (aux, _) = term(3.0), term(2.0)
    total = s(main, aux)
    assert total.item() == pytest.approx(3.0 * s.w_main + 2.0 * s.w_aux)
    s.end_epoch({"main": 1.5, "aux": 0.0})  # L_aux = 0 (--aux none): ratio 0/0.9, then 1
    s.end_epoch({"main": 1.5, "aux": 0.0})
    assert math.isfinite(s.w_aux)


@pytest.mark.parametrize("g_aux, weighted, expected", [
    ([1.0, 1.0], False, [2.0, 1.0]),                        # cos > 0: g_aux used
    ([-1.0, 0.0], False, [1.0, 0.0]),                       # cos < 0: g_main alone
    ([1.0, 1.0], True, [1 + 2 ** -0.5, 2 ** -0.5]),         # weighted: max(0, cos) g_aux
])
def test_gcs_gates_the_auxiliary_gradient(g_aux, weighted, expected):
    s = build_strategy("gcs", gcs_weighted=weighted).weighting
    (combined,) = s.combine_grads([torch.tensor([1.0, 0.0])], [torch.tensor(g_aux)])
    assert combined.tolist() == pytest.approx(expected)
    assert s.log_state()["cos"] == pytest.approx(
        float(torch.nn.functional.cosine_similarity(torch.tensor([1.0, 0.0]),
                                                    torch.tensor(g_aux), dim=0)))


def test_pcgrad_projects_conflicting_gradients():
    s = build_strategy("pcgrad").weighting
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    (combined,) = s.combine_grads([g1], [g2])
    # g1 - (g1.g2 / |g2|^2) g2 = [0.5, 0.5]; g2 - (g1.g2 / |g1|^2) g1 = [0, 1]
    assert combined.tolist() == pytest.approx([0.5, 1.5])
    (same,) = s.combine_grads([g1], [torch.tensor([1.0, 1.0])])  # no conflict: the sum
    assert same.tolist() == pytest.approx([2.0, 1.0])
    assert s.log_state()["conflict"] == pytest.approx(0.5)  # one of two steps conflicted


def test_iflood_floods_each_main_example_before_the_weighting():
    s = build_strategy("iflood", b=0.5)
    (main, m), (aux, a) = term(0.2, 1.0, 3.0), term(0.1, 0.3)
    step = s(main, aux)
    step.objective.backward()
    assert step.objective.item() == pytest.approx((0.8 + 1.0 + 3.0) / 3 + 0.2)
    assert m.grad.tolist() == pytest.approx([-1 / 3, 1 / 3, 1 / 3])  # below b: ascent
    assert a.grad.tolist() == pytest.approx([0.5, 0.5])  # L_aux is not flooded
    assert float(step.below) == pytest.approx(1 / 3)  # the fraction of examples below b


def test_gradient_strategy_step_flips_sign_under_batch_flooding():
    """train_step with gcs-flood on a one-parameter model: L_main = (p - 1)^2 and
    L_aux = (p + 1)^2 conflict at p = 0.5 (g_main = -1, g_aux = 3: aux dropped); below b
    the update is flipped."""
    for b, sign in ((0.0, 1.0), (10.0, -1.0)):
        p, step = one_parameter_step(build_strategy("gcs-flood", b=b))
        assert float(step.total.detach()) == pytest.approx(0.25 + 2.25)
        assert p == pytest.approx(0.5 - 0.1 * sign * -1.0)
