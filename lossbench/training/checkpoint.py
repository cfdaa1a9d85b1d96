"""Checkpoints: a run's state after an epoch, so that a killed run continues as if never
stopped (on the CPU, number for number)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lossbench.errors import DataError

CHECKPOINT_FORMAT = "lossbench-checkpoint-2"
"""Stored in every checkpoint; a file without it is not resumed from."""


def to_numpy(obj):
    """Tensors (on any device) -> numpy arrays, through dicts, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if isinstance(obj, dict):
        return {k: to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_numpy(v) for v in obj)
    return obj


def to_torch(obj):
    """The inverse of `to_numpy` (tensors on the CPU)."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, dict):
        return {k: to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_torch(v) for v in obj)
    return obj


def save_checkpoint(path: Path, epoch: int, model_state: dict, optimizer_state: dict,
                    strategy: torch.nn.Module, rows: list[dict], best: Any) -> None:
    """Everything needed to continue after `epoch` as if never stopped, written atomically:
    weights, optimiser, strategy state (its state_dict: θ, learnable weights, history), the
    rows so far, the best epoch and its weights, and the global RNG state (dropout). Batch
    order needs no state: it is a pure function of (batch seed, epoch).

    The file is a pickle with tensors stored as numpy arrays (faster than `torch.save`'s
    per-tensor zip records for these small models). Like `torch.load(weights_only=False)`,
    loading it trusts the file: it is lossbench's own, in the user's own results folder."""
    state = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "model": model_state,
             "optimizer": optimizer_state, "strategy": strategy.state_dict(),
             "rows": rows, "best": vars(best).copy(), "rng_cpu": torch.get_rng_state(),
             "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(to_numpy(state), handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model, optimizer, strategy) -> tuple[int, list[dict], dict]:
    """Restore a checkpoint written by `save_checkpoint` into `model`, `optimizer` and
    `strategy` (and the global RNG); returns (epoch, rows, the best epoch's fields).
    A truncated or foreign file is a DataError naming it."""
    try:
        with open(path, "rb") as handle:
            state = to_torch(pickle.load(handle))
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a lossbench checkpoint (format {state.get('format')!r})")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        strategy.load_state_dict(state["strategy"])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        return state["epoch"], state["rows"], state["best"]
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is the same error
        raise DataError(f"cannot resume from checkpoint {path}: {exc}; "
                        "delete it to start the run again") from None
