"""A position-aware sparse regularizer: the spatial entropy with input columns pooled over image patches.

This is refreg's **second reconstruction** of Bayandorian's regularizer ("A Novel Sparse Regularizer",
arXiv 2301.07285, 2023; only the abstract is available). The first, :class:`refreg.sparse.SpatialEntropy`,
``H(r) + H(c)`` over the row and column shares of ``|W|``, is invariant to every permutation of the rows and of
the columns: it cannot tell a compact blob of input pixels from the same pixels scattered over the image. This
one uses the 28×28 layout of an image input layer: the column shares are summed over non-overlapping
``bh × bw`` patches of the image before the entropy is taken, so minimizing it gathers the input mass into few
*neighbourhoods*. The derivation is in ``docs/sparse_position_aware.md``.

Notation: W of shape (m, n) with ``n = h·w`` (column ``j`` is pixel ``(j // w, j % w)``), ``a = |W|``,
``S = Σ a``, ``r_i = Σ_j a_ij / S`` (m,), ``c_j = Σ_i a_ij / S`` (n,), ``P`` of shape (n, B) the 0/1 matrix with
``P_jb = 1`` iff pixel ``j`` lies in patch ``b``, ``q = cP`` (B,) the patch shares, ``b(j)`` the patch of ``j``:

    R(W) = H(r) + H(q),
    ∂R/∂w_ij = −sign(w_ij) · [(log r_i + H(r)) + (log q_b(j) + H(q))] / S.

Properties (tested): ``R(cW) = R(W)`` for ``c ≠ 0`` and so ``⟨∇R(W), W⟩ = 0``; invariant to permutations of
rows and to permutations of pixels *within* a patch, not across patches; ``1×1`` patches give back
``SpatialEntropy``; ``0 ≤ R ≤ log m + log B``; zero weights, rows and patches get zero gradient and never NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from refreg._backend import on_device_of
from refreg.sparse._matrices import _normalise, _safe, _safe_log, _sum
from refreg.sparse.regularizer import Regularizer

__all__ = ["PooledSpatialEntropy", "patch_matrix"]


def _check_pair(name: str, value: Any) -> tuple[int, int]:
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
        or min(value) < 1
    ):
        raise ValueError(f"{name} must be a pair of ints >= 1, got {value!r}")
    return int(value[0]), int(value[1])


def patch_matrix(image_shape: tuple[int, int], patch: tuple[int, int]) -> np.ndarray:
    """The 0/1 pooling matrix ``P`` of shape (h·w, B): ``P[j, b] = 1`` iff pixel ``j`` lies in patch ``b``.

    Patches are ``bh × bw`` tiles in row-major order, ``B = ceil(h/bh)·ceil(w/bw)``; the last row and column of
    tiles are smaller when ``bh`` or ``bw`` does not divide the side. Every row of ``P`` has exactly one 1.
    """
    h, w = _check_pair("image_shape", image_shape)
    bh, bw = _check_pair("patch", patch)
    nby, nbx = -(-h // bh), -(-w // bw)
    ys, xs = np.divmod(np.arange(h * w), w)
    block = (ys // bh) * nbx + xs // bw
    P = np.zeros((h * w, nby * nbx))
    P[np.arange(h * w), block] = 1.0
    return P


class PooledSpatialEntropy(Regularizer):
    """``R(W) = H(r) + H(q)``: row shares and patch-pooled column shares of ``|W|`` (second reconstruction).

    Parameters
    ----------
    image_shape : (h, w)
        Layout of the input columns; every matrix must have ``n = h·w`` columns (MNIST: (28, 28)).
    patch : (bh, bw)
        Patch size; (1, 1) is :class:`refreg.sparse.SpatialEntropy`.

    Notes
    -----
    With a list of matrices (network-wide scope) the row shares and patch shares of all matrices are
    concatenated and normalised by one mass ``S``, as for ``SpatialEntropy``. Beyond the gradient it keeps the
    ``m + n + B`` marginals and ``P`` (n × B).

    References
    ----------
    Bayandorian (2023), arXiv:2301.07285 (abstract: an entropy "concerned with the spatial arrangement of
    weights within a weight matrix"); derivation in ``docs/sparse_position_aware.md``.
    """

    name = "pooled_spatial_entropy"
    scale_invariant = True

    def __init__(self, image_shape: tuple[int, int] = (28, 28), patch: tuple[int, int] = (4, 4)):
        self.image_shape = _check_pair("image_shape", image_shape)
        self.patch = _check_pair("patch", patch)
        self._P = patch_matrix(self.image_shape, self.patch)

    def __repr__(self) -> str:
        return f"PooledSpatialEntropy(image_shape={self.image_shape}, patch={self.patch})"

    def _compute(self, xp: Any, Ws: Sequence[Any], need_grad: bool) -> tuple[Any, list | None]:
        n = self._P.shape[0]
        for W in Ws:
            if W.shape[1] != n:
                raise ValueError(
                    f"PooledSpatialEntropy(image_shape={self.image_shape}) needs matrices with "
                    f"{n} columns, got shape {tuple(W.shape)}"
                )
        P = xp.asarray(self._P, dtype=Ws[0].dtype, **on_device_of(Ws[0]))
        scale = _normalise(
            xp, Ws
        )  # W·2^-e, exact: shares and entropies unchanged (as SpatialEntropy)
        nonzero = scale.nonzero
        rows, pools = [], []
        for W in Ws:
            a = scale(xp.abs(W))  # in [0, 1): no sum below can overflow
            on = on_device_of(W)
            rows.append(a @ xp.ones((W.shape[1],), dtype=W.dtype, **on))
            pools.append((xp.ones((W.shape[0],), dtype=W.dtype, **on) @ a) @ P)
        S = _sum(xp, [xp.sum(r) for r in rows])
        S_safe = _safe(xp, S, nonzero)
        log_S = xp.log(S_safe)
        log_r = [xp.where(r > 0, _safe_log(xp, r) - log_S, xp.zeros_like(r)) for r in rows]
        log_q = [xp.where(q > 0, _safe_log(xp, q) - log_S, xp.zeros_like(q)) for q in pools]
        H_r = -_sum(xp, [xp.sum((r / S_safe) * lr) for r, lr in zip(rows, log_r, strict=True)])
        H_q = -_sum(xp, [xp.sum((q / S_safe) * lq) for q, lq in zip(pools, log_q, strict=True)])
        value = H_r + H_q
        if not need_grad:
            return value, None
        factor = -scale.fold / S_safe  # chain rule through W·2^-e, then 1/S
        grads = []
        for W, lr, lq in zip(Ws, log_r, log_q, strict=True):
            per_column = P @ (
                lq + H_q
            )  # log q_b(j) + H(q), spread back to the pixels of each patch
            g = ((lr + H_r) * factor)[:, None] + (per_column * factor)[None, :]
            grads.append(scale.rest(g * xp.sign(W)))
        return value, grads
