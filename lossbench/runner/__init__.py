"""Running planned runs: the planner, this machine's processes, Ray, sweeps."""
