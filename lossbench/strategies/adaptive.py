"""Adaptive loss weightings from the multi-task literature, for two losses (main, aux): random
loss weighting (RLW), GradNorm and FAMO. Each weighs L_main and L_aux per step; the
formula, and where it follows its reference code, is in each docstring.

Their weights are state of the strategy, not parameters of the run's optimiser: GradNorm and
FAMO train theirs with an Adam of their own (`OwnAdam`), saved in the checkpoint with the
rest of the state so that a resumed run continues exactly. Each logs the epoch means of the
weights it used (`w_main`, `w_aux`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.seeds import strategy_generator
from lossbench.strategies.base import LossTerm, Strategy

K = 2
"""The number of losses (tasks)."""


class EpochWeights(Strategy):
    """Shared parts: the logged epoch means of the weights used per step (kept on the
    device, read once per epoch)."""

    logs = ("w_main", "w_aux")

    def __init__(self) -> None:
        super().__init__()
        self._sum: Tensor | float = 0.0
        self._steps = 0

    def record(self, weights: Tensor) -> None:
        """Add one step's weights [w_main, w_aux] to the epoch sums."""
        self._sum = self._sum + weights.detach().float()
        self._steps += 1

    def log_state(self) -> dict[str, float]:
        if not self._steps:
            return dict.fromkeys(self.logs, float("nan"))
        w_main, w_aux = (self._sum / self._steps).tolist()
        return {"w_main": w_main, "w_aux": w_aux}

    def end_epoch(self, means: dict[str, float]) -> None:
        self._sum, self._steps = 0.0, 0


class OwnAdam(EpochWeights):
    """A weighting whose K weights (a buffer, not a parameter of the run's optimiser) follow
    an Adam of their own, written out (`adam_step`) because torch.optim.Adam's per-call
    overhead is larger than the rest of a step's weighting. Its moments are buffers and its
    step count a public attribute, so both are in the checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("adam_m", torch.zeros(K))
        self.register_buffer("adam_v", torch.zeros(K))
        self.adam_steps = 0

    def adam_step(self, tensor: Tensor, grad: Tensor, lr: float, weight_decay: float,
                  betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        """One step of torch.optim.Adam (defaults, L2 `weight_decay`) of `tensor` along
        `grad`, in place, in the single-tensor implementation's order of operations:

            g = grad + weight_decay * x,  m <- lerp(m, g, 1 - b1),  v <- b2 v + (1 - b2) g^2,
            x <- x - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
        beta1, beta2 = betas
        self.adam_steps += 1
        grad = grad.to(tensor.dtype)
        if weight_decay != 0:
            grad = grad.add(tensor, alpha=weight_decay)
        self.adam_m.lerp_(grad, 1 - beta1)
        self.adam_v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        correction1 = 1 - beta1 ** self.adam_steps
        correction2 = 1 - beta2 ** self.adam_steps
        denominator = (self.adam_v.sqrt() / correction2 ** 0.5).add_(eps)
        tensor.addcdiv_(self.adam_m, denominator, value=-lr / correction1)


class RLW(EpochWeights):
    """Random Loss Weighting (Lin, Ye, Zhang & Tsang, TMLR 2022), as LibMTL's
    `weighting/RLW.py` with its default normal distribution: every step draws

        z ~ N(0, 1)^K,   w = softmax(z),   L = w_main L_main + w_aux L_aux,   K = 2.

    As in LibMTL, the weights sum to 1 (LibMTL does not multiply them by K): the objective
    is on half the scale of the plain sum. The draws come from a generator of
    the strategy's own, made at every epoch from (batch seed, epoch, "rlw")
    (`seeds.strategy_generator`): paired runs of a seed draw the same weights, a resumed run
    continues exactly, and the batches and augmentations are those of every other strategy.
    Fusable: the fused engine calls each run's `begin_epoch`."""

    citation = ("Lin, Ye, Zhang & Tsang, Reasonable Effectiveness of Random Weighting: A "
                "Litmus Test for Multi-Task Learning, TMLR 2022; LibMTL's RLW")
    fusable = True

    def __init__(self) -> None:
        super().__init__()
        self._generator: torch.Generator | None = None

    def begin_epoch(self, epoch: int, seed: int) -> None:
        self._generator = strategy_generator(seed, epoch, "rlw")

    def forward(self, main: LossTerm, aux: LossTerm) -> Tensor:
        if self._generator is None:  # called outside a training engine: epoch 1, seed 0
            self.begin_epoch(1, 0)
        z = torch.randn(K, generator=self._generator)
        weights = torch.softmax(z, 0).to(main.mean.device, non_blocking=True)
        self.record(weights)
        return weights[0] * main.mean + weights[1] * aux.mean


def gradient_norm(loss: Tensor, params: list[Tensor]) -> Tensor:
    """||d loss / d params|| (all tensors as one vector), 0 when the loss does not reach
    them; the graph is kept for the step's backward pass."""
    if not loss.requires_grad:
        return torch.zeros((), device=params[0].device)
    grads = [g for g in torch.autograd.grad(loss, params, retain_graph=True,
                                            allow_unused=True) if g is not None]
    if not grads:
        return torch.zeros((), device=params[0].device)
    return torch.stack([g.norm() for g in grads]).norm()


class GradNorm(OwnAdam):
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018, Algorithm 1), with W the
    model's last shared layer (`Strategy.needs_shared_layer`: SASRec's last block's final
    LayerNorm, GRU4Rec's output projection; lossbench/training/models.py) and weights
    w = (w_main, w_aux), 1 at the start. Per step t:

        L = w_main L_main + w_aux L_aux                    (w constant: the model's objective)
        G_i = ||grad_W (w_i L_i)|| = |w_i| ||grad_W L_i||,   G_mean = (G_main + G_aux) / 2
        r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0))         (L(0): the losses of step 1)
        L_grad = sum_i |G_i - G_mean r_i^alpha|             (G_mean r_i^alpha a constant)
        w <- Adam step on grad_w L_grad (rate gradnorm_lr),  then w <- K w / sum(w), K = 2

    The weights follow an Adam of their own rather than the run's optimiser (which LibMTL
    uses, with weights K softmax(s) over all shared parameters): the run's optimiser is SGD
    at a rate tuned for the model, and grad_w L_grad has the scale of gradient norms, which
    moves by orders of magnitude during training; Adam's step is scale-free, so
    `gradnorm_lr` is about the change of w per step whatever the model, and the schedule,
    warm-up and weight decay of the model do not touch w. A loss whose L(0) is 0 (L_aux
    with --aux none) has ratio 1.

    Cost: two extra backward passes from the losses to W only (short: W is the last shared
    layer) per step, then the model's usual one; not fusable."""

    citation = ("Chen, Badrinarayanan, Lee & Rabinovich, GradNorm: Gradient Normalization for "
                "Adaptive Loss Balancing in Deep Multitask Networks, ICML 2018")
    needs_shared_layer = True

    def __init__(self, *, gradnorm_alpha: float, gradnorm_lr: float) -> None:
        super().__init__()
        self.alpha, self.lr = gradnorm_alpha, gradnorm_lr
        self.register_buffer("weights", torch.ones(K))
        self.register_buffer("initial", torch.zeros(K))
        self.started = False

    def forward(self, main: LossTerm, aux: LossTerm) -> Tensor:
        shared = getattr(self, "_shared_layer", None)
        if not shared:
            raise RuntimeError("gradnorm needs the model's last shared layer: the training "
                               "engine gives it (Strategy.set_shared_layer)")
        losses = torch.stack([main.mean, aux.mean])
        values = losses.detach().to(self.weights.dtype)
        if not self.started:
            self.initial.copy_(values)
            self.started = True
        used = self.weights.clone()
        norms = torch.stack([gradient_norm(main.mean, shared), gradient_norm(aux.mean, shared)])
        with torch.enable_grad():
            w = self.weights.detach().requires_grad_()
            g = w.abs() * norms.to(w.dtype)
            ratio = torch.where(self.initial > 0, values / self.initial.clamp_min(1e-30),
                                torch.ones_like(values))
            target = (g.mean() * (ratio / ratio.mean()) ** self.alpha).detach()
            (grad,) = torch.autograd.grad((g - target).abs().sum(), w)
        self.adam_step(self.weights, grad, self.lr, 0.0)
        with torch.no_grad():
            self.weights.mul_(K / self.weights.sum())
        self.record(used)
        return (used.to(losses.dtype) * losses).sum()


class FAMO(OwnAdam):
    """Fast Adaptive Multitask Optimization (Liu, Feng, Stone & Liu, NeurIPS 2023), as the
    official code (github.com/Cranial-XIX/FAMO, famo.py, class FAMO): weight logits xi = 0
    at the start, z = softmax(xi), min_losses = 0, and per step

        D_i = L_i - min_i + 1e-8,   c = (sum_i z_i / D_i)^-1   (c constant)
        L = c * sum_i z_i log D_i          (`get_weighted_loss`; its gradient is
                                            sum_i (c z_i / D_i) grad L_i)

    then, after the optimiser step, with L'_i the losses of the same batch under the new
    weights (`update`): delta_i = log D_i - log D'_i, and one step of xi's own Adam (rate
    famo_lr, L2 weight decay famo_gamma) along d = J_softmax(xi)^T delta. The logged value
    (train_loss) is L, on a log scale.

    With `famo_update = "same-batch"` (the default, the paper's and official code's rule)
    the engine computes L' (`Strategy.needs_new_losses`): one extra forward pass per step,
    without gradients, with the same augmented view and dropout masks as the step's.
    `"next-batch"` saves that pass: L' is the next step's losses, on the next batch, so
    delta also holds the difference between two batches. The xi update then runs at the
    start of the next step, before its weights are read (the order of the official code);
    the last step's losses are kept in the checkpoint. The official trainers' gradient
    clipping (max_norm, applied before the backward pass in methods/weight_methods.py,
    where it clips nothing) is left out, as lossbench clips no other strategy. Not
    fusable."""

    citation = ("Liu, Feng, Stone & Liu, FAMO: Fast Adaptive Multitask Optimization, NeurIPS "
                "2023; official code github.com/Cranial-XIX/FAMO")
    needs_new_losses = True  # the class's answer (not fusable); next-batch instances: False

    def __init__(self, *, famo_lr: float, famo_gamma: float,
                 famo_update: str = "same-batch") -> None:
        super().__init__()
        self.lr, self.gamma = famo_lr, famo_gamma
        self.needs_new_losses = famo_update == "same-batch"
        self.register_buffer("logits", torch.zeros(K))
        self.register_buffer("min_losses", torch.zeros(K))
        self.register_buffer("log_d", torch.zeros(K))  # log D_i of the last forward pass
        self.has_log_d = False

    def gaps(self, main: LossTerm, aux: LossTerm) -> Tensor:
        """D_i = L_i - min_i + 1e-8, [main, aux]."""
        losses = torch.stack([main.mean, aux.mean])
        return losses - self.min_losses.to(losses.dtype) + 1e-8

    def forward(self, main: LossTerm, aux: LossTerm) -> Tensor:
        d = self.gaps(main, aux)
        log_d = d.log()
        if self.has_log_d and not self.needs_new_losses:
            self.update(log_d.detach())  # next-batch: the change since the last step
        self.log_d.copy_(log_d.detach())
        self.has_log_d = True
        z = F.softmax(self.logits, -1).to(d.dtype)
        c = (z / d).sum().detach()
        self.record(z)
        return (log_d * z / c).sum()

    def after_step(self, main: LossTerm, aux: LossTerm) -> None:
        self.update(self.gaps(main, aux).detach().log())
        self.has_log_d = False

    def update(self, log_d: Tensor) -> None:
        """One Adam step of xi along J_softmax(xi)^T delta, delta_i = log D_i - log D'_i, with
        log D saved at the last forward pass and `log_d` = log D' now."""
        delta = (self.log_d.to(log_d.dtype) - log_d).to(self.logits)
        z = F.softmax(self.logits, -1)
        d = z * delta - z * (z @ delta)  # J_softmax^T delta, J = diag(z) - z z^T
        self.adam_step(self.logits, d, self.lr, self.gamma)
