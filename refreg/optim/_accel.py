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
- :func:`adam_step_square_sum_in_place`: the same step leaf by leaf, the loop also writing ``θ_new·θ_new`` into
  a scratch leaf that NumPy sums (``np.add.reduce``, its pairwise order) while it is in cache; the leaves are
  added up NumPy's pairwise tree (:func:`refreg._backend.pairwise_blocks`), so CPR's ``R = Σθ_new²`` is
  ``np.sum(θ·θ)`` bit for bit. (A numba loop with NumPy's eight accumulators per 128 elements took 4.9 ms on
  12M float32 elements where NumPy's multiply and sum took 4.6: LLVM did not vectorise it.)

``tests/test_optim_accel.py`` checks them against the NumPy kernels bit for bit on hypothesis-drawn arrays with
zeros, ``-0.0``, subnormals, infinities and extreme values, for float32 and float64, Adam and AdamW, both
branches of torch's lerp. (A NaN parameter, which the update does not reject, gives NaN on both paths, but
not always the same NaN: a review found 0x7fc00000 from the loop's scalar tail where NumPy gave 0xffc00000.) They run only on
C-contiguous NumPy float32/float64 arrays of one dtype and ndim ≥ 1.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from refreg import _backend, _numba
from refreg._backend import HOST_FLOATS, pairwise_blocks
from refreg.optim.kernels import AdamStepCoefficients

__all__ = ["adam_step", "adam_step_in_place", "adam_step_square_sum_in_place", "usable"]


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
    """The step's scalars in the arrays' dtype, as NumPy casts a Python float operand of a ufunc (NEP 50)."""
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
    _kernels()["adam"](*flat, 0, p.size, None, *_scalars(c, p.dtype))


def adam_step(c: AdamStepCoefficients, p: Any, g: Any, m: Any, v: Any) -> tuple[Any, Any, Any]:
    """One Adam step into new arrays ``(θ, m, v)`` (the pure update's speed path); the inputs are not written."""
    out = tuple(np.empty_like(p) for _ in range(3))
    flat = (a.reshape(-1) for a in (p, g, m, v, *out))
    _kernels()["adam_out"](*flat, *_scalars(c, p.dtype))
    return out


def adam_step_square_sum_in_place(c: AdamStepCoefficients, p: Any, g: Any, m: Any, v: Any) -> Any:
    """:func:`adam_step_in_place`, returning ``np.sum(p * p)`` of the new θ bit for bit (a NumPy scalar)."""
    flat = [a.reshape(-1) for a in (p, g, m, v)]
    scalars = _scalars(c, p.dtype)
    adam = _kernels()["adam"]
    # leaves of 1/2 to 1 times the block, as refreg.optim._fused.adam_into's, so a leaf is in cache for its sum
    block = max(2 * _backend.FUSED_BLOCK, 128)
    scratch = _scratch(min(p.size, block), p.dtype)

    def leaf(start: int, stop: int) -> Any:
        squares = scratch[: stop - start]
        adam(*flat, start, stop, squares, *scalars)
        return np.add.reduce(squares)

    return pairwise_blocks(leaf, p.size, block)


def _scratch(n: int, dtype: Any) -> np.ndarray:
    """A scratch vector of ``n`` elements, reused by this thread's later calls.

    A fresh 512 KiB block is a new mapping whose pages fault on first touch: on the 784-300-100-10 MLP that
    cost 200 µs per step, twice the Adam step itself. One buffer per thread and dtype, grown when needed.
    """
    buffers = _WORKSPACE.__dict__.setdefault("buffers", {})
    buffer = buffers.get(dtype)
    if buffer is None or buffer.size < n:
        buffer = buffers[dtype] = np.empty(n, dtype)
    return buffer[:n]


_WORKSPACE = threading.local()


def _kernels() -> dict[str, Any] | None:
    return _numba.kernels(_build)


def _build(jit: Any) -> dict[str, Any]:
    @jit
    def element(
        pk, gk, mk, vk, scalars
    ):  # pragma: no cover (compiled; inlined by LLVM into the loops)
        # kernels.adam_kernel on one element; the flags are loop invariants that LLVM unswitches
        has_decay, decay, has_l2, l2, low, w, one_minus_beta2, beta2, bc2, eps, neg_step = scalars
        if has_decay:
            pk = pk * decay
        if has_l2:
            gk = gk + pk * l2
        if low:
            mk = mk + (gk - mk) * w
        else:
            mk = gk - (gk - mk) * w
        vk = vk * beta2 + (gk * one_minus_beta2) * gk
        denom = np.sqrt(vk) / bc2 + eps
        return pk + (mk * neg_step) / denom, mk, vk

    @jit
    def adam(p, g, m, v, start, stop, squares, *scalars):  # pragma: no cover (compiled)
        # in place on [start, stop); ``squares is None`` is pruned at compile time (a separate compilation).
        # Views indexed from 0: with k in range(start, stop) numba cannot prove k >= 0, keeps its
        # negative-index wraparound in the loop, and LLVM does not vectorise it
        p, g, m, v = p[start:stop], g[start:stop], m[start:stop], v[start:stop]
        for k in range(p.size):
            new, m[k], v[k] = element(p[k], g[k], m[k], v[k], scalars)
            p[k] = new
            if (
                squares is not None
            ):  # CPR's θ_new·θ_new (NumPy's ``np.multiply(θ, θ)``) for R of the leaf
                squares[k] = new * new

    @jit
    def adam_out(p, g, m, v, op, om, ov, *scalars):  # pragma: no cover (compiled)
        # into new arrays: the outputs overlap no input, so LLVM's run-time overlap check passes
        for k in range(p.size):
            op[k], om[k], ov[k] = element(p[k], g[k], m[k], v[k], scalars)

    return {"adam": adam, "adam_out": adam_out}
