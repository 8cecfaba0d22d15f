"""Exact scaling by powers of two, the overflow- and underflow-free normalisation of the scale-free operations.

Multiplying a float by ``2^k`` only changes its exponent, so it is exact whenever the result is a normal
number; dividing by ``max|W|`` is not (it rounds unless ``max|W|`` is a power of two) and ``1/max|W|``
overflows for subnormal ``max|W|``. The sparse regularizers and the norm-product prox normalise with this.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["Pow2Scale"]


class Pow2Scale:
    """Exact normalisation by a power of two: ``Wn = W·2^-e`` with ``2^(e-1) <= M < 2^e``, ``M = max|W|``.

    Every regularizer works on ``Wn``: its entries lie in (-1, 1) and the largest is >= 1/2, so no sum of
    squares or of magnitudes can overflow, and a scale-invariant ``R`` is evaluated exactly as at ``W``.
    Multiplying by a power of two is exact whenever the result is a normal number, so ``W`` and ``2^k W``
    have the same ``Wn`` bit for bit, subnormal ``W`` included. (``1/M`` is inexact unless ``M`` is a power
    of two, and overflows to inf for ``M < 2^-1024``, e.g. ``W = [[5e-324]]``, which made R NaN.)
    ``2^-e`` is applied as a few factors each representable in the dtype (``2^1073`` is not a float64); in
    the usual case (``2^-100 < M < 2^100``) it is one factor, :attr:`fold`, that callers fold into a scalar.

    ``m = max|W|`` is a host float (one synchronisation per call); NaN or inf is a ``FloatingPointError``.
    """

    def __init__(self, m: float, float32: bool, what: str = "the weight matrices"):
        if not math.isfinite(m):
            raise FloatingPointError(f"{what} hold NaN or inf (max|W| = {m})")
        self.nonzero = m > 0
        self.exponent = e = math.frexp(m)[1]  # m = f·2^e, 0.5 <= f < 1 (e = 0 for m = 0)
        limit = 100 if float32 else 1000  # 2^limit·2 is finite in the dtype
        self.down = _pow2_chunks(-e, limit)
        self.up = _pow2_chunks(e, limit)
        self.fold = self.down[0] if len(self.down) == 1 else 1.0

    def __call__(self, x: Any) -> Any:
        """``x·2^-e``."""
        for f in self.down:
            x = x * f
        return x

    def owned(self, x: Any) -> Any:
        """``x·2^-e`` written into ``x`` when it is a NumPy array the caller owns (bit for bit ``self(x)``)."""
        if not isinstance(x, np.ndarray):
            return self(x)
        for f in self.down:
            x *= f
        return x

    def undo(self, x: Any) -> Any:
        """``x·2^e`` (for the regularizers that are not scale-invariant)."""
        for f in self.up:
            x = x * f
        return x

    def rest(self, x: Any) -> Any:
        """The part of ``2^-e`` not in :attr:`fold`: ``x`` unchanged in the usual one-factor case."""
        return x if len(self.down) <= 1 else self(x)


def _pow2_chunks(k: int, limit: int) -> tuple[float, ...]:
    """Powers of two, each within ``2^±limit``, whose product is ``2^k``."""
    out = []
    while k:
        step = max(-limit, min(limit, k))
        out.append(math.ldexp(1.0, step))
        k -= step
    return tuple(out)
