"""Checks and numerically safe helpers shared by the sparse regularizers (power-of-two normalisation, safe log)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from refreg._backend import check_param_dtype, get_namespace, is_array
from refreg._pow2 import Pow2Scale


def _check_matrix(name: str, W: Any) -> Any:
    """``W`` is a real floating array of shape (m, n) with m, n >= 1; returns its namespace."""
    if not is_array(W):
        raise TypeError(f"{name} must be an array of shape (m, n), got {type(W).__name__}")
    xp = get_namespace(W)
    if W.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D weight matrix of shape (m, n), got a {W.ndim}-D array of shape "
            f"{tuple(W.shape)}"
        )
    if W.shape[0] < 1 or W.shape[1] < 1:
        raise ValueError(f"{name} must have m, n >= 1, got shape {tuple(W.shape)}")
    check_param_dtype(name, W, xp)
    return xp


def _check_matrices(Ws: Sequence[Any], names: Sequence[str]) -> Any:
    for name, W in zip(names, Ws, strict=True):
        _check_matrix(name, W)
    xp = get_namespace(*Ws)
    dtypes = {W.dtype for W in Ws}  # str(dtype) costs ~5 µs: only for the message
    if len(dtypes) != 1:
        raise TypeError(f"the weight matrices must share one dtype, got {sorted(map(str, dtypes))}")
    return xp


# -------------------------------------------------------------------------------------------------- helpers
def _max_abs(xp: Any, Ws: Sequence[Any]) -> Any:
    """``max_l max|W_l|`` as a 0-d array (two reductions per matrix, no temporary of W's size)."""
    out = None
    for W in Ws:
        m = xp.maximum(xp.max(W), -xp.min(W))
        out = m if out is None else xp.maximum(out, m)
    return out


def _safe(xp: Any, x: Any, positive: Any) -> Any:
    """``x`` where ``positive``, else 1: an argument for ``log``/division that never gives -inf or NaN."""
    if isinstance(positive, bool):
        return x if positive else xp.ones_like(x)
    return xp.where(positive, x, xp.ones_like(x))


def _safe_log(xp: Any, x: Any) -> Any:
    """``log x`` for ``x > 0`` and ``0`` for ``x = 0`` (so that ``x log x = 0`` and ``sign(0)·log = 0``)."""
    positive = x > 0
    return xp.where(positive, xp.log(_safe(xp, x, positive)), xp.zeros_like(x))


def _normalise(xp: Any, Ws: Sequence[Any]) -> Pow2Scale:
    """The exact power-of-two normalisation of the pooled matrices ``Ws`` (see :class:`Pow2Scale`)."""
    return Pow2Scale(float(_max_abs(xp, Ws)), Ws[0].dtype == xp.float32)


def _total(xp: Any, x: Any) -> Any:
    """``xp.sum(x)``; on a NumPy array ``np.add.reduce(x, axis=None)``, the call ``np.sum`` makes, without its
    Python wrapper (≈1.5 µs, five times per matrix on the spatial entropy's marginals). Bitwise the same."""
    if type(x) is np.ndarray:
        return np.add.reduce(x, axis=None)
    return xp.sum(x)


def _sum(xp: Any, values: Sequence[Any]) -> Any:
    out = values[0]
    for v in values[1:]:
        out = out + v
    return out


def _times_sign(xp: Any, g: Any, W: Any, no_zero: bool) -> Any:
    """``g·sign(W)``, bit for bit; on NumPy without a zero in ``W`` a speed path (``no_zero``: the caller knows).

    ``np.sign`` is scalar code (98 µs on a 300×784 float32 matrix, docs/performance.md). For ``W ≠ 0``,
    ``g·sign(W)`` is ``g`` with its sign bit flipped where ``W < 0``: an XOR of the bit patterns with ``W``'s
    sign bit, two SIMD integer passes. A zero weight (``sign(0) = 0``) and every other backend take the plain
    product. Equal bit for bit for finite ``g`` (``tests/test_speed_paths.py``); ``g`` is finite wherever the
    spatial entropy calls this. On the speed path ``g`` (the caller's own temporary) receives the result.
    """
    if not (no_zero and isinstance(g, np.ndarray) and isinstance(W, np.ndarray)):
        return g * xp.sign(W)
    if (
        g.dtype != W.dtype
        or g.shape != W.shape
        or not (g.flags.c_contiguous and W.flags.c_contiguous)
    ):
        return g * xp.sign(W)
    ints = np.dtype(f"i{W.dtype.itemsize}")
    bits = np.bitwise_and(W.view(ints), np.array(np.iinfo(ints).min, dtype=ints))
    np.bitwise_xor(g.view(ints), bits, out=g.view(ints))
    return g
