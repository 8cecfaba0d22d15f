"""The spatial entropy (refreg's reconstruction of Bayandorian 2023) and its element-entropy ablation."""

from __future__ import annotations

import numpy as np

from refreg._backend import on_device_of
from refreg.sparse import _accel
from refreg.sparse._matrices import (
    _normalise,
    _safe,
    _safe_log,
    _sum,
    _times_sign,
    _total,
)
from refreg.sparse.regularizer import Regularizer


class SpatialEntropy(Regularizer):
    """Spatial (marginal) entropy, refreg's reconstruction of Bayandorian's (2023) regularizer.

    .. math::
        R(W) = H(r) + H(c),\\quad r_i = Σ_j |w_ij| / ‖W‖₁,\\quad c_j = Σ_i |w_ij| / ‖W‖₁,\\quad
        ‖W‖₁ = Σ_ij |w_ij|

        ∂R/∂w_ij = −sign(w_ij) · [(\\log r_i + H(r)) + (\\log c_j + H(c))] / ‖W‖₁

    Notes
    -----
    The abstract of arXiv 2301.07285 (v3, v5) says the regularizer is an entropy "concerned with the spatial
    arrangement of weights within a weight matrix", differentiable, scale-invariant, cheap, with trivial extra
    memory; the formula itself is not available, so this is a reconstruction with all of those properties, not
    a verified copy. It depends on which rows (output units) and columns (input features) hold the mass:
    minimizing it empties whole rows and columns. ``0 ≤ R ≤ log n_out + log n_in``; ``R(cW) = R(W)`` for ``c ≠ 0``.
    A zero row or column contributes ``0 log 0 = 0``; ``sign(0) = 0`` gives zero weights zero gradient, and
    an all-zero matrix has ``R = 0`` and zero gradient. Beyond the gradient (and the transient elementwise
    temporaries of one pass over ``|W|``) it keeps the ``n_out + n_in`` marginals and a few scalars.
    The gradient grows like ``log(1/|w|)`` as a weight's row/column share goes to 0; it is finite for every
    finite ``W`` whose gradient is representable (it scales like ``1/max|W|``).

    References
    ----------
    S. Bayandorian, "A Novel Sparse Regularizer", arXiv:2301.07285 (2023), abstract (reconstruction).
    """

    name = "spatial_entropy"
    scale_invariant = True

    def _compute(self, xp, Ws, need_grad):
        # with numba, three compiled loops replace the elementwise passes marked "(kernel)", bit for bit
        # (refreg.sparse._accel); the lines here are the reference
        fast = _accel.usable(xp, Ws)
        scale = _accel.max_abs(Ws) if fast else None  # (kernel) None for a NaN or inf: raised below
        if scale is None:
            fast, scale = False, _normalise(xp, Ws)
        nonzero = scale.nonzero
        rows, cols, no_zero = [], [], []
        for W in Ws:
            if fast:  # (kernel)
                a, nz = _accel.abs_scaled(W, scale)
            else:
                a = scale.owned(xp.abs(W))  # in [0, 1): the sums below cannot overflow
                # min|W|·2^-e > 0 proves W has no zero (an underflow to 0 only costs the speed path)
                nz = bool(xp.min(a) > 0)
            no_zero.append(nz)
            # the marginals as matrix-vector products: one BLAS pass each, ~10x faster than xp.sum(axis)
            on = on_device_of(W)
            rows.append(a @ xp.ones((W.shape[1],), dtype=W.dtype, **on))
            cols.append(xp.ones((W.shape[0],), dtype=W.dtype, **on) @ a)
            del a
        S = _sum(
            xp, [_total(xp, r) for r in rows]
        )  # ≥ 1 unless every weight is 0 (the max entry counts 1)
        log_S = xp.log(_safe(xp, S, nonzero))
        S_safe = _safe(xp, S, nonzero)
        # log r_i = log(row mass) − log ‖W‖₁, computed from the mass so that tiny shares do not underflow to 0
        log_r = [_log_share(xp, r, log_S) for r in rows]
        log_c = [_log_share(xp, c, log_S) for c in cols]
        H_r = -_sum(xp, [_total(xp, (r / S_safe) * lr) for r, lr in zip(rows, log_r, strict=True)])
        H_c = -_sum(xp, [_total(xp, (c / S_safe) * lc) for c, lc in zip(cols, log_c, strict=True)])
        value = H_r + H_c
        if not need_grad:
            return value, None
        # −2^-e/S: the chain rule through Wn = W·2^-e (S >= 1/2, so the factor is finite)
        factor = -scale.fold / S_safe
        grads = []
        for W, lr, lc, nz in zip(Ws, log_r, log_c, no_zero, strict=True):
            A, B = (lr + H_r) * factor, (lc + H_c) * factor
            if fast and A.dtype == W.dtype and B.dtype == W.dtype:  # (kernel)
                g = _accel.outer_times_sign(A, B, W)
            else:
                g = _times_sign(xp, A[:, None] + B[None, :], W, nz)  # (A_i + B_j)·sign(w_ij)
            grads.append(scale.rest(g))
        return value, grads


def _log_share(xp, m, log_S):
    """``log(m / S) = log m − log S`` where the mass ``m > 0``, else 0: ``where(m > 0, log m − log S, 0)``.

    On NumPy the same two operations run with ``where=`` into one zeroed output (4 calls instead of 9 on
    vectors of 10–784 entries, where the calls cost more than the arithmetic); bit for bit the same
    (``tests/test_speed_paths.py`` compares it with the array-API path).
    """
    if xp is np and isinstance(m, np.ndarray):
        positive = m > 0
        out = np.zeros(m.shape, dtype=m.dtype)  # np.zeros_like's Python wrapper costs ≈2 µs more
        np.log(m, out=out, where=positive)
        np.subtract(out, log_S, out=out, where=positive)
        return out
    return xp.where(m > 0, _safe_log(xp, m) - log_S, xp.zeros_like(m))


class ElementEntropy(Regularizer):
    """Element entropy: the Shannon entropy of the normalised magnitudes (the arrangement-blind ablation).

    .. math::
        R(W) = H(p) = −Σ_ij p_ij \\log p_ij,\\quad p_ij = |w_ij| / ‖W‖₁;\\qquad
        ∂R/∂w_ij = −sign(w_ij)(\\log p_ij + H(p)) / ‖W‖₁

    Notes
    -----
    Scale-invariant and invariant under any permutation of the entries; ``0 ≤ R ≤ log(n_out·n_in)``.
    ``exp`` of the order-2 Rényi entropy of ``p`` is Hoyer-Square; this is the order-1 (Shannon) member of the
    same family. Zero entries contribute ``0 log 0 = 0`` and get zero gradient (``sign(0) = 0``). It needs one
    elementwise ``log`` (a temporary of W's size) besides the gradient.

    References
    ----------
    The ablation of the spatial entropy in refreg's reconstruction of Bayandorian (2023), arXiv:2301.07285.
    """

    name = "element_entropy"
    scale_invariant = True

    def _compute(self, xp, Ws, need_grad):
        scale = _normalise(xp, Ws)
        nonzero = scale.nonzero
        masses = [xp.sum(scale(xp.abs(W))) for W in Ws]
        S = _sum(xp, masses)
        S_safe = _safe(xp, S, nonzero)
        log_S = xp.log(S_safe)
        H = 0.0
        log_ps = []
        for W in Ws:
            a = scale(xp.abs(W))
            log_p = xp.where(a > 0, _safe_log(xp, a) - log_S, xp.zeros_like(a))
            H = H - xp.sum((a / S_safe) * log_p)
            log_ps.append(log_p if need_grad else None)
        value = H
        if not need_grad:
            return value, None
        factor = -scale.fold / S_safe  # the chain rule through Wn = W·2^-e
        grads = [
            scale.rest(xp.sign(W) * ((log_p + H) * factor))
            for W, log_p in zip(Ws, log_ps, strict=True)
        ]
        return value, grads
