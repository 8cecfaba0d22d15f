"""Learning-rate schedules: plain functions of the step, accepted by every optimizer in place of ``lr``.

``t`` is the 0-based index of the update about to be applied (the first update uses ``schedule(0)``),
which is PyTorch's convention for a scheduler stepped once per optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from refreg._validation import check_nonnegative, check_positive

__all__ = ["Schedule", "constant", "cosine", "current_lr", "linear_warmup"]

Schedule = Callable[[int], float]


@dataclass(frozen=True)
class constant:
    """``lr_t = lr``."""

    lr: float

    def __post_init__(self):
        check_positive("lr", self.lr)

    def __call__(self, t: int) -> float:
        return float(self.lr)


@dataclass(frozen=True)
class linear_warmup:
    """``lr_t = lr * min(1, (t + 1) / warmup_steps)``: the first update uses ``lr / warmup_steps``."""

    lr: float
    warmup_steps: int

    def __post_init__(self):
        check_positive("lr", self.lr)
        _check_steps("warmup_steps", self.warmup_steps, allow_zero=False)

    def __call__(self, t: int) -> float:
        return float(self.lr) * min(1.0, (t + 1) / self.warmup_steps)


@dataclass(frozen=True)
class cosine:
    """Cosine decay after an optional linear warm-up.

    ``lr_t = final_lr + (lr - final_lr) * (1 + cos(pi * p)) / 2`` with
    ``p = min(1, (t - warmup_steps) / (total_steps - warmup_steps))``; during warm-up as :class:`linear_warmup`.
    With ``warmup_steps = 0`` and ``t <= total_steps`` this is PyTorch's
    ``CosineAnnealingLR(T_max=total_steps, eta_min=final_lr)`` (closed form, SGDR eq. 5, Loshchilov & Hutter
    2017; measured to 2e-15). After ``total_steps`` refreg holds ``final_lr``, while torch's schedule follows
    the cosine back up (lr 0.02, final 0.001, total_steps = T_max = 60: at t = 120 refreg gives 0.001, torch
    0.0200).
    """

    lr: float
    total_steps: int
    warmup_steps: int = 0
    final_lr: float = 0.0

    def __post_init__(self):
        check_positive("lr", self.lr)
        check_nonnegative("final_lr", self.final_lr)
        _check_steps("total_steps", self.total_steps, allow_zero=False)
        _check_steps("warmup_steps", self.warmup_steps, allow_zero=True)
        if self.warmup_steps >= self.total_steps:
            raise ValueError(
                f"warmup_steps must be < total_steps={self.total_steps}, got {self.warmup_steps}"
            )

    def __call__(self, t: int) -> float:
        if t < self.warmup_steps:
            return float(self.lr) * (t + 1) / self.warmup_steps
        p = min(1.0, (t - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.final_lr + (self.lr - self.final_lr) * (1.0 + math.cos(math.pi * p)) / 2.0


def _check_steps(name: str, value: Any, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"{name} must be an int {bound}, got {value!r}")


def current_lr(lr: float | Schedule, t: int) -> float:
    """The learning rate of update ``t``: ``lr`` itself or ``lr(t)``, checked to be finite and >= 0."""
    if not callable(lr):
        return float(lr)
    value = lr(t)
    if isinstance(
        value, (bool, np.bool_)
    ):  # float(True) is 1.0: a schedule bug, as sgd(lr=True) is
        raise TypeError(f"lr schedule must return a number at step {t}, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"lr schedule must return a number at step {t}, got {value!r}") from err
    if not (0.0 <= value < math.inf):
        raise ValueError(f"lr schedule must return a finite value >= 0, got {value!r} at step {t}")
    return value
