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
from refreg.optim.transforms import DecoupledWeightDecay, decoupled_weight_decay

__all__ = [
    "SGD",
    "Adam",
    "AdamState",
    "DecoupledWeightDecay",
    "Optimizer",
    "SGDState",
    "Schedule",
    "adam",
    "adamw",
    "check_state_matches",
    "constant",
    "cosine",
    "current_lr",
    "decoupled_weight_decay",
    "linear_warmup",
    "sgd",
]
