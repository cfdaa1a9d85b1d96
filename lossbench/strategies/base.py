"""What a strategy is: a small `torch.nn.Module` that turns two losses into one objective.

    class HalfAux(Strategy):
        '''L = L_main + 0.5 * L_aux.'''
        name = "half-aux"
        def forward(self, main: LossTerm, aux: LossTerm) -> Tensor:
            return main.mean + 0.5 * aux.mean

The contract, all of it optional except `forward`:

- `forward(main, aux) -> Tensor`: the objective of one training step (a scalar). `main` and
  `aux` are `LossTerm`s: `per_example` values (over training targets, resp. contrastive
  anchors) and the batch `mean`. Called once per step, so state may move per call (θ does).
- Class attributes (read by the registry): `name`; `params`, a tuple of `Param` (typed, with
  ranges and docs: they become CLI options, TOML keys and validation); `logs`, the state
  columns `log_state` returns (written to metrics.csv every epoch); `citation`;
  `flood_param`, a `Param` naming the setting that gives this weighting's own flood level
  when it is flooded (reweight's `b_reweight`), or None to use `b`; `fusable` (it may train
  in a fused group: lossbench/training/fused.py). The built-in strategies declare `name`,
  `params` and `flood_param` in catalog.py instead (torch-free, for `--help`).
- The constructor takes the registered parameters as keyword arguments.
- Learnable parameters (`nn.Parameter` attributes) are trained by the run's optimiser and saved
  in the checkpoint with the rest of the state (every public attribute: see
  `get_extra_state`), so a resumed run continues exactly.
- `end_epoch(means)`: called after every epoch with the epoch means of the raw losses
  (`{"main": ..., "aux": ...}`), for strategies that look at past epochs (DWA).
- Gradient-combining strategies set `needs_grads = True` and implement
  `combine_grads(g_main, g_aux) -> list[Tensor]`: the trainer then computes the gradients of
  `main.mean` and `aux.mean` with respect to the model's parameters (two backward passes)
  and applies the combined gradient; `forward` still gives the value that is logged (and
  flooded: below b the combined gradient flips sign). By default every parameter takes
  part (a loss that does not reach a parameter gives it a zero gradient); with the setting
  `shared_only` only the parameters both losses reach are combined, and a parameter that one
  loss alone reaches gets that loss's gradient (trainer.train_step).

Hooks for strategies that need more than the two losses (each engine, trainer.SingleModel
and fused.Stacked, calls them for every run it trains):

- `begin_epoch(epoch, seed)`: called at the start of every epoch (1-based; also the first
  epoch of a resumed run) with the run's batch seed (`seeds.run_seeds(seed).batch`). A
  strategy that draws random numbers makes its generator here, from
  `seeds.strategy_generator(seed, epoch, its name)`, never from the global RNG or the
  epoch's generator: paired runs then share its draws, a resumed run continues exactly,
  and the batches and augmentations stay those of every other strategy (RLW).
- `needs_new_losses = True` and `after_step(main, aux)`: after every optimiser step the
  engine computes the losses again on the same batch with the new weights, under
  `torch.no_grad`, with the same random draws (the same augmented view and dropout masks),
  and hands them over (FAMO). An extra forward pass per step; such strategies do not fuse.
- `needs_shared_layer = True` and `set_shared_layer(params)`: before training, the engine
  gives the parameters of the model's last shared layer, the last parameters both losses
  reach (`models.last_shared_layer`) (GradNorm). Such strategies do not fuse.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from lossbench.strategies.param import Param

__all__ = ["LossTerm", "Param", "Strategy", "as_term"]


class LossTerm(NamedTuple):
    """One loss of a batch: `per_example` [N] (one value per training target or anchor) and
    its batch `mean` (a scalar). Both carry gradients.

    `mean` is the loss function's own mean reduction, which can differ from
    `per_example.mean()` in the last bit (another summation order); keeping it makes the
    batch-mean strategies reproduce lossbench 0.1 number for number."""

    per_example: Tensor
    mean: Tensor


def as_term(loss: Tensor) -> LossTerm:
    """A LossTerm from a bare tensor: a scalar is its own (one) example, a vector its
    examples with their mean."""
    if loss.dim() == 0:
        return LossTerm(loss.reshape(1), loss)
    return LossTerm(loss, loss.mean())


class Strategy(nn.Module):
    """Base class of every strategy (module docstring). Subclasses set `name` and implement
    `forward`; everything else has a default."""

    name: str = ""
    params: tuple[Param, ...] = ()
    logs: tuple[str, ...] = ()
    citation: str = ""
    flood_param: Param | None = None
    fusable: bool = False
    needs_grads: bool = False
    needs_new_losses: bool = False
    needs_shared_layer: bool = False

    def forward(self, main: LossTerm, aux: LossTerm) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def log_state(self) -> dict[str, float]:
        """The values of `logs` now (floats); by default the attributes of those names."""
        return {key: float(getattr(self, key)) for key in self.logs}

    def end_epoch(self, means: dict[str, float]) -> None:
        """Called after every epoch with the epoch means of the raw losses."""

    def begin_epoch(self, epoch: int, seed: int) -> None:
        """Called at the start of every epoch with the run's batch seed (module docstring)."""

    def after_step(self, main: LossTerm, aux: LossTerm) -> None:
        """`needs_new_losses` strategies: the losses of the step's batch after the step."""

    def set_shared_layer(self, params: list[Tensor]) -> None:
        """`needs_shared_layer` strategies: the model's last shared layer, once, before
        training (kept private: it is the model's, not the strategy's state)."""
        self._shared_layer = list(params)

    def combine_grads(self, g_main: list[Tensor], g_aux: list[Tensor]) -> list[Tensor]:
        """Gradient strategies: one gradient per parameter from the two losses' gradients."""
        raise NotImplementedError(f"{type(self).__name__} sets needs_grads but does not "
                                  "implement combine_grads")

    def get_extra_state(self) -> dict:
        """Checkpointed state besides parameters and buffers: every public attribute (θ, the
        loss history of DWA, the hyperparameters)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")
                and k != "training"}

    def set_extra_state(self, state: dict) -> None:
        vars(self).update(state)
