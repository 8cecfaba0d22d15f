"""The published sparsity baselines: L1, L2, group lasso, Hoyer, Hoyer-Square, Group Hoyer-Square."""

from __future__ import annotations

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

    Not scale-invariant: ``R(cW) = c² R(W)``; its value overflows to inf only if ``½Σw²`` itself does.
    """

    name = "l2"

    def _compute(self, xp, Ws, need_grad):
        scale = _normalise(xp, Ws)
        value = 0.5 * scale.undo(scale.undo(_sum(xp, [xp.sum(scale(W) ** 2) for W in Ws])))
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
        norms = [xp.linalg.vector_norm(scale(W), axis=1) for W in Ws]  # of Wn, in [0, sqrt(n)]
        value = scale.undo(_sum(xp, [xp.sum(nrm) for nrm in norms]))
        if not need_grad:
            return value, None
        grads = []
        for W, nrm in zip(Ws, norms, strict=True):
            pos = nrm > 0
            grads.append(
                scale(W) * xp.where(pos, 1.0 / _safe(xp, nrm, pos), xp.zeros_like(nrm))[:, None]
            )
        return value, grads


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
        row_norms = [xp.linalg.vector_norm(scale(W), axis=1) for W in Ws]
        col_norms = [xp.linalg.vector_norm(scale(W), axis=0) for W in Ws]
        C_in = _sum(xp, [xp.sum(c) for c in col_norms])
        C_out = _sum(xp, [xp.sum(r) for r in row_norms])
        Q = _safe(xp, _sum(xp, [xp.sum(r * r) for r in row_norms]), nonzero)
        value = (C_in * C_in + C_out * C_out) / Q if nonzero else xp.zeros_like(C_in)
        if not need_grad:
            return value, None
        grads = []
        for W, rn, cn in zip(Ws, row_norms, col_norms, strict=True):
            inv_r = xp.where(rn > 0, 1.0 / _safe(xp, rn, rn > 0), xp.zeros_like(rn))
            inv_c = xp.where(cn > 0, 1.0 / _safe(xp, cn, cn > 0), xp.zeros_like(cn))
            coef = (2.0 * C_out / Q) * inv_r[:, None] + ((2.0 * C_in / Q) * inv_c)[None, :]
            coef = coef - 2.0 * (C_in * C_in + C_out * C_out) / (Q * Q)
            grads.append(scale.rest(scale(W) * (coef * scale.fold)))
        return value, grads
