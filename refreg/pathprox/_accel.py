"""PathProx's optional compiled kernels (numba, the ``fast`` extra), bit for bit its NumPy lines.

On the 784-300-100-10 MLP, PathProx's update over plain SGD is mostly three passes over the 300×784 W:
the gradient step ``θ − η·d`` (two NumPy passes), the unit norms, and the row scaling ``W·f[:, None]``,
whose 300 short rows each cost a ufunc call (docs/performance.md). With numba installed
(:mod:`refreg._numba`) the gradient step is one loop and the row and column scalings are loops without the
per-row calls. Each does the same IEEE operations on the same operands in the same order as the NumPy
lines (``d = g + λ·θ``; ``(d·(−η)) + θ``; ``w_ij·f_i``), so the results are equal bit for bit
(``tests/test_pathprox_layers.py`` runs the update with and without them). The unit norms stay NumPy's
``einsum``, whose summation order a loop would not reproduce.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refreg import _numba
from refreg._backend import HOST_FLOATS

__all__ = ["MIN_SIZE", "enabled", "gradient_step", "kernels", "scale_cols", "scale_rows"]

# below this many elements a kernel's call (~3 µs of argument dispatch) costs more than NumPy's passes
MIN_SIZE = 8192


def kernels(*arrays: Any) -> bool:
    """The kernels apply to ``arrays``: numba on, every one a C-contiguous float32/float64 ndarray of one dtype."""
    dtype = arrays[0].dtype
    return (
        all(type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous for a in arrays)
        and dtype in HOST_FLOATS
        and _kernels() is not None
    )


def enabled() -> bool:
    """numba is on: the kernels run on C-contiguous float32/float64 ndarrays of one dtype."""
    return _kernels() is not None


def gradient_step(p: Any, g: Any, lr: float, lam: float | None) -> Any:
    """``d·(−lr) + p`` as a new array, ``d = g + lam·p`` (or ``g`` for ``lam`` None): the NumPy lines'
    ``d = g + lam * p; step = d * (-lr); step += p``."""
    cast = p.dtype.type  # NumPy casts a Python scalar to the array's dtype first
    out = np.empty_like(p)
    if lam is None:
        _kernels()["step"](p.reshape(-1), g.reshape(-1), cast(-lr), out.reshape(-1))
    else:
        _kernels()["decayed_step"](
            p.reshape(-1), g.reshape(-1), cast(lam), cast(-lr), out.reshape(-1)
        )
    return out


def scale_rows(W: Any, f: Any) -> None:
    """``W *= f[:, None]`` in place."""
    _kernels()["scale_rows"](W, f)


def scale_cols(V: Any, f: Any) -> None:
    """``V *= f[None, :]`` in place."""
    _kernels()["scale_cols"](V, f)


def _kernels() -> dict[str, Any] | None:
    return _numba.kernels(_build)


def _build(jit: Any) -> dict[str, Any]:
    @jit
    def step(p, g, neg_lr, out):  # pragma: no cover (compiled)
        for k in range(p.size):
            out[k] = g[k] * neg_lr + p[k]

    @jit
    def decayed_step(p, g, lam, neg_lr, out):  # pragma: no cover (compiled)
        for k in range(p.size):
            out[k] = (g[k] + lam * p[k]) * neg_lr + p[k]

    @jit
    def scale_rows(W, f):  # pragma: no cover (compiled)
        for i in range(W.shape[0]):
            fi = f[i]
            for j in range(W.shape[1]):
                W[i, j] = W[i, j] * fi

    @jit
    def scale_cols(V, f):  # pragma: no cover (compiled)
        for i in range(V.shape[0]):
            for j in range(V.shape[1]):
                V[i, j] = V[i, j] * f[j]

    return {
        "step": step,
        "decayed_step": decayed_step,
        "scale_rows": scale_rows,
        "scale_cols": scale_cols,
    }
