"""What a task is: splits of histories and targets, as tensors the trainer can batch (the
shapes are in lossbench/tasks/__init__.py's docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class Split:
    """Histories and their targets (see the module docstring for the shapes)."""

    inputs: Tensor
    targets: Tensor

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


@dataclass(frozen=True)
class Task:
    """A generated or loaded data set, shared by every strategy of a paired comparison."""

    name: str
    n_items: int
    train: Split
    val: Split
    test: Split
    info: dict = field(default_factory=dict)
