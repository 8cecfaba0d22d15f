"""PathProx's update without separate finiteness reads: the checks come from the unit norms (a speed path).

:meth:`PathProx.update <refreg.pathprox.PathProx.update>` first tries :func:`unchecked_update`. It checks the
structure (keys, shapes, dtypes, state, chain), runs the gradient step ``θ − η·(∇L + λθ_other)`` on every
array, and takes the unit norms of the results (:func:`~refreg.pathprox.fused.checked_square_norms`): a NaN
or inf in θ or ∇L reaches those sums of squares, so finite sums prove finite inputs and the two finiteness
reads per array of the checked path are not needed. The balance and prox then follow as in the checked path,
so the result is the checked update's bit for bit (``tests/test_pathprox_layers.py``). Whenever anything is
off (a check fails, an input is not finite, squares overflow or underflow, momentum, ``regularize_bias``,
arrays that are not NumPy float32/float64) it returns None and the checked path runs and raises what it
would have raised. With numba (:mod:`refreg.pathprox._accel`) the gradient step of large arrays is one loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from refreg._backend import HOST_FLOATS, zero_d_array
from refreg.optim.schedules import current_lr
from refreg.optim.state_checks import check_state_matches
from refreg.pathprox import _accel
from refreg.pathprox.balance import _check_chain
from refreg.pathprox.fused import checked_square_norms, fused_balance_then_prox
from refreg.pathprox.groups import Params, check_groups

__all__ = ["unchecked_update"]


def unchecked_update(
    opt: Any, grads: Mapping[str, Any], state: Any, params: Mapping[str, Any]
) -> Params | None:
    """``opt.update``'s new parameters without the finiteness reads, bit for bit, or None (module docstring).

    Any error of the structural checks also returns None, so errors come in the checked path's order.
    """
    if opt.momentum or opt.prox == "none" or opt.regularize_bias:
        return None
    if not (isinstance(params, dict) and isinstance(grads, dict) and grads.keys() == params.keys()):
        return None
    contiguous = True
    for key, p in params.items():
        g = grads[key]
        if not (
            type(p) is np.ndarray and type(g) is np.ndarray and p.dtype in HOST_FLOATS
            and g.dtype == p.dtype and g.shape == p.shape
        ):  # fmt: skip
            return None
        contiguous = contiguous and p.flags.c_contiguous and g.flags.c_contiguous
    state_type = type(opt).state_type
    try:
        xp = check_groups(params, opt.groups)
        if not (
            type(state) is state_type and type(state.step) is int and state.step >= 0
            and type(state.momentum_buffer) is dict and not state.momentum_buffer
        ):  # fmt: skip
            check_state_matches(state, {}, state_type, "momentum_buffer")
        if opt.layer_balance:
            _check_chain(params, opt.groups)
        lr = current_lr(opt.lr, state.step)
    except (TypeError, ValueError, ArithmeticError):
        return None
    # a NaN or inf only sends us to the checked path; it must not warn here first
    with np.errstate(over="ignore", invalid="ignore"):
        new_params = _gradient_step(opt, grads, params, lr, contiguous)
        norms = checked_square_norms(new_params, opt.groups)
    if norms is None:
        return None
    return fused_balance_then_prox(
        xp, new_params, opt.groups, opt.lam * lr, prox=opt.prox,
        balance=opt.layer_balance, regularize_bias=False, norms=norms,
    )  # fmt: skip


def _gradient_step(
    opt: Any, grads: Mapping[str, Any], params: Mapping[str, Any], lr: float, contiguous: bool
) -> Params:
    """``PathProx._gradient_step`` without momentum, ``θ − η·d``, its lines; large arrays by numba when
    installed (``contiguous``: every array is C-contiguous, which the kernels need)."""
    decayed = opt._decayed_set if opt.lam else frozenset()
    kernels = contiguous and _accel.enabled()
    new_params = {}
    for key, p in params.items():
        lam = opt.lam if key in decayed else None
        if kernels and p.size >= _accel.MIN_SIZE:  # one loop instead of two passes, same bits
            new_params[key] = _accel.gradient_step(p, grads[key], lr, lam)
            continue
        d = grads[key] if lam is None else grads[key] + lam * p
        step = d * (-lr)
        step += p
        new_params[key] = zero_d_array(step)
    return new_params
