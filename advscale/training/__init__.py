"""Adversarial training: losses, the loop, EMA, schedules, checkpoints, DDP."""
