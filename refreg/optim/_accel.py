"""The optimizers' optional compiled kernel (numba, the ``fast`` extra): the donated Adam step in one loop.

The donated Adam step of :mod:`refreg.optim._fused` is thirteen to sixteen ``out=`` ufunc calls per cache block:
every intermediate of ``kernels.adam_kernel`` is written to a scratch block and read back, so at 12M float32
parameters it ran at twice the copy roofline of its seven array passes (docs/performance.md). With numba
installed (:mod:`refreg._numba`) it is one loop that reads θ, g, m, v and writes θ, m, v once per element:

- :func:`adam_step_in_place` and :func:`adam_step` (into new arrays): the operations of
  ``kernels.adam_kernel`` in its order, on scalars cast to the arrays' dtype first (as NumPy casts a Python
  float operand of an array: NEP 50, and NumPy 1.x's value-based casting for ndim ≥ 1), compiled with NumPy's
  error model (a division by zero gives inf or NaN as in NumPy; Python's would raise, and its check keeps
  LLVM from vectorising the loop), without fast-math and so without fused multiply-adds;
- :func:`adam_step_square_sum_in_place`: the same step, also returning CPR's ``R = Σθ_new²`` as ``np.sum(θ·θ)``
  bit for bit, and :func:`square_sum` (R alone). NumPy sums a float array pairwise down to leaves of at most
  128 elements, each with eight running accumulators (:func:`refreg._pairwise.pairwise_leaves`); the kernel
  steps a run of 512 leaves (about 50K elements), sums them from L2 with the same eight accumulators as LLVM
  vector adds, one leaf at a time (:mod:`refreg.optim._loops`), and adds the leaves' sums up NumPy's
  tree. (Eight scalar accumulators in a numba loop are not vectorised by LLVM: 4.9 ms on 12M float32 elements
  where NumPy's multiply and sum took 4.6. Four leaves summed side by side were as fast from cache and 2.0–3.3×
  slower from memory than one leaf at a time. Measured gains in docs/performance.md.)

The compiled loops are module-level functions of one numba-only module, :mod:`refreg.optim._loops`, so that
numba's disk cache serves them in every process and invalidates them together (``tests/test_numba_cache.py``);
this module holds the Python side and is importable without numba. A sum that comes out NaN is taken again by
NumPy: which of two NaNs an addition keeps depends on NumPy's compiled code, so only NumPy gives its bits.

``tests/test_optim_accel.py`` checks them against the NumPy kernels bit for bit on hypothesis-drawn arrays with
zeros, ``-0.0``, subnormals, infinities and extreme values, for float32 and float64, Adam and AdamW, both
branches of torch's lerp. (A NaN parameter, which the update does not reject, gives NaN on both paths, but
not always the same NaN: a review found 0x7fc00000 from the loop's scalar tail where NumPy gave 0xffc00000.) They run only on
C-contiguous NumPy float32/float64 arrays of one dtype and ndim ≥ 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refreg import _numba
from refreg._backend import HOST_FLOATS
from refreg._pairwise import pairwise_blocks, pairwise_leaves
from refreg.optim.kernels import AdamStepCoefficients

__all__ = [
    "adam_step",
    "adam_step_in_place",
    "adam_step_square_sum_in_place",
    "square_sum",
    "usable",
]


def usable(*arrays: Any) -> bool:
    """The kernels apply: numba on, and every array a C-contiguous float32/float64 ndarray of one dtype, ndim ≥ 1.

    0-d arrays take the NumPy code: it returns NumPy scalars for them, and NumPy 1.x computes a 0-d float32
    operand with a Python float in float64.
    """
    if not all(
        type(a) is np.ndarray for a in arrays
    ):  # first: other libraries' dtypes are not NumPy's
        return False
    dtype = arrays[0].dtype
    return (
        dtype in HOST_FLOATS
        and arrays[0].ndim > 0
        and all(a.dtype == dtype and a.flags.c_contiguous for a in arrays)
        and _kernels() is not None
    )


def _scalars(c: AdamStepCoefficients, dtype: Any) -> tuple:
    """The step's scalars in the arrays' dtype, as NumPy casts a Python float operand of a ufunc (NEP 50).

    Every tensor of a step passes the same ``c``: the last result is kept for that object (by identity, so a
    ``-0.0`` never stands in for a ``0.0``), which saved ~3 µs per tensor, ~20 µs per step on the MLP.
    """
    last = _LAST_SCALARS[0]
    if last is not None and last[0] is c and last[1] == dtype:
        return last[2]
    out = _cast_scalars(c, dtype)
    # one assignment: a concurrent reader sees the old or the new entry, never half of one
    _LAST_SCALARS[0] = (c, dtype, out)
    return out


_LAST_SCALARS: list[tuple | None] = [None]


def _cast_scalars(c: AdamStepCoefficients, dtype: Any) -> tuple:
    cast = dtype.type
    w = c.lerp_weight
    return (
        c.decay is not None,
        cast(1.0 if c.decay is None else c.decay),
        bool(c.l2),
        cast(c.l2),
        w < 0.5,  # torch's lerp: m + w·(g − m) for w < 0.5, else g − (g − m)·(1 − w)
        cast(w if w < 0.5 else 1.0 - w),
        cast(1.0 - c.beta2),
        cast(c.beta2),
        cast(c.bias_correction2_sqrt),
        cast(c.eps),
        cast(-c.step_size),
    )


def adam_step_in_place(c: AdamStepCoefficients, p: Any, g: Any, m: Any, v: Any) -> None:
    """One Adam step (coefficients ``c``, a ``kernels.AdamStepCoefficients``) written into ``p, m, v``.

    Each element is read before it is written. In place only: with separate outputs LLVM's run-time overlap
    check would fail for an output that is its input and fall back to the scalar loop.
    """
    flat = (a.reshape(-1) for a in (p, g, m, v))
    _kernels()["adam"](*flat, 0, p.size, *_scalars(c, p.dtype))


def adam_step(c: AdamStepCoefficients, p: Any, g: Any, m: Any, v: Any) -> tuple[Any, Any, Any]:
    """One Adam step into new arrays ``(θ, m, v)`` (the pure update's speed path); the inputs are not written."""
    out = tuple(np.empty_like(p) for _ in range(3))
    flat = (a.reshape(-1) for a in (p, g, m, v, *out))
    _kernels()["adam_out"](*flat, *_scalars(c, p.dtype))
    return out


def adam_step_square_sum_in_place(c: AdamStepCoefficients, p: Any, g: Any, m: Any, v: Any) -> Any:
    """:func:`adam_step_in_place`, returning ``np.sum(p * p)`` of the new θ bit for bit (a NumPy scalar).

    One compiled pass per node of NumPy's pairwise tree of at most :data:`NODE` elements (the whole tensor
    up to that size): the step runs over a run of the node's leaves (:func:`refreg._pairwise.pairwise_leaves`)
    while their sums of squares are taken from cache, then the sums are added up NumPy's tree.
    """
    flat = [a.reshape(-1) for a in (p, g, m, v)]
    scalars = _scalars(c, p.dtype)
    kernel = _kernels()["adam_square_sum"]

    def node(start: int, stop: int) -> Any:
        views = (a[start:stop] for a in flat)
        return p.dtype.type(kernel(*views, *pairwise_leaves(stop - start), *scalars))

    return _sum_over_nodes(node, p)


def square_sum(x: Any) -> Any:
    """``np.sum(x * x)`` bit for bit (a NumPy scalar of x's dtype), in one compiled pass without a temporary.

    ``x``: a C-contiguous NumPy float32/float64 array, ndim ≥ 1 (:func:`usable`).
    """
    flat = x.reshape(-1)
    kernel = _kernels()["square_sum"]

    def node(start: int, stop: int) -> Any:
        return x.dtype.type(kernel(flat[start:stop], *pairwise_leaves(stop - start)))

    return _sum_over_nodes(node, x)


# The largest node of NumPy's tree that one compiled call sums (2^22 elements). Above it the tree is walked in
# Python (pairwise_blocks): a leaf table stays below ~33K leaves (~330 KB) and takes 14–20 ms to build once per
# node size, however large the tensor; a 10^9-element tensor's own table would hold 8M leaves.
NODE = 1 << 22


def _sum_over_nodes(node: Any, x: Any) -> Any:
    """``np.sum(x * x)`` from ``node(start, stop)``'s sums (NumPy scalars, so that they add in x's dtype) added up
    NumPy's tree. A NaN total is NumPy's own sum: which of two NaNs an addition keeps is NumPy's compiled
    code's choice, so only NumPy reproduces its bits (rare: R is then an error for CPR)."""
    total = node(0, x.size) if x.size <= NODE else pairwise_blocks(node, x.size, NODE)
    return np.sum(x * x) if np.isnan(total) else total


def _kernels() -> dict[str, Any] | None:
    return _numba.kernels(_build)


def _build(jit: Any) -> dict[str, Any]:
    # the loops are module-level functions of one numba-only module, not closures made here, so that numba's
    # disk cache serves them in every process and invalidates them together (refreg.optim._loops)
    from refreg.optim import _loops

    return {
        "adam": _loops.adam,
        "adam_out": _loops.adam_out,
        "adam_square_sum": _loops.adam_square_sum,
        "square_sum": _loops.square_sum,
    }
