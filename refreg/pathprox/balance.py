"""PathProx rescalings that keep a ReLU network's function: per-unit and the authors' layer-wise balance."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from refreg.pathprox.groups import (
    Groups,
    Params,
    _check_finite_params,
    _unit_norms,
    check_groups,
)
from refreg.pathprox.prox import SPHERE_EPS


def balance_units(
    params: Mapping[str, Any], groups: Groups, *, regularize_bias: bool = False
) -> Params:
    """Rescale every unit so that ``||w_k|| = ||v_k||``; the ReLU network's function is unchanged.

    .. math::
        w_k ← a_k w_k,\\ b_k ← a_k b_k,\\ v_k ← v_k / a_k,\\qquad a_k² = ||v_k|| / ||w_k||

    Afterwards ``||w_k||² + ||v_k||² = 2·||w_k||·||v_k||`` for every unit with both sides nonzero (AM-GM
    equality; docs/derivations.md, "Balancing formulas"), so ``WD = PN`` when no unit has exactly one zero side.
    Units with ``||w_k||·||v_k|| = 0`` are left unchanged (their infimum is not attained by a
    function-preserving rescaling): one with a single zero side keeps ``½·||nonzero side||²`` in WD and 0 in PN. With ``regularize_bias`` ``||w_k||``
    is the norm of ``[w_k, b_k]``. Returns a new dict; the input is not modified.
    """
    xp = check_groups(params, groups)
    _check_finite_params(params)
    out = dict(params)
    for pair, (nw, nv) in zip(
        groups.pairs, _unit_norms(xp, params, groups, regularize_bias), strict=True
    ):
        alive = (nw > 0) & (nv > 0)
        with np.errstate(over="ignore", under="ignore"):  # a lost ratio is handled below
            ratio = nv / xp.where(alive, nw, 1.0)
        a = xp.where(alive, xp.sqrt(ratio), 1.0)
        lost = alive & ~((ratio >= xp.finfo(ratio.dtype).smallest_normal) & (ratio < math.inf))
        if bool(xp.any(lost)):  # ||v||/||w|| beyond the float range (1e-200/1e200): sqrt each first
            a = xp.where(lost, xp.sqrt(nv) / xp.sqrt(xp.where(alive, nw, 1.0)), a)
        out[pair.w] = params[pair.w] * a[:, None]
        out[pair.v] = params[pair.v] / a[None, :]
        if pair.w_bias is not None:
            out[pair.w_bias] = params[pair.w_bias] * a
    return out


def _layer_scales(xp: Any, P: list[Any]) -> list[Any]:
    """Cumulative scales ``a_g`` of the authors' sequential layer balance (closed form).

    ``a_g = P̄/P_g`` applied in order with ``P_{g+1} ← P_{g+1}/a_g`` gives ``a_g = P̄^{g+1} / Π_{j≤g} P_j``; the
    last one is 1 up to rounding and is set to exactly 1 (the last V has no layer to compensate it). The 1e-6
    floor is applied to the original ``P_j``; where the authors' loop, which floors the running ``P_g``
    instead, gives other scales: :func:`balance_layers`.
    """
    logs = [xp.log(xp.clip(p, min=SPHERE_EPS)) for p in P]
    log_g = sum(logs) / len(logs)
    scales, cum = [], 0.0
    for g in range(len(P) - 1):
        cum = cum + logs[g]
        scales.append(xp.exp((g + 1) * log_g - cum))
    return [*scales, 1.0]


def _check_chain(params: Mapping[str, Any], groups: Groups) -> None:
    for g in range(len(groups.pairs) - 1):
        V, W_next = params[groups.pairs[g].v], params[groups.pairs[g + 1].w]
        if V.shape[0] != W_next.shape[1]:
            raise ValueError(
                f"groups.pairs[{g}].v has {V.shape[0]} outputs but pairs[{g + 1}].w has {W_next.shape[1]} "
                "inputs; layer balance needs the pairs to be consecutive layers"
            )


def balance_layers(params: Mapping[str, Any], groups: Groups) -> Params:
    """The authors' layer-wise balance in closed form: every group path norm ``P_g`` becomes their geometric
    mean P̄ (while no 1e-6 floor acts, see below).

    .. math::
        a_g = P̄^{g+1} / Π_{j≤g} max(P_j, 10^{-6}),\\quad V_g ← (a_g/a_{g-1}) V_g,\\quad
        b_{V_g} ← a_g b_{V_g},\\quad b_{W_{g+1}} ← a_g b_{W_{g+1}}

    with ``P̄ = (Π_g max(P_g, 1e-6))^{1/G}`` over the G pairs, ``a_{-1} = 1`` and ``a_{G-1} = 1`` exactly
    (``layerwise_balance`` in the authors' ``regularize_func.py``; derived in docs/derivations.md, "Balancing
    formulas"). As computed: ``log_j = log max(P_j, 1e-6)``,
    ``a_g = exp((g + 1)·mean(log) − Σ_{j≤g} log_j)`` for g < G − 1, and V_g is multiplied by the one factor
    ``a_g/a_{g-1}``. The output of group g is scaled by ``a_g`` and undone by the next group, ReLU being
    positively homogeneous; W weights (and hence ``||w_k|| = 1``) are untouched, ``Π_g P_g`` is preserved, and
    ``Σ_g P_g`` is minimized over layer-wise rescalings (AM-GM). The last scale is 1
    up to rounding in the authors' code; here it is exactly 1, so the function is kept exactly.
    Biases are excluded from ``P_g``. Returns a new dict.

    The 1e-6 floor, here and in the authors' loop (docs/derivations.md, "Balancing formulas"): refreg floors
    the *original* ``P_j``, in P̄ and in the running product alike, so a dead group (``P_j = 0``) divides by
    1e-6, not by 0, and the function is always kept. The authors' loop floors P̄ the same way but then goes
    group by group with the *running* path norm: ``s_g = P̄/max(P'_g, 1e-6)`` with ``P'_0 = P_0`` and
    ``P'_{g+1} = P_{g+1}/max(s_g, 1e-6)``, and it multiplies the last V by its ``s_{G-1}`` too. While every
    ``P_g`` (g ≥ 1), every ``P'_g`` and every ``s_g`` is at least 1e-6 the two are the same formula (they
    agree to 3.6e-15 relative); once an intermediate per-layer path norm falls below 1e-6 they differ.
    For example, ``MLP([1] * 7)`` with ``W_g = 1``, ``V_g = P_g`` and ``P = [2e-6, 2e-6, 1e3]`` (so
    ``P'_1 = 2.5e-9``): here every ``P_g`` becomes 1.587e-3 and the network output stays 1328.145; the
    authors' loop gives ``[1.587e-3, 4.0e-6, 1.587e-3]`` and, its ``s_2 = 2.5e-3`` not being 1, changes the
    output to 3.347. With ``P = [1, 1e-7, 1]`` (only the original ``P_1`` below the floor) this function
    gives ``[0.01, 0.001, 0.01]``, not all equal to P̄, and keeps the output; the authors' loop gives
    ``[0.01, 0.01, 0.01]`` and multiplies the output by 10.
    """
    xp = check_groups(params, groups)
    _check_chain(params, groups)
    _check_finite_params(params)
    if len(groups.pairs) < 2:
        return dict(params)
    P = [xp.sum(nw * nv) for nw, nv in _unit_norms(xp, params, groups, False)]
    scales = _layer_scales(xp, P)
    return _apply_layer_scales(params, groups, scales)


def _apply_layer_scales(params: Mapping[str, Any], groups: Groups, scales: list[Any]) -> Params:
    out = dict(params)
    prev: Any = 1.0
    for g, pair in enumerate(groups.pairs):
        s = scales[g]
        out[pair.v] = params[pair.v] * (s / prev)
        if pair.v_bias is not None:
            out[pair.v_bias] = params[pair.v_bias] * s
        if g + 1 < len(groups.pairs) and groups.pairs[g + 1].w_bias is not None:
            key = groups.pairs[g + 1].w_bias
            out[key] = params[key] * s
        prev = s
    return out
