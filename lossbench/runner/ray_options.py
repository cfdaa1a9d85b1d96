"""`--backend ray`'s options: where the runs go and with what resources (ray_backend.py).
Plain data, so the runner can tell a Ray run apart without importing Ray."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lossbench.errors import ConfigError


@dataclass(frozen=True)
class RayOptions:
    """Where and with what resources the runs go. `address`: a running cluster (`auto`,
    `host:6379`, `ray://host:10001`); None starts a local Ray on this machine's cores (or
    joins $RAY_ADDRESS). `storage`: see the module docstring (None: the results folder).
    `num_cpus` / `num_gpus`: Ray resources per run (fractions allowed). `max_retries`: how
    often a run whose worker died is started again."""

    address: str | None = None
    storage: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.num_cpus) and self.num_cpus > 0):
            raise ConfigError(f"--num-cpus must be > 0, got {self.num_cpus:g}")
        if not (math.isfinite(self.num_gpus) and self.num_gpus >= 0):
            raise ConfigError(f"--num-gpus must be >= 0, got {self.num_gpus:g}")
        if self.num_gpus > 1 and self.num_gpus != int(self.num_gpus):
            raise ConfigError(f"--num-gpus above 1 must be a whole number, got {self.num_gpus:g}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries}")
        if (self.address or "").startswith("ray://") and not self.storage:
            raise ConfigError("with Ray Client (--address ray://...) the driver's results folder "
                              "is not on the cluster: give --storage, a URL every node can reach"
                              " (e.g. s3://bucket/lossbench)")
