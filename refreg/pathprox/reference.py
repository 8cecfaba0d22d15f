"""PathProx's reference step: the layer balance and then the prox, composed from the public operators.

This is the algorithm as the paper and the authors' ``regularize.py`` state it, written so that each line is
one operator (the algorithm in Yang et al. 2022 and in the authors' README and ``regularize.py``;
docs/derivations.md, "PathProx"):

1. ``θ ← θ − η·(∇L + λ·θ_other)`` (with torch-style momentum): :meth:`PathProx.reference_update`;
2. :func:`~refreg.pathprox.balance_layers`: every group's path norm becomes their geometric mean;
3. per unit, with ``τ = λ·η``: ``"sphere"``: ``w_k ← w_k/||w_k||`` (:func:`~refreg.pathprox.project_unit_sphere`)
   and ``v_k ← prox_{τ||·||}(v_k)`` (:func:`~refreg.pathprox.group_soft_threshold`); ``"joint"``:
   ``(w_k, v_k) ← prox_{τ||w||·||v||}(w_k, v_k)`` (:func:`~refreg.pathprox.prox_norm_product`).

:meth:`PathProx.update` computes steps 2–3 fused into one rescaling of each array
(:mod:`refreg.pathprox.fused`), equal to :func:`balance_then_prox` up to rounding.
"""

from __future__ import annotations

from typing import Any

from refreg.pathprox.balance import balance_layers
from refreg.pathprox.groups import Groups, Params
from refreg.pathprox.prox import group_soft_threshold, project_unit_sphere, prox_norm_product

__all__ = ["balance_then_prox"]


def balance_then_prox(
    xp: Any,
    params: Params,
    groups: Groups,
    tau: float,
    *,
    prox: str,
    balance: bool,
    regularize_bias: bool,
) -> Params:
    """Steps 2–3 of PathProx on the parameters after the gradient step; returns a new dict.

    ``balance``: apply :func:`balance_layers` first (PathProx skips it with ``regularize_bias``). With
    ``regularize_bias`` the unit's input vector is ``[w_k, b_k]``: the sphere projection and the joint prox act
    on it; without it the sphere projection still rescales ``b_k`` with its row (the authors' code) and the
    joint prox leaves ``b_k`` alone.
    """
    if balance:
        params = balance_layers(params, groups)  # P_g ← (Π_h P_h)^{1/G} for every group g
    out = dict(params)
    for pair in groups.pairs:
        W, V = params[pair.w], params[pair.v]
        b = params[pair.w_bias] if pair.w_bias is not None else None
        if prox == "sphere":
            W, b = project_unit_sphere(W, b, include_bias=regularize_bias)  # ||w_k|| = 1
            V = group_soft_threshold(V, tau, axis=0)  # v_k ← max(0, 1 − τ/||v_k||)·v_k
        elif regularize_bias and b is not None:
            Wb, V = prox_norm_product(xp.concat([W, b[:, None]], axis=1), V, tau)
            W, b = Wb[:, :-1], Wb[:, -1]
        else:
            W, V = prox_norm_product(W, V, tau)  # (w_k, v_k) ← prox of τ||w_k||·||v_k||
        out[pair.w], out[pair.v] = W, V
        if b is not None:
            out[pair.w_bias] = b
    return out
