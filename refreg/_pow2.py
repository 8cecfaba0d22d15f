"""Exact scaling by powers of two, the overflow- and underflow-free normalisation of the scale-free operations.

Multiplying a float by ``2^k`` only changes its exponent, so it is exact whenever the result is a normal
number; dividing by ``max|W|`` is not (it rounds unless ``max|W|`` is a power of two) and ``1/max|W|``
overflows for subnormal ``max|W|``. The sparse regularizers normalise with :class:`Pow2Scale`; the norms of
slices (rows, columns, units) at very different scales use one power of two per slice (:class:`GroupPow2`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from refreg._backend import all_finite, to_numpy

__all__ = ["GroupPow2", "Pow2Scale", "norm_floor", "unsafe_norms"]


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
        self.m = m
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
        """``x·2^e`` (for the regularizers that are not scale-invariant).

        Raises ``FloatingPointError`` if the exact result is beyond the dtype's range (e.g. ``½‖W‖²`` at
        ``W = [[1e200]]``, which NumPy would give as inf with a warning).
        """
        return self._checked(x, self.up, "value")

    def rest(self, x: Any) -> Any:
        """The part of ``2^-e`` not in :attr:`fold`: ``x`` unchanged in the usual one-factor case.

        Raises ``FloatingPointError`` if the exact result is beyond the dtype's range: a scale-invariant
        ``R``'s gradient grows like ``1/M``, and at a subnormal ``M`` it can exceed float64 (found by an audit:
        ``W = [[5e-324, 1e-323], [0, 5e-324]]`` gave ``inf`` and an overflow warning).
        """
        return x if len(self.down) <= 1 else self._checked(x, self.down, "gradient")

    def _checked(self, x: Any, factors: tuple[float, ...], what: str) -> Any:
        # x is finite (computed from the finite Wn), so an overflow here is the exact result leaving the
        # dtype's range: reported as an error rather than an inf with a warning
        with np.errstate(over="ignore"):
            for f in factors:
                x = x * f
        finite = math.isfinite(x) if isinstance(x, (float, np.floating)) else all_finite(x)
        if not finite:
            raise FloatingPointError(
                f"the regularizer's {what} at max|W| = {self.m!r} is beyond the range of the weights' dtype"
            )
        return x


def _pow2_chunks(k: int, limit: int) -> tuple[float, ...]:
    """Powers of two, each within ``2^±limit``, whose product is ``2^k``."""
    out = []
    while k:
        step = max(-limit, min(limit, k))
        out.append(math.ldexp(1.0, step))
        k -= step
    return tuple(out)


def norm_floor(float32: bool) -> float:
    """The smallest computed norm ``sqrt(Σx²)`` that lost nothing to underflow beyond rounding: 2^-31 in float32,
    2^-255 in float64.

    Its sum of squares is then at least ``sqrt(tiny)`` (2^-62, 2^-510), and a square that underflowed is off by
    at most half the smallest subnormal (2^-150, 2^-1075), so N of them move the sum by a relative N·2^-88
    (N·2^-565), far below its rounding. A finite norm had no overflow (every partial sum of squares is at most
    the total).
    """
    return 2.0**-31 if float32 else 2.0**-255


def unsafe_norms(xp: Any, n: Any, parts: Sequence[tuple[Any, int | None, bool]]) -> Any | None:
    """The groups whose computed norms ``n`` may be wrong (a boolean array of n's shape), or None if none is.

    A norm is right when it is finite and at least :func:`norm_floor`, and also when it is 0 for an all-zero
    group (the common dead unit). ``parts`` are the arrays the norms run over, as for :class:`GroupPow2`; they
    are read only when some norm is 0 and none is otherwise suspect. One host synchronisation when every norm
    is safe; with zero norms, two plus one per part, and the zero-norm groups' entries are read again (with
    50–90 % dead units on 784-300-100-10, ``unit_norms`` measured 1.6–2.3× its unguarded time).
    """
    floor = norm_floor(n.dtype == xp.float32)
    bad = ~((n >= floor) & (n < math.inf))
    if not bool(xp.any(bad)):
        return None
    if bool(xp.any(bad & (n != 0))):
        return bad
    # only zero norms: exact unless their group holds a nonzero (dead units are common: for a matrix, read
    # only their rows / columns)
    for a, axis, keepdims in parts:
        if axis is not None and a.ndim == 2:
            idx = xp.nonzero(xp.reshape(bad, (-1,)))[0]
            nonzero = xp.take(a, idx, axis=1 - axis % 2) != 0
        else:
            nonzero = (a != 0) & _expand(xp, bad, axis, keepdims)
        if bool(xp.any(nonzero)):
            return bad
    return None


class GroupPow2:
    """Exact normalisation of every group by its own power of two: group g times ``2^-e_g``,
    ``2^(e_g-1) <= m_g < 2^e_g`` with ``m_g`` its max|x| (``e_g = 0`` for an all-zero group).

    :class:`Pow2Scale` for slices: the sum of squares of each scaled group has its largest term in [1/4, 1),
    so it neither overflows nor loses a term that matters to underflow, whatever the other groups hold (one
    power of two for the whole array, set by its largest entry, underflowed the squares of every slice 2^±500
    below it in float64, 2^±60 in float32). The scaled norm is the true one times ``2^-e_g`` exactly, so
    :meth:`undo` gives the norm correctly rounded from the scaled one, and wherever the unscaled sum of squares
    neither overflowed nor underflowed the two agree bit for bit.

    ``parts``: ``(array, axis, keepdims)`` triples that together make the groups: the group's entries run
    along ``axis`` of ``array`` (``axis`` None: one entry per group, a 1-d array such as a bias); the
    per-group arrays have the shape of ``max(array, axis=axis, keepdims=keepdims)``, the same for every part.
    ``2^-e_g`` is applied as two factors, each a normal number of the dtype (``2^1073`` is not a float64),
    so each product is exact whenever it is a normal number. The exponents are found on the host (one
    synchronisation); NaN or inf is a ``FloatingPointError`` naming ``what``.
    """

    def __init__(self, xp: Any, parts: Sequence[tuple[Any, int | None, bool]], what: str):
        m = None
        for a, axis, keepdims in parts:
            g = xp.abs(a) if axis is None else xp.max(xp.abs(a), axis=axis, keepdims=keepdims)
            m = g if m is None else xp.maximum(m, g)
        host = np.asarray(to_numpy(m), dtype=np.float64)  # float32 values are exact in float64
        if not np.isfinite(host).all():
            raise FloatingPointError(f"{what} hold NaN or inf")
        self.xp, self.like = xp, m
        self.nonzero = host > 0
        self.exponent = e = np.frexp(host)[1].astype(np.int64)  # host = f·2^e, 0.5 <= f < 1
        # e in [-1073, 1024] (float64), [-148, 128] (float32): each factor within 2^±537
        half = e // 2
        self.down = (self.factor(-half), self.factor(half - e))
        self.up = (self.factor(half), self.factor(e - half))

    def factor(self, k: Any) -> Any:
        """``2^k`` per group (host integers) as an array of the groups' dtype on their device (0 below the
        smallest subnormal)."""
        return self.xp.asarray(
            np.ldexp(1.0, k), dtype=self.like.dtype, device=array_api_compat.device(self.like)
        )

    def __call__(self, x: Any, axis: int | None, keepdims: bool) -> Any:
        """``x·2^-e_g`` for ``x`` one of the parts (same ``axis`` and ``keepdims``)."""
        for f in self.down:
            x = x * _expand(self.xp, f, axis, keepdims)
        return x

    def undo(self, n: Any) -> Any:
        """``n·2^e_g`` for per-group values ``n`` (the norms of the scaled groups)."""
        for f in self.up:
            n = n * f
        return n


def _expand(xp: Any, f: Any, axis: int | None, keepdims: bool) -> Any:
    """Per-group values ``f`` broadcast against a part reduced along ``axis``."""
    return f if axis is None or keepdims else xp.expand_dims(f, axis=axis)
