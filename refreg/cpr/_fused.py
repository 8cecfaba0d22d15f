"""CPR's speed path: R(θ) = Σθ² without a temporary, and the constraint step in place.

The plain CPR step (:mod:`refreg.cpr.optimizer`) evaluates ``R = xp.sum(θ·θ)``, which writes a temporary the size
of θ (a 48 MB array with fresh pages for a 12M-parameter tensor) and reads it again, and then returns
``θ·(1 − 2λ)`` as another new array. Here, on NumPy:

- :func:`square_sum` forms θ² block by block in a scratch block and adds the blocks' sums in NumPy's pairwise
  order (:func:`refreg._pairwise.pairwise_blocks`), so it is ``np.sum(θ·θ)`` bit for bit (with numba, one
  compiled pass: :func:`refreg.optim._accel.square_sum`); with Adam as the base
  and ``donate=True`` the same sums come out of Adam's fused pass while the new θ is in cache
  (:func:`refreg.optim._fused.adam_into`), saving the read of θ as well;
- :func:`constraint_step_into` multiplies θ by ``1 − 2λ`` in place, bit for bit ``θ·(1 − 2λ)``; it is used on
  donated arrays and on the fresh arrays that refreg's own SGD/Adam return (never on a caller's array).

Everything else (float64 l2, the other measures, other backends) takes the plain code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refreg import _backend
from refreg._pairwise import pairwise_blocks
from refreg.optim import _accel

__all__ = [
    "base_update_donated",
    "constraint_step_into",
    "in_place_constraint",
    "square_sum",
    "writable_numpy",
]


def writable_numpy(x: Any) -> bool:
    """A writeable C-contiguous NumPy float array: the arrays the in-place kernels here accept."""
    return (
        isinstance(x, np.ndarray)
        and x.dtype in (np.float32, np.float64)
        and x.flags.c_contiguous
        and x.flags.writeable
    )


def square_sum(theta: np.ndarray) -> Any:
    """``np.sum(theta * theta)`` bit for bit (a 0-d NumPy scalar), without an array of theta's size.

    ``theta`` must be a C-contiguous NumPy float array. With numba installed, one compiled pass
    (:func:`refreg.optim._accel.square_sum`, the same bits).
    """
    if _accel.usable(theta):
        return _accel.square_sum(theta)
    block = max(2 * _backend.FUSED_BLOCK, 128)  # leaves of 1/2 to 1 times this (pairwise_blocks)
    flat = theta.reshape(-1)
    scratch = np.empty(min(flat.size, block), dtype=theta.dtype)

    def leaf(start: int, stop: int) -> Any:
        part = flat[start:stop]
        return np.add.reduce(np.multiply(part, part, out=scratch[: stop - start]))

    return pairwise_blocks(leaf, flat.size, block)


def constraint_step_into(theta: np.ndarray, lam: float) -> np.ndarray:
    """The l2 constraint step without ``reg_by_lr``, ``theta·(1 − 2·lam)``, written into ``theta``."""
    return np.multiply(theta, 1.0 - 2.0 * lam, out=theta)


def base_update_donated(opt: Any, grads: Any, state: Any, params: Any) -> tuple[Any, Any, dict]:
    """The base optimizer's donated update; with Adam and the l2 step also ``{name: R(θ_new)}`` (float32).

    The sums come from Adam's fused pass (bit for bit ``np.sum(θ·θ)``); a tensor without one (float64, whose
    R is a BLAS dot product, or arrays off the fused path) is absent and R is computed as usual.
    """
    from refreg.optim.optimizers import Adam

    if isinstance(opt.base, Adam) and opt.measure == "l2":
        sums = dict.fromkeys(state.lam)
        new_params, base_state = opt.base.update(
            grads, state.base, params, donate=True, _square_sums=sums
        )
        keep = {
            k: v for k, v in sums.items() if v is not None and new_params[k].dtype == np.float32
        }
        return new_params, base_state, keep
    new_params, base_state = opt.base.update(grads, state.base, params, donate=True)
    return new_params, base_state, {}


def in_place_constraint(opt: Any, donate: bool) -> bool:
    """Whether the l2 constraint step may write into the base's new arrays.

    They are the caller's donated arrays, or fresh arrays that refreg's own SGD and Adam return; any other base
    might hand back an array the caller still holds, so the plain (allocating) step is used.
    """
    from refreg.optim.optimizers import SGD, Adam

    fast = opt.measure == "l2" and not opt.reg_by_lr
    return fast and (donate or type(opt.base) in (SGD, Adam))
