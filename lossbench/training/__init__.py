"""Training one run or a fused group: the loop, models, losses, metrics."""
