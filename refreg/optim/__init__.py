"""Optimizers as pure ``(init, update)`` pairs, and learning-rate schedules."""

from refreg.optim.optimizers import (
    SGD,
    Adam,
    AdamState,
    Optimizer,
    SGDState,
    adam,
    adamw,
    check_state_matches,
    sgd,
)
from refreg.optim.schedules import Schedule, constant, cosine, current_lr, linear_warmup

__all__ = [
    "SGD",
    "Adam",
    "AdamState",
    "Optimizer",
    "SGDState",
    "Schedule",
    "adam",
    "adamw",
    "check_state_matches",
    "constant",
    "cosine",
    "current_lr",
    "linear_warmup",
    "sgd",
]
