"""The spatial entropy's optional compiled kernels (numba, the ``fast`` extra), bit for bit its NumPy lines.

:class:`~refreg.sparse.SpatialEntropy` is written in NumPy and that code is the reference. On a 300×784
float32 matrix most of its time is five elementwise passes that NumPy cannot fuse (docs/performance.md):
``max|W|`` (two reductions), ``a = |W|·2^-e`` and ``min(a)`` (three passes), and the gradient
``(A_i + B_j)·sign(w_ij)`` (an outer sum whose 300 rows each cost a ufunc call, then the sign). With numba
installed (:mod:`refreg._numba`) these become three compiled loops:

- :func:`max_abs`: ``max|W|`` as the largest bit pattern of ``|w|`` (an integer maximum, which vectorises;
  for non-negative floats the bit patterns are ordered as the values). A NaN or inf returns None and the
  NumPy path raises its own error.
- :func:`abs_scaled`: ``a = |W|·2^-e`` (``abs`` and one multiply by a power of two, the rounding of
  ``scale.owned(abs(W))``) and whether ``a`` holds a zero (``min(a) > 0`` in the NumPy lines).
- :func:`outer_times_sign`: ``g_ij = (A_i + B_j)·sign(w_ij)`` with NumPy's ``sign`` (``±1``, and ``+0`` for
  ``±0``): one addition and one multiplication per element, in the dtype of W, as the NumPy lines.

Each kernel does the same IEEE operations on the same operands as the NumPy code it replaces (sums left to
BLAS as before), so results are equal bit for bit; ``tests/test_sparse_accel.py`` checks that on
hypothesis-drawn matrices with zeros, ``-0.0``, subnormals and extreme scales. They run only on C-contiguous
NumPy float32/float64 matrices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refreg import _numba
from refreg._pow2 import Pow2Scale

__all__ = ["abs_scaled", "max_abs", "outer_times_sign", "usable"]

# per float dtype: the integer view, the mask that clears the sign bit, the smallest non-finite pattern
_BITS = {
    np.dtype(np.float32): (np.int32, np.int32(0x7FFFFFFF), 0x7F800000),
    np.dtype(np.float64): (np.int64, np.int64(0x7FFFFFFFFFFFFFFF), 0x7FF0000000000000),
}


def usable(xp: Any, Ws: list[Any]) -> bool:
    """The kernels apply: numba on, NumPy, and every matrix a C-contiguous float32/float64 ndarray."""
    return (
        xp is np
        and all(type(W) is np.ndarray and W.dtype in _BITS and W.flags.c_contiguous for W in Ws)
        and _kernels() is not None
    )


def max_abs(Ws: list[Any]) -> Pow2Scale | None:
    """The :class:`Pow2Scale` of ``max_l max|W_l|`` (as ``_normalise``), or None for a NaN or inf."""
    int_type, mask, non_finite = _BITS[Ws[0].dtype]
    largest = max(int(_kernels()["max_bits"](W.reshape(-1).view(int_type), mask)) for W in Ws)
    if largest >= non_finite:
        return None
    m = np.array(largest, dtype=int_type).view(Ws[0].dtype)
    return Pow2Scale(float(m), Ws[0].dtype == np.float32)


def abs_scaled(W: Any, scale: Pow2Scale) -> tuple[Any, bool]:
    """``(|W|·2^-e, no zero in it)``: bit for bit ``scale.owned(abs(W))`` and ``min(...) > 0``."""
    if len(scale.down) > 1:  # 2^-e in several factors (|W| beyond 2^±100): the NumPy lines
        a = scale.owned(np.abs(W))
        return a, bool(a.min() > 0)
    f = W.dtype.type(scale.down[0] if scale.down else 1.0)  # a power of two, exact in the dtype
    a = np.empty_like(W)
    zeros = _kernels()["abs_scaled"](W.reshape(-1), f, a.reshape(-1))
    return a, zeros == 0


def outer_times_sign(A: Any, B: Any, W: Any) -> Any:
    """``(A[:, None] + B[None, :])·sign(W)`` as a new array, bit for bit (A, B of W's dtype)."""
    return _kernels()["outer_sign"](A, B, W, np.empty_like(W))


def _kernels() -> dict[str, Any] | None:
    return _numba.kernels(_build)


def _build(jit: Any) -> dict[str, Any]:
    @jit
    def max_bits(bits, mask):  # pragma: no cover (compiled)
        m = bits.dtype.type(0)
        for k in range(bits.size):
            b = bits[k] & mask
            m = b if b > m else m
        return m

    @jit
    def abs_scaled(w, f, out):  # pragma: no cover (compiled)
        zeros = 0
        for k in range(w.size):
            a = abs(w[k]) * f
            out[k] = a
            zeros += a == 0
        return zeros

    @jit
    def outer_sign(A, B, W, out):  # pragma: no cover (compiled)
        one, zero = W.dtype.type(1), W.dtype.type(0)
        for i in range(W.shape[0]):
            ai = A[i]
            for j in range(W.shape[1]):
                w = W[i, j]
                s = one if w > 0 else (-one if w < 0 else zero)  # NumPy's sign: +0 for ±0
                out[i, j] = (ai + B[j]) * s
        return out

    return {"max_bits": max_bits, "abs_scaled": abs_scaled, "outer_sign": outer_sign}
