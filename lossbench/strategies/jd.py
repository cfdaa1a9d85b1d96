"""Gradient aggregators of torchjd (Jacobian descent, https://torchjd.org) as strategies:
MGDA, CAGrad, Nash-MTL, IMTL-G, Aligned-MTL, UPGrad, GradDrop, DualProj, GradVac, ConFIG.
They need the extra `lossbench[jd]` (torchjd and its solvers).

Each one sees the two losses' gradients with respect to the model's parameters as the rows of
one 2 x P matrix J = [g_main; g_aux] (the order of `gradient.flatten`), gives J to the
torchjd aggregator and applies the vector it returns. Memory: J is the only copy of the
gradients (each row written in place), and every aggregator but GradDrop weights the two
gradients from the 2 x 2 Gramian J J^T alone (ConFIG through a 2 x 2 stand-in for J), so a
step holds J and the combined gradient, 3 P numbers beside the trainer's per-parameter
gradients, never a per-example Jacobian. GradDrop, which acts per coordinate, works on
chunks of J's columns (`CHUNK`): a few MB more.

This module imports without torchjd (`lossbench strategies` reads the classes' docstrings
on a machine without the extra); building a strategy imports it, and a missing extra is a
one-line ConfigError that says what to install (`catalog.Entry.require`).

The scale of the combined gradient is each method's own: MGDA, CAGrad, IMTL-G, Aligned-MTL,
UPGrad and DualProj start from (or are a convex combination on the scale of) the *mean* of
the two gradients, half of plain's g_main + g_aux when they agree; GradDrop, GradVac and
ConFIG are on the scale of their *sum*, as lossbench's pcgrad; Nash-MTL's norm is clipped to
`nash_max_norm`. `lossbench tune` tunes the learning rate per strategy, which absorbs that.

State. Aggregators with state (GradVac's EMA of the cosine, Nash-MTL's last weights and step
count) keep it in public attributes of the strategy, which the checkpoint saves
(`Strategy.get_extra_state`), and hand it to the aggregator around each call: a resumed run
continues as if never stopped. Those that draw random numbers (GradDrop's signs) draw from
torch's global RNG; the strategy swaps in its own stream for the call, made every epoch from
`seeds.strategy_generator` (`begin_epoch`), and puts the global RNG back: dropout's draws
stay those of every other strategy, and paired and resumed runs draw alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from lossbench.errors import ConfigError
from lossbench.seeds import strategy_generator
from lossbench.strategies.catalog import BUILTINS
from lossbench.strategies.gradient import GradientStrategy, unflatten

CHUNK = 1 << 18
"""Columns of J that GradDrop's aggregator sees per call (its work space: ~8 MB in float32)."""


def jacobian(g_main: list[Tensor], g_aux: list[Tensor]) -> Tensor:
    """The 2 x P matrix [flatten(g_main); flatten(g_aux)], each row written in place (no
    flattened copy besides it)."""
    size = sum(g.numel() for g in g_main)
    matrix = g_main[0].new_empty(2, size)
    for row, grads in enumerate((g_main, g_aux)):
        torch.cat([g.reshape(-1) for g in grads], out=matrix[row])
    return matrix


def cosine_of(gramian: Tensor) -> Tensor:
    """cos(g_main, g_aux) from the Gramian J J^T, 0 when either gradient is 0."""
    norms = (gramian[0, 0] * gramian[1, 1]).clamp_min(0.0).sqrt()
    return torch.where(norms > 0, gramian[0, 1] / norms.clamp_min(1e-30),
                       torch.zeros_like(norms))


def entry_of(cls: type) -> Any:
    """The catalog's Entry whose target is `cls` (for its name and the extra it needs), or
    None for a class that is not a built-in (a plugin's subclass)."""
    target = f"{cls.__module__}:{cls.__name__}"
    return next((e for e in BUILTINS if e.target == target), None)


class Aggregated(GradientStrategy):
    """A torchjd aggregator on J = [g_main; g_aux]. Subclasses pass their settings to this
    constructor (they become attributes) and implement `build` (the aggregator from them);
    `weighted` ones combine J's rows with weights w (d = w_main g_main + w_aux g_aux), which
    are logged; `draws`: the aggregator uses torch's global RNG, which is then swapped for a
    private stream (`private_rng`)."""

    logs = ("cos", "w_main", "w_aux")
    weighted = True
    draws = False

    def __init__(self, **settings: Any) -> None:
        super().__init__()
        vars(self).update(settings)
        entry = entry_of(type(self))
        self._tag = entry.name if entry is not None else type(self).__name__
        self._stream: torch.Generator | None = None  # `draws`: this epoch's stream
        self._cuda_seed, self._cuda_state = 0, None
        if entry is not None:
            entry.require()  # torchjd and the solvers this one needs, as `run` checks them
        try:
            aggregator = self.build()
        except ImportError as exc:  # e.g. a solver torchjd's own extras bring
            raise ConfigError(f"strategy '{self._tag}' cannot build its torchjd aggregator "
                              f'({exc}): pip install "lossbench[jd]"') from None
        # Not a submodule (object.__setattr__ skips nn.Module's registration): its state is
        # the strategy's public attributes (`push`, `pull`), its buffers are no part of the
        # strategy's state_dict.
        object.__setattr__(self, "_aggregator", aggregator)

    def build(self) -> Any:  # pragma: no cover - every subclass has one
        raise NotImplementedError

    def push(self, aggregator: Any) -> None:
        """Hand the checkpointed state to the aggregator before a call (stateful ones)."""

    def pull(self, aggregator: Any) -> None:
        """Take the aggregator's state back after a call (stateful ones)."""

    def weights(self, aggregator: Any, matrix: Tensor, gramian: Tensor) -> Tensor:
        """The weights of J's two rows (weighted aggregators): by default the Gramian
        weighting's, on the Gramian computed once."""
        return aggregator.gramian_weighting(gramian)

    def aggregate(self, aggregator: Any, matrix: Tensor) -> Tensor:
        """The combined gradient (aggregators without weights): torchjd's, on all of J."""
        return aggregator(matrix)

    def combine_grads(self, g_main: list[Tensor], g_aux: list[Tensor]) -> list[Tensor]:
        matrix = jacobian(g_main, g_aux)
        aggregator = self._aggregator
        with torch.no_grad(), self.private_rng(matrix.device):
            gramian = matrix @ matrix.T
            self.push(aggregator)
            if self.weighted:
                w = self.weights(aggregator, matrix, gramian).to(matrix)
                combined = w @ matrix
            else:
                combined = self.aggregate(aggregator, matrix)
            self.pull(aggregator)
        stats = {"cos": cosine_of(gramian)}
        if self.weighted:
            stats |= {"w_main": w[0], "w_aux": w[1]}
        self.record(**stats)
        return unflatten(combined, g_main)

    def begin_epoch(self, epoch: int, seed: int) -> None:
        """`draws`: this epoch's private stream, `seeds.strategy_generator(seed, epoch, name)`
        (a pure function of them: paired runs draw alike, a resumed run continues exactly)."""
        if self.draws:
            self._stream = strategy_generator(seed, epoch, self._tag)
            self._cuda_seed = int(torch.randint(2**62, (), generator=self._stream))
            self._cuda_state = None

    @contextmanager
    def private_rng(self, device: torch.device) -> Iterator[None]:
        """For `draws` aggregators: run the block with torch's global RNG (of the CPU and of
        `device`) on the private stream, then put the global RNG back as it was: the
        aggregator's draws move neither dropout's RNG nor the batches. Nothing for the
        others."""
        if not self.draws:
            yield
            return
        if self._stream is None:  # called outside a run's epochs (no begin_epoch)
            self.begin_epoch(0, 0)
        cuda = device.type == "cuda"
        index = (device.index if device.index is not None else torch.cuda.current_device()
                 ) if cuda else 0
        with torch.random.fork_rng(devices=[index] if cuda else [], device_type="cuda"):
            torch.set_rng_state(self._stream.get_state())
            if cuda and self._cuda_state is None:
                torch.cuda.default_generators[index].manual_seed(self._cuda_seed)
            elif cuda:
                torch.cuda.set_rng_state(self._cuda_state, index)
            yield
            self._stream.set_state(torch.get_rng_state())
            if cuda:
                self._cuda_state = torch.cuda.get_rng_state(index)


class MGDA(Aggregated):
    """Multiple-gradient descent (Désidéri 2012; Sener & Koltun, NeurIPS 2018, Algorithm 2,
    Frank-Wolfe): the minimum-norm point of the convex hull of the gradients,

        d = w g_main + (1 - w) g_aux,   w = argmin_{w in [0, 1]} |w g_main + (1 - w) g_aux|,

    for two losses the closed form w = clamp((g_aux - g_main) . g_aux / |g_main - g_aux|^2,
    0, 1), which Frank-Wolfe reaches in one step. Its weights sum to 1 (the scale of the mean
    gradient); d = 0 when the two point in exactly opposite directions (Pareto stationary).
    torchjd's `MGDA`. Logs the epoch means of the cosine and of both weights."""

    citation = ("Sener & Koltun, Multi-Task Learning as Multi-Objective Optimization, "
                "NeurIPS 2018; Désidéri, Multiple-gradient descent algorithm (MGDA) for "
                "multiobjective optimization, Comptes Rendus Mathématique 2012")

    def __init__(self, *, mgda_epsilon: float, mgda_max_iters: int) -> None:
        super().__init__(epsilon=mgda_epsilon, max_iters=mgda_max_iters)

    def build(self) -> Any:
        from torchjd.aggregation import MGDA as Aggregator

        return Aggregator(epsilon=self.epsilon, max_iters=self.max_iters)


class CAGrad(Aggregated):
    """Conflict-averse gradient descent (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021,
    Algorithm 1): the direction that maximises the worst loss's improvement within a ball
    around the mean gradient g0 = (g_main + g_aux) / 2,

        d = g0 + (sqrt(phi) / |g_w|) g_w,   g_w = argmin_w  g_w . g0 + sqrt(phi) |g_w|,
        phi = c^2 |g0|^2,  g_w a convex combination of the gradients,

    solved on the (normalised) Gramian with cvxpy's Clarabel. c = `cagrad_c` (0: the mean
    gradient; the paper's convergence guarantee needs c < 1). torchjd's `CAGrad`; as it,
    without the paper's optional rescaling by 1 / (1 + c^2). Logs the cosine and the
    weights of d."""

    citation = ("Liu, Liu, Jin, Stone & Liu, Conflict-Averse Gradient Descent for Multi-task "
                "Learning, NeurIPS 2021")

    def __init__(self, *, cagrad_c: float, cagrad_norm_eps: float) -> None:
        super().__init__(c=cagrad_c, norm_eps=cagrad_norm_eps)

    def build(self) -> Any:
        from torchjd.aggregation import CAGrad as Aggregator

        return Aggregator(c=self.c, norm_eps=self.norm_eps)


class NashMTL(Aggregated):
    """Nash-MTL (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya, ICML 2022,
    Algorithm 1): the gradients bargain for the update; the weights solve

        (G w)_k = 1 / w_k,   G = J J^T / |J J^T|,   d = w_main g_main + w_aux g_aux,

    by `nash_optim_niter` steps of a sequential convex program (cvxpy with ECOS), every
    `nash_update_weights_every` steps (the weights are reused in between); d is clipped to
    norm `nash_max_norm` (0: never). torchjd's `NashMTL` (adapted from the authors' code).
    Stateful: the last weights and the step count are checkpointed. Logs the cosine and the
    weights (after clipping)."""

    citation = ("Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya, Multi-Task "
                "Learning as a Bargaining Game, ICML 2022")

    def __init__(self, *, nash_max_norm: float, nash_update_weights_every: int,
                 nash_optim_niter: int) -> None:
        super().__init__(max_norm=nash_max_norm, update_weights_every=nash_update_weights_every,
                         optim_niter=nash_optim_niter)
        self.nash_step = 0.0  # the aggregator's step count
        self.nash_alpha: Tensor | None = None  # its last weights (float64 as it solves)

    def build(self) -> Any:
        from torchjd.aggregation import NashMTL as Aggregator

        return Aggregator(n_tasks=2, max_norm=self.max_norm,
                          update_weights_every=self.update_weights_every,
                          optim_niter=self.optim_niter)

    def weights(self, aggregator: Any, matrix: Tensor, gramian: Tensor) -> Tensor:
        with warnings.catch_warnings():  # cvxpy: its problem is not DPP (torchjd's, as is)
            warnings.filterwarnings("ignore", message=".*not DPP", category=UserWarning)
            return aggregator.weighting(matrix)  # a weighting of J itself, not of its Gramian

    def push(self, aggregator: Any) -> None:
        weighting = aggregator.weighting
        if self.nash_step == weighting.step:
            return  # the aggregator already holds this state (no resume since its last call)
        weighting.step = self.nash_step
        weighting.prvs_alpha = self.nash_alpha.cpu().numpy().copy()
        if getattr(weighting, "prob", None) is None:  # a resumed run: build the problem
            weighting._init_optim_problem()

    def pull(self, aggregator: Any) -> None:
        weighting = aggregator.weighting
        self.nash_step = float(weighting.step)
        self.nash_alpha = torch.from_numpy(weighting.prvs_alpha.copy())


class IMTLG(Aggregated):
    """Impartial multi-task learning, gradient part (Liu, Li, Kuang, Xue, Chen, Yang, Liao &
    Zhang, ICLR 2021), in the form of Quinton & Rey (2024) that also takes linearly dependent
    gradients: d = w_main g_main + w_aux g_aux with weights summing to 1 such that d has the
    same projection onto each unit gradient g_k / |g_k|,

        w = pinv(G) diag(G)^(1/2),  normalised to sum 1   (G = J J^T),

    (w = 0 when that sum is 0). torchjd's `IMTLG`. Logs the cosine and the weights."""

    citation = ("Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, Towards Impartial Multi-task "
                "Learning, ICLR 2021")

    def build(self) -> Any:
        from torchjd.aggregation import IMTLG as Aggregator

        return Aggregator()


class AlignedMTL(Aggregated):
    """Aligned-MTL (Senushkin, Patakin, Kuznetsov & Konushin, CVPR 2023, Algorithm 1):
    makes the gradient system well conditioned before averaging. With the eigendecomposition
    G = J J^T = V diag(lambda) V^T,

        B = sqrt(s) V diag(lambda)^(-1/2) V^T,   w = B (1/2, 1/2),   d = w^T J,

    so the aligned gradients are orthogonal with equal norms sqrt(s); s is the smallest
    eigenvalue (`aligned_scale_mode` min, the paper), the median or the mean (rmse, the
    authors' code). torchjd's `AlignedMTL`. Logs the cosine and the weights."""

    citation = ("Senushkin, Patakin, Kuznetsov & Konushin, Independent Component Alignment "
                "for Multi-Task Learning, CVPR 2023")

    def __init__(self, *, aligned_scale_mode: str) -> None:
        super().__init__(scale_mode=aligned_scale_mode)

    def build(self) -> Any:
        from torchjd.aggregation import AlignedMTL as Aggregator

        return Aggregator(scale_mode=self.scale_mode)


class UPGrad(Aggregated):
    """Unconflicting projection of gradients (Quinton & Rey, 2024): each gradient, weighted
    1/2, is projected onto the dual cone of the two gradients (the directions that conflict
    with neither), and the projections are added,

        d = pi(g_main / 2) + pi(g_aux / 2),   pi(x) = argmin_{y . g_k >= 0 for all k} |y - x|,

    so d never conflicts with either gradient and equals their mean when they do not conflict.
    The projections are quadratic programs on the Gramian (quadprog). torchjd's `UPGrad`.
    Logs the cosine and the weights of d."""

    citation = ("Quinton & Rey, Jacobian Descent for Multi-Objective Optimization, "
                "arXiv:2406.16232, 2024")

    def build(self) -> Any:
        from torchjd.aggregation import UPGrad as Aggregator

        return Aggregator()


class GradDrop(Aggregated):
    """Gradient sign dropout (Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov,
    NeurIPS 2020, Algorithm 1, lines 10-15): per coordinate, the positive-sign purity
    P = (1 + sum_k g_k / sum_k |g_k|) / 2 decides at random which sign survives: with
    probability P only the positive components are kept, otherwise only the negative ones,

        d = sum_k (l_k + (1 - l_k) M_k) g_k,   M_k = [P > U] [g_k > 0] + [P < U] [g_k < 0],

    U ~ uniform(0, 1) per coordinate, l_k the leak of gradient k (`graddrop_leak_main`,
    `graddrop_leak_aux`; 1 keeps that gradient whole). On the scale of the sum. torchjd's
    `GradDrop`; its draws come from a private stream (the module's docstring). Logs the
    cosine."""

    logs = ("cos",)
    weighted = False
    draws = True
    citation = ("Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, Just Pick a Sign: "
                "Optimizing Deep Multitask Models with Gradient Sign Dropout, NeurIPS 2020")

    def __init__(self, *, graddrop_leak_main: float, graddrop_leak_aux: float) -> None:
        super().__init__(leak=(graddrop_leak_main, graddrop_leak_aux))

    def build(self) -> Any:
        from torchjd.aggregation import GradDrop as Aggregator

        leak = torch.tensor(self.leak) if any(self.leak) else None
        return Aggregator(leak=leak)

    def aggregate(self, aggregator: Any, matrix: Tensor) -> Tensor:
        """GradDrop acts on each coordinate alone: torchjd's, on CHUNK columns of J at a
        time, so that its work space (purities, draws, masks: several vectors as long as its
        input) stays small beside J."""
        combined = matrix.new_empty(matrix.shape[1])
        for start in range(0, matrix.shape[1], CHUNK):
            combined[start:start + CHUNK] = aggregator(matrix[:, start:start + CHUNK])
        return combined


class DualProj(Aggregated):
    """Dual projection (Lopez-Paz & Ranzato, NeurIPS 2017, Equation 11, as GEM projects;
    named in Quinton & Rey, 2024): the mean gradient projected onto the dual cone of the
    gradients, the closest direction to it that conflicts with neither,

        d = argmin_{y . g_k >= 0 for all k} |y - (g_main + g_aux) / 2|,

    a quadratic program on the Gramian (quadprog). torchjd's `DualProj`. Logs the cosine and
    the weights of d."""

    citation = ("Lopez-Paz & Ranzato, Gradient Episodic Memory for Continual Learning, "
                "NeurIPS 2017")

    def build(self) -> Any:
        from torchjd.aggregation import DualProj as Aggregator

        return Aggregator()


class GradVac(Aggregated):
    """Gradient vaccine (Wang, Tsvetkov, Firat & Cao, ICLR 2021): each gradient is moved
    towards the other until their cosine reaches a target phi_hat, an EMA of the cosines seen
    so far. For g_i and the other gradient g_j, with phi = cos(g_i, g_j) < phi_hat:

        g_i <- g_i + |g_i| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 - phi_hat^2))
                     / (|g_j| sqrt(1 - phi_hat^2)) g_j,

    then phi_hat <- (1 - beta) phi_hat + beta phi (beta = `gradvac_beta`); d = g_main + g_aux
    (modified). Targets start at 0, where it is PCGrad. torchjd's `GradVac`. Stateful: the
    targets phi_hat are checkpointed. Logs the cosine and the weights of d."""

    draws = True  # the order in which it visits the other gradients (one, here)
    citation = ("Wang, Tsvetkov, Firat & Cao, Gradient Vaccine: Investigating and Improving "
                "Multi-task Optimization in Massively Multilingual Models, ICLR 2021")

    def __init__(self, *, gradvac_beta: float, gradvac_eps: float) -> None:
        super().__init__(beta=gradvac_beta, eps=gradvac_eps)
        self.phi_hat: Tensor | None = None  # 2 x 2 EMA targets, once the first step ran

    def build(self) -> Any:
        from torchjd.aggregation import GradVac as Aggregator

        return Aggregator(beta=self.beta, eps=self.eps)

    def push(self, aggregator: Any) -> None:
        weighting = aggregator.gramian_weighting
        if self.phi_hat is not None and weighting._phi_t is not self.phi_hat:
            weighting._phi_t = self.phi_hat  # a resumed run: its targets
            weighting._state_key = (2, self.phi_hat.dtype)

    def pull(self, aggregator: Any) -> None:
        self.phi_hat = aggregator.gramian_weighting._phi_t


class ConFIG(Aggregated):
    """Conflict-free inverse gradients (Liu, Chu & Thuerey, ICLR 2025, Equation 2): the
    direction whose cosine is the same with both gradients, with the length of the sum of the
    gradients' projections onto it,

        u = normalise(pinv([g_main / |g_main|; g_aux / |g_aux|]) (1, 1)),
        d = (g_main . u + g_aux . u) u,

    on the scale of the sum. torchjd's `ConFIG`, given a 2 x 2 matrix L whose rows have the
    gradients' Gramian (L L^T = J J^T, `surrogate`) instead of J itself: ConFIG only sees
    the rows' lengths and angles, so ConFIG(J) = ConFIG(L) pinv(L) J exactly, a combination
    of the two gradients. On J, torch's pseudo-inverse would drop singular values below
    P eps of the largest (P the number of parameters) and, from P ~ 8e6 in float32, return
    0 for any two gradients that conflict; on L it needs no more memory than J. Logs the
    cosine and the weights of d."""

    citation = ("Liu, Chu & Thuerey, ConFIG: Towards Conflict-free Training of Physics "
                "Informed Neural Networks, ICLR 2025")

    def build(self) -> Any:
        from torchjd.aggregation import ConFIG as Aggregator

        return Aggregator()

    def weights(self, aggregator: Any, matrix: Tensor, gramian: Tensor) -> Tensor:
        small, inverse = surrogate(gramian)
        return aggregator(small) @ inverse


def surrogate(gramian: Tensor) -> tuple[Tensor, Tensor]:
    """A 2 x 2 matrix L (float64) with L L^T = `gramian` (G = V diag(lambda) V^T, L = V
    diag(lambda)^(1/2)), and its pseudo-inverse; eigenvalues below the gradients' rounding
    (their dtype's eps times the largest) count as 0 (parallel gradients)."""
    values, vectors = torch.linalg.eigh(gramian.double().cpu())  # 2 x 2: no GPU kernel
    keep = values > values.max().clamp_min(0.0) * 2 * torch.finfo(gramian.dtype).eps
    roots = values.clamp_min(0.0).sqrt() * keep
    inverse = torch.where(keep, 1.0 / torch.where(keep, roots, 1.0), 0.0)
    return vectors * roots, (vectors * inverse).T
