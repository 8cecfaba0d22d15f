"""CPR's constraint step θ ← θ − λ·∇R(θ) and the measure R(θ) it is gated by: plain and fast forms.

The plain forms are the formulas (:func:`plain_constraint_step`; :func:`refreg.cpr.measure_value`). The fast
forms are what ``CPR.update`` runs; each is tested against the plain one (``tests/test_cpr.py``):

- :func:`fast_measure_value`: for float64 ``l2``, Σθ² as one BLAS dot product of the flattened tensor (no
  temporary array); it equals the pairwise sum up to summation order (relative 1e-15). float32 keeps the
  pairwise sum, because a float32 BLAS dot accumulates in float32 (relative error 3e-5 at 1e7 elements,
  against 4e-8 for the pairwise sum).
- :func:`constraint_step`: for ``l2`` without ``reg_by_lr``, ``θ·(1 − 2λ)`` in one pass over θ; the
  release's ``θ + (−2θ)·λ`` differs from it by at most one rounding per element. Every other case runs the
  release's operation order exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refreg.cpr._fused import square_sum
from refreg.cpr.measures import measure_grad, measure_value

__all__ = ["constraint_step", "fast_measure_value", "plain_constraint_step"]


def fast_measure_value(theta: Any, measure: str, xp: Any) -> Any:
    """R(θ) as a 0-d array; float64 ``l2`` as a BLAS dot product, float32 ``l2`` on NumPy as the pairwise sum
    of θ² formed block by block (bit for bit ``measure_value``, no temporary: :func:`refreg.cpr._fused.square_sum`),
    everything else :func:`measure_value`."""
    if measure == "l2" and theta.dtype == xp.float64:
        flat = xp.reshape(theta, (-1,))
        return xp.vecdot(flat, flat)
    if measure == "l2" and isinstance(theta, np.ndarray) and theta.flags.c_contiguous:
        return square_sum(theta)
    return measure_value(theta, measure)


def plain_constraint_step(
    theta: Any, lam: float, measure: str, lr: float = 1.0, reg_by_lr: bool = False
) -> Any:
    """``θ − λ·∇R(θ)``, or ``θ − lr·λ·∇R(θ)`` with ``reg_by_lr`` (paper Algorithm 1; the release's order)."""
    scale = -lr if reg_by_lr else -1.0
    return theta + (scale * measure_grad(theta, measure)) * lam


def constraint_step(
    theta: Any, lam: float, measure: str, lr: float = 1.0, reg_by_lr: bool = False
) -> Any:
    """The constraint step as ``CPR.update`` computes it: :func:`plain_constraint_step`, except l2 without
    ``reg_by_lr`` in one pass, ``θ·(1 − 2λ)`` (within one rounding of the plain form)."""
    if measure == "l2":
        if reg_by_lr:
            return theta + ((-2.0 * lr) * theta) * lam
        return theta * (1.0 - 2.0 * lam)
    return plain_constraint_step(theta, lam, measure, lr, reg_by_lr)
