"""The published sparsity baselines: L1, L2, group lasso, Hoyer, Hoyer-Square, Group Hoyer-Square."""

from __future__ import annotations

import numpy as np

from refreg._pow2 import GroupPow2, unsafe_norms
from refreg.sparse._matrices import (
    _normalise,
    _safe,
    _sum,
)
from refreg.sparse.regularizer import Regularizer


class L1(Regularizer):
    """L1 norm (LASSO): ``R(W) = Σ_ij |w_ij|``, ``∂R/∂w_ij = sign(w_ij)`` with ``sign(0) = 0``.

    Not scale-invariant: ``R(cW) = |c| R(W)``. (Tibshirani 1996.)
    """

    name = "l1"

    def _compute(self, xp, Ws, need_grad):
        scale = _normalise(xp, Ws)
        value = scale.undo(_sum(xp, [xp.sum(scale(xp.abs(W))) for W in Ws]))
        return value, ([xp.sign(W) for W in Ws] if need_grad else None)


class L2(Regularizer):
    """L2 / weight decay: ``R(W) = ½ Σ_ij w_ij²``, ``∂R/∂w_ij = w_ij``.

    Not scale-invariant: ``R(cW) = c² R(W)``; a value ``½Σw²`` beyond the dtype's range is a
    ``FloatingPointError`` (not inf).
    """

    name = "l2"

    def _compute(self, xp, Ws, need_grad):
        scale = _normalise(xp, Ws)
        # ½ before scaling back (exact: the scaled sum is >= 1/4): ½Σw² may be finite where Σw² is not
        value = scale.undo(scale.undo(0.5 * _sum(xp, [xp.sum(scale(W) ** 2) for W in Ws])))
        return value, ([xp.asarray(W, copy=True) for W in Ws] if need_grad else None)


class GroupLasso(Regularizer):
    """Group lasso over rows (output units): ``R(W) = Σ_i ||W_i,:||₂``.

    .. math::
        ∂R/∂W_i,: = W_i,: / ||W_i,:||₂ \\quad (0 \\text{ for a zero row, the subgradient choice})

    Not scale-invariant: ``R(cW) = |c| R(W)``. (Yuan & Lin 2006; structured sparsity, Wen et al. 2016.)
    """

    name = "group_lasso"

    def _compute(self, xp, Ws, need_grad):
        scale = _normalise(xp, Ws)
        # norms of Wn, in [0, sqrt(n)]; a row far below max|W| (squares underflowing in Wn) at its own scale
        rows = [_OwnScale(xp, W, scale(W), 1, scale) for W in Ws]
        value = scale.undo(_sum(xp, [xp.sum(r.norm) for r in rows]))
        if not need_grad:
            return value, None
        grads = []
        for r in rows:
            pos = r.norm > 0 if r.bad is None else (r.norm > 0) & ~r.bad  # bad rows: below
            g = r.Wn * xp.where(pos, 1.0 / _safe(xp, r.norm, pos), xp.zeros_like(r.norm))[:, None]
            # W_i/||W_i|| from the row at its own scale: exact however far below max|W| it is
            if r.bad is not None:
                inv = xp.where(r.own_norm > 0, 1.0 / _safe(xp, r.own_norm, r.own_norm > 0), 0.0)
                g = xp.where(r.bad[:, None], r.own_W * inv[:, None], g)
            grads.append(g)
        return value, grads


class _OwnScale:
    """The norms of the rows (``axis=1``) or columns (``axis=0``) of ``Wn = W·2^-E``, right to a few ulps.

    ``Wn`` is normalised to the pooled max|W| (:class:`~refreg._pow2.Pow2Scale`), so the squares of a row
    2^±500 (float64; float32 2^±60) below it underflow: a row [3e30, 4e30] next to 1e200 had norm 0 and
    gradient 0. Those slices (:func:`~refreg._pow2.unsafe_norms`, ``bad``) are recomputed on ``W`` scaled by
    their own power of two ``2^-e`` (``own_W``, ``own_norm``, :class:`~refreg._pow2.GroupPow2`) and brought to
    Wn's scale, ``norm = own_norm·2^(e-E)``: bit for bit the plain norm wherever its squares were exact, and
    correctly rounded otherwise; it is subnormal or 0 for a slice more than 2^1022 (float32 2^126) below the
    max, whose entries in Wn are themselves subnormal.
    """

    def __init__(self, xp, W, Wn, axis, scale):
        self.Wn = Wn
        with np.errstate(under="ignore"):
            self.norm = xp.linalg.vector_norm(Wn, axis=axis)
        self.bad = unsafe_norms(xp, self.norm, [(W, axis, False)])
        if self.bad is None:
            return
        own = GroupPow2(xp, [(W, axis, False)], "W")
        with np.errstate(under="ignore"):
            self.own_W = own(W, axis, False)
            self.own_norm = xp.linalg.vector_norm(self.own_W, axis=axis)
            at_wn = self.own_norm * own.factor(own.exponent - scale.exponent)  # e <= E: no overflow
        self.norm = xp.where(self.bad, at_wn, self.norm)


class _HoyerBase(Regularizer):
    """Shared sums of ``W/M``: ``L1 = Σ|w|/M`` and ``Q = Σ w²/M²`` over the pooled matrices."""

    scale_invariant = True

    def _sums(self, xp, Ws):
        scale = _normalise(xp, Ws)
        L1 = _sum(xp, [xp.sum(xp.abs(scale(W))) for W in Ws])
        Q = _sum(xp, [xp.sum(scale(W) ** 2) for W in Ws])  # ≥ 1/4 unless all zero
        return scale, L1, _safe(xp, Q, scale.nonzero)


class Hoyer(_HoyerBase):
    """Hoyer's sparsity measure as a penalty: ``R(W) = Σ|w| / sqrt(Σ w²)`` (0 for W = 0).

    .. math::
        ∂R/∂w = sign(w)/||W||₂ − ||W||₁ w / ||W||₂³

    Scale-invariant; ``1 ≤ R ≤ sqrt(n_out·n_in)`` for W ≠ 0. (Hoyer 2004; Yang, Wen & Li, DeepHoyer, ICLR 2020.)
    """

    name = "hoyer"

    def _compute(self, xp, Ws, need_grad):
        scale, L1, Q = self._sums(xp, Ws)
        L2 = xp.sqrt(Q)
        value = L1 / L2 if scale.nonzero else xp.zeros_like(L1)
        if not need_grad:
            return value, None
        # chain rule through Wn = W·2^-e: ∇R(W) = ∇R(Wn)·2^-e
        a, b = scale.fold / L2, scale.fold * L1 / (L2 * Q)
        return value, [scale.rest(xp.sign(W) * a - scale(W) * b) for W in Ws]


class HoyerSquare(_HoyerBase):
    """Hoyer-Square (DeepHoyer): ``R(W) = (Σ|w|)² / Σ w²`` (0 for W = 0).

    .. math::
        ∂R/∂w = 2 ||W||₁ sign(w) / ||W||₂² − 2 ||W||₁² w / ||W||₂⁴

    Scale-invariant; ``1 ≤ R ≤ n_out·n_in``; ``R = exp(H₂)`` with ``H₂`` the order-2 Rényi entropy of ``|w|/||W||₁``.
    (Yang, Wen & Li, "DeepHoyer", ICLR 2020, Sec. 3.)
    """

    name = "hoyer_square"

    def _compute(self, xp, Ws, need_grad):
        scale, L1, Q = self._sums(xp, Ws)
        value = L1 * L1 / Q if scale.nonzero else xp.zeros_like(L1)
        if not need_grad:
            return value, None
        a, b = 2.0 * scale.fold * L1 / Q, 2.0 * scale.fold * L1 * L1 / (Q * Q)
        return value, [scale.rest(xp.sign(W) * a - scale(W) * b) for W in Ws]


class GroupHoyerSquare(_HoyerBase):
    """Group Hoyer-Square for a fully connected layer (DeepHoyer): columns (inputs) and rows (units).

    .. math::
        R(W) = [C_in² + C_out²] / Σ w²

        ∂R/∂w_ij = [2 C_in w_ij/||W_:,j|| + 2 C_out w_ij/||W_i,:||] / Σw² − 2(C_in² + C_out²) w_ij / (Σw²)²

    with ``C_in = Σ_j ||W_:,j||`` (input columns) and ``C_out = Σ_i ||W_i,:||`` (output rows); a zero row or
    column gets the zero subgradient.
    Scale-invariant. (Yang, Wen & Li, "DeepHoyer", ICLR 2020, Sec. 3, Group-HS.)
    """

    name = "group_hoyer_square"

    def _compute(self, xp, Ws, need_grad):
        scale = _normalise(xp, Ws)
        nonzero = scale.nonzero
        Wns = [scale(W) for W in Ws]
        # norms of Wn; rows and columns far below max|W| at their own scale (_OwnScale)
        rows = [_OwnScale(xp, W, Wn, 1, scale) for W, Wn in zip(Ws, Wns, strict=True)]
        cols = [_OwnScale(xp, W, Wn, 0, scale) for W, Wn in zip(Ws, Wns, strict=True)]
        C_in = _sum(xp, [xp.sum(c.norm) for c in cols])
        C_out = _sum(xp, [xp.sum(r.norm) for r in rows])
        Q = _safe(xp, _sum(xp, [xp.sum(r.norm * r.norm) for r in rows]), nonzero)
        value = (C_in * C_in + C_out * C_out) / Q if nonzero else xp.zeros_like(C_in)
        if not need_grad:
            return value, None
        grads = []
        for Wn, r, c in zip(Wns, rows, cols, strict=True):
            rn, cn = r.norm, c.norm
            # a norm below the smallest normal (a slice 2^1022 below the max, float32 2^126) gets its term
            # 2·C·w_ij/||W_i,:|| from the slice at its own scale (below); 1/rn would overflow
            tiny = xp.finfo(rn.dtype).smallest_normal
            inv_r = xp.where(rn >= tiny, 1.0 / _safe(xp, rn, rn >= tiny), xp.zeros_like(rn))
            inv_c = xp.where(cn >= tiny, 1.0 / _safe(xp, cn, cn >= tiny), xp.zeros_like(cn))
            coef = (2.0 * C_out / Q) * inv_r[:, None] + ((2.0 * C_in / Q) * inv_c)[None, :]
            coef = coef - 2.0 * (C_in * C_in + C_out * C_out) / (Q * Q)
            g = Wn * (coef * scale.fold)
            g = _far_term(xp, g, r, (2.0 * C_out / Q) * scale.fold, 1, tiny)
            g = _far_term(xp, g, c, (2.0 * C_in / Q) * scale.fold, 0, tiny)
            grads.append(scale.rest(g))
        return value, grads


def _far_term(xp, g, s, a, axis, tiny):
    """``g + a·W/||W||`` over the slices of ``s`` (:class:`_OwnScale`) whose norm in Wn is nonzero but below
    ``tiny``, the unit vector from the slice at its own scale; ``g`` unchanged when there are none."""
    if s.bad is None:
        return g
    far = s.bad & (s.own_norm > 0) & (s.norm < tiny)
    if not bool(xp.any(far)):
        return g
    inv = xp.where(far, 1.0 / _safe(xp, s.own_norm, far), 0.0)
    unit = s.own_W * xp.expand_dims(inv, axis=axis)
    return xp.where(xp.expand_dims(far, axis=axis), g + a * unit, g)
