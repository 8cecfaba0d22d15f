"""PathProx penalties: weight decay, the l2 path norm (norm product) and the objective that compares them.

For ReLU units ``½(||w||² + ||v||²) ≥ ||w||·||v||`` with equality iff ``||w|| = ||v||`` (AM-GM), so weight decay
and the path norm share their minimizing functions (Yang et al. 2022, Sec. 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from refreg._backend import on_device_of
from refreg.pathprox.groups import Groups, Params, _check_lam, _unit_norms, check_groups


def weight_decay_penalty(
    params: Mapping[str, Any], groups: Groups, *, regularize_bias: bool = False
) -> tuple[Any, Params]:
    """The weight-decay penalty of the grouped layers and its gradient.

    .. math::
        WD(θ) = ½ Σ_g (||W_g||_F² + ||V_g||_F²),\\qquad ∂WD/∂W_g = W_g,\\ ∂WD/∂V_g = V_g

    With ``regularize_bias`` the W biases enter as ``½ Σ_k b_k²`` (the unit vector ``[w_k, b_k]``). Other
    layers and V biases are not part of it (as in the authors' ``regularize.py``).

    Parameters
    ----------
    params : dict of arrays
    groups : Groups

    Returns
    -------
    value : 0-d array (params' namespace and dtype)
    grads : dict with every key of params (zero for keys outside the penalty)
    """
    xp = check_groups(params, groups)
    grads = {k: xp.zeros_like(p) for k, p in params.items()}
    first = next(iter(params.values()))
    value = xp.zeros((), dtype=first.dtype, **on_device_of(first))
    keys = [k for pair in groups.pairs for k in (pair.w, pair.v)]
    if regularize_bias:
        keys += [pair.w_bias for pair in groups.pairs if pair.w_bias is not None]
    for key in keys:
        p = params[key]
        value = value + 0.5 * xp.sum(p * p)
        grads[key] = xp.asarray(p, copy=True)  # never hand out the caller's array as a gradient
    return value, grads


def path_norm(
    params: Mapping[str, Any], groups: Groups, *, regularize_bias: bool = False
) -> tuple[Any, Params]:
    """The ℓ₂ path norm (norm-product penalty) and a (sub)gradient.

    .. math::
        PN(θ) = Σ_g Σ_k ||w_gk||·||v_gk||,\\qquad ∂PN/∂w_k = ||v_k||·w_k/||w_k||,\\
        ∂PN/∂v_k = ||w_k||·v_k/||v_k||

    At ``w_k = 0`` (or ``v_k = 0``) the subgradient with zero in that block is returned. ``w_k`` includes
    ``b_k`` when ``regularize_bias``.

    Returns
    -------
    value : 0-d array
    grads : dict with every key of params (zero outside the grouped weights)
    """
    xp = check_groups(params, groups)
    grads = {k: xp.zeros_like(p) for k, p in params.items()}
    first = next(iter(params.values()))
    value = xp.zeros((), dtype=first.dtype, **on_device_of(first))
    for pair, (nw, nv) in zip(
        groups.pairs, _unit_norms(xp, params, groups, regularize_bias), strict=True
    ):
        value = value + xp.sum(nw * nv)
        # ||v_k|| / ||w_k|| scales row k of W (0 where w_k = 0, the minimum-norm subgradient)
        with np.errstate(over="ignore", under="ignore"):  # a lost ratio is handled below
            row = xp.where(nw > 0, nv / xp.where(nw > 0, nw, 1.0), 0.0)
            col = xp.where(nv > 0, nw / xp.where(nv > 0, nv, 1.0), 0.0)
        # a ratio beyond the float range (||w_k|| = 1e200, ||v_k|| = 1e-200) takes (w_k/||w_k||)·||v_k||
        lost = _lost_ratios(xp, nw, nv, row, col)
        if lost is not None:
            row, col = xp.where(lost, 0.0, row), xp.where(lost, 0.0, col)
        grads[pair.w] = params[pair.w] * row[:, None]
        grads[pair.v] = params[pair.v] * col[None, :]
        if regularize_bias and pair.w_bias is not None:
            grads[pair.w_bias] = params[pair.w_bias] * row
        if lost is not None:
            sw, sv = xp.where(lost, nw, 1.0), xp.where(lost, nv, 1.0)
            W, V = params[pair.w], params[pair.v]
            with np.errstate(under="ignore"):
                grads[pair.w] = xp.where(
                    lost[:, None], (W / sw[:, None]) * sv[:, None], grads[pair.w]
                )
                grads[pair.v] = xp.where(
                    lost[None, :], (V / sv[None, :]) * sw[None, :], grads[pair.v]
                )
                if regularize_bias and pair.w_bias is not None:
                    b = params[pair.w_bias]
                    grads[pair.w_bias] = xp.where(lost, (b / sw) * sv, grads[pair.w_bias])
    return value, grads


def _lost_ratios(xp: Any, nw: Any, nv: Any, row: Any, col: Any) -> Any | None:
    """The units whose ratios ``row = ||v||/||w||``, ``col = ||w||/||v||`` (both norms > 0) over- or underflowed
    (a subnormal or 0, or inf), or None if there are none."""
    tiny = xp.finfo(nw.dtype).smallest_normal
    ok = (row >= tiny) & (row < math.inf) & (col >= tiny) & (col < math.inf)
    lost = (nw > 0) & (nv > 0) & ~ok
    return lost if bool(xp.any(lost)) else None


def weight_decay_objective(
    loss: Any,
    params: Mapping[str, Any],
    groups: Groups,
    lam: float,
    *,
    regularize_bias: bool = False,
) -> Any:
    """The weight-decay objective of the balanced net: ``loss + λ·PN(θ) + λ/2·Σ_other ||W||²``.

    With ``regularize_bias`` PN includes the units' W biases and the last sum every other bias (the other
    layers' and the pairs' V biases, which no unit rescaling changes).

    This is ``min over per-unit rescalings of loss + λ/2·||θ||²`` (docs/derivations.md, "Weight decay and the norm product"; the
    authors' "wd objective"), so PathProx and
    SGD + weight decay are compared on the same number. ``loss`` is a float or 0-d array.
    """
    lam = _check_lam(lam)
    xp = check_groups(params, groups)
    value, _ = path_norm(params, groups, regularize_bias=regularize_bias)
    other = list(groups.other)
    if (
        regularize_bias
    ):  # every bias that no unit rescaling reaches: the other layers' and the pairs' V biases
        other += list(groups.other_biases)
        other += [pair.v_bias for pair in groups.pairs if pair.v_bias is not None]
    for key in other:
        value = value + 0.5 * xp.sum(params[key] * params[key])
    return loss + lam * value


def active_units(params: Mapping[str, Any], groups: Groups) -> float:
    """Percentage of grouped units with ``||w_k||·||v_k|| > 0`` (exact zero; biases excluded, as the authors).

    Returns a host float in [0, 100] (the authors' "active neurons (%)").
    """
    xp = check_groups(params, groups)
    if not groups.pairs:
        raise ValueError("groups has no pairs, so there are no units to count")
    alive, total = 0, 0
    for nw, nv in _unit_norms(xp, params, groups, False):
        # product of two tiny norms could underflow to 0; test each factor instead
        alive += int(xp.sum(xp.astype((nw > 0) & (nv > 0), xp.int64)))
        total += nw.shape[0]
    return 100.0 * alive / total
