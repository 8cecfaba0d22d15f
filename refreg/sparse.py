"""Sparse regularizers on weight matrices, magnitude pruning and masked fine-tuning.

The default, ``spatial_entropy``, is refreg's **reconstruction** of the scale-invariant sparse regularizer of
Bayandorian, "A Novel Sparse Regularizer" (arXiv 2301.07285, 2023). The paper's formula is not published in
anything at hand (only its abstract): refreg implements the natural regularizer that has every property the
abstract states -- it depends on the *spatial arrangement* of the weights in a matrix, it is an entropy, it is
differentiable, scale-invariant, cheap (two reductions), needs O(m + n) extra numbers and parallelizes. It is
not a verified copy of the paper's regularizer. The baselines (L1, L2, group lasso, Hoyer, Hoyer-Square,
Group Hoyer-Square) follow their published definitions.

Notation (PyTorch layout):

=========  =============  ==========================================================================
symbol     shape          meaning
=========  =============  ==========================================================================
W          (m, n)         one weight matrix; row i = output unit i, column j = input feature j
a          (m, n)         ``|W|``
S          ()             ``Σ_ij a_ij``, the total mass
r          (m,)           row shares ``r_i = Σ_j a_ij / S``
c          (n,)           column shares ``c_j = Σ_i a_ij / S``
p          (m, n)         element shares ``p_ij = a_ij / S``
H(q)       ()             Shannon entropy ``−Σ q log q`` with ``0 log 0 = 0``
sign(0)    --             ``0``: the subgradient chosen at the kink of ``|w|`` (zero weights get zero gradient)
=========  =============  ==========================================================================

Every regularizer is an object with ``value(W)``, ``grad(W)`` and ``value_and_grad(W)`` (exact closed-form
gradients, no autodiff) and an attribute ``scale_invariant``; ``REGULARIZERS`` maps names to them.
:func:`penalty` sums a regularizer over the weight matrices of a net, per layer or network-wide.
:func:`magnitude_mask`, :func:`apply_mask`, :func:`count_nonzero` and :func:`masked` prune and fine-tune.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from refreg._backend import get_namespace, is_array, namespace_of_params
from refreg._validation import check_choice, check_nonnegative

__all__ = [
    "L1",
    "L2",
    "REGULARIZERS",
    "SCOPES",
    "ElementEntropy",
    "GroupHoyerSquare",
    "GroupLasso",
    "Hoyer",
    "HoyerSquare",
    "Masked",
    "Regularizer",
    "SpatialEntropy",
    "apply_mask",
    "count_nonzero",
    "get_regularizer",
    "magnitude_mask",
    "masked",
    "penalty",
    "weight_names",
]

SCOPES = ("layer", "network")


# ----------------------------------------------------------------------------------------------- validation
def _check_matrix(name: str, W: Any) -> Any:
    """``W`` is a real floating array of shape (m, n) with m, n >= 1; returns its namespace."""
    if not is_array(W):
        raise TypeError(f"{name} must be an array of shape (m, n), got {type(W).__name__}")
    xp = get_namespace(W)
    if W.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D weight matrix of shape (m, n), got a {W.ndim}-D array of shape "
            f"{tuple(W.shape)}"
        )
    if W.shape[0] < 1 or W.shape[1] < 1:
        raise ValueError(f"{name} must have m, n >= 1, got shape {tuple(W.shape)}")
    if not xp.isdtype(W.dtype, "real floating"):
        raise TypeError(
            f"{name} must have a real floating dtype (float32 or float64), got {W.dtype}"
        )
    return xp


def _check_matrices(Ws: Sequence[Any], names: Sequence[str]) -> Any:
    for name, W in zip(names, Ws, strict=True):
        _check_matrix(name, W)
    xp = get_namespace(*Ws)
    dtypes = {str(W.dtype) for W in Ws}
    if len(dtypes) != 1:
        raise TypeError(f"the weight matrices must share one dtype, got {sorted(dtypes)}")
    return xp


# -------------------------------------------------------------------------------------------------- helpers
def _max_abs(xp: Any, Ws: Sequence[Any]) -> Any:
    """``max_l max|W_l|`` as a 0-d array (two reductions per matrix, no temporary of W's size)."""
    out = None
    for W in Ws:
        m = xp.maximum(xp.max(W), -xp.min(W))
        out = m if out is None else xp.maximum(out, m)
    return out


def _safe(xp: Any, x: Any, positive: Any) -> Any:
    """``x`` where ``positive``, else 1: an argument for ``log``/division that never gives -inf or NaN."""
    return xp.where(positive, x, xp.ones_like(x))


def _safe_log(xp: Any, x: Any) -> Any:
    """``log x`` for ``x > 0`` and ``0`` for ``x = 0`` (so that ``x log x = 0`` and ``sign(0)·log = 0``)."""
    positive = x > 0
    return xp.where(positive, xp.log(_safe(xp, x, positive)), xp.zeros_like(x))


def _normalise(xp: Any, Ws: Sequence[Any]) -> tuple[Any, Any, Any]:
    """``(M, 1/M, M > 0)`` with ``M = max|W|`` over all matrices (``1/M := 1`` for all-zero weights).

    Every regularizer works on ``W/M``: its entries lie in [-1, 1], so no sum of squares or of magnitudes can
    overflow for any finite input, and the scale-invariant ones are then evaluated exactly as at ``W``.
    """
    M = _max_abs(xp, Ws)
    nonzero = M > 0
    return M, 1.0 / _safe(xp, M, nonzero), nonzero


def _sum(xp: Any, values: Sequence[Any]) -> Any:
    out = values[0]
    for v in values[1:]:
        out = out + v
    return out


# ------------------------------------------------------------------------------------------- regularizers
class Regularizer:
    """Base class: a penalty ``R(W)`` on weight matrices with its exact gradient.

    Subclasses implement ``_compute(xp, Ws, need_grad) -> (value, grads or None)`` for a *list* of matrices
    treated as one pool (one normalisation over all of them); a single matrix is the list of one.

    Attributes
    ----------
    name : str
        The key in :data:`REGULARIZERS`.
    scale_invariant : bool
        ``R(cW) = R(W)`` for every ``c ≠ 0``; then ``⟨∇R(W), W⟩ = 0`` (Euler's identity, degree 0).
    """

    name: str = ""
    scale_invariant: bool = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _compute(self, xp: Any, Ws: Sequence[Any], need_grad: bool) -> tuple[Any, list | None]:
        raise NotImplementedError

    def value(self, W: Any) -> Any:
        """``R(W)`` as a 0-d array of ``W``'s namespace and dtype; ``W`` of shape (m, n)."""
        xp = _check_matrix("W", W)
        return self._compute(xp, [W], need_grad=False)[0]

    def grad(self, W: Any) -> Any:
        """``∇R(W)``, an array of shape (m, n) and ``W``'s dtype."""
        return self.value_and_grad(W)[1]

    def value_and_grad(self, W: Any) -> tuple[Any, Any]:
        """``(R(W), ∇R(W))`` in one pass; ``W`` of shape (m, n)."""
        xp = _check_matrix("W", W)
        value, grads = self._compute(xp, [W], need_grad=True)
        return value, grads[0]

    def value_and_grads(self, Ws: Sequence[Any]) -> tuple[Any, list[Any]]:
        """``R`` of the matrices ``Ws`` pooled into one (network-wide scope) and its gradient per matrix.

        For the additive regularizers (L1, L2, group lasso) this is the sum over matrices; for the others the
        sums inside ``R`` (mass, norms, marginals) run over all matrices together. See :func:`penalty`.
        """
        if isinstance(Ws, (str, bytes)) or not isinstance(Ws, Sequence) or len(Ws) == 0:
            raise TypeError(f"Ws must be a non-empty list of matrices, got {type(Ws).__name__}")
        xp = _check_matrices(Ws, [f"Ws[{i}]" for i in range(len(Ws))])
        return self._compute(xp, list(Ws), need_grad=True)


class SpatialEntropy(Regularizer):
    """Spatial (marginal) entropy, refreg's reconstruction of Bayandorian's (2023) regularizer.

    .. math::
        R(W) = H(r) + H(c),\\quad r_i = Σ_j |w_ij| / S,\\quad c_j = Σ_i |w_ij| / S,\\quad S = Σ_ij |w_ij|

        ∂R/∂w_ij = −sign(w_ij) · [(\\log r_i + H(r)) + (\\log c_j + H(c))] / S

    Notes
    -----
    The abstract of arXiv 2301.07285 (v3, v5) says the regularizer is an entropy "concerned with the spatial
    arrangement of weights within a weight matrix", differentiable, scale-invariant, cheap, with trivial extra
    memory; the formula itself is not available, so this is a reconstruction with all of those properties, not
    a verified copy. It depends on which rows (output units) and columns (input features) hold the mass:
    minimizing it empties whole rows and columns. ``0 ≤ R ≤ log m + log n``; ``R(cW) = R(W)`` for ``c ≠ 0``.
    A zero row or column contributes ``0 log 0 = 0``; ``sign(0) = 0`` gives zero weights zero gradient, and
    an all-zero matrix has ``R = 0`` and zero gradient. Beyond the gradient (and the transient elementwise
    temporaries of one pass over ``|W|``) it keeps the ``m + n`` marginals and a few scalars.
    The gradient grows like ``log(1/|w|)`` as a weight's row/column share goes to 0; it is finite for every
    finite ``W`` whose gradient is representable (``max|W|`` not subnormal).

    References
    ----------
    S. Bayandorian, "A Novel Sparse Regularizer", arXiv:2301.07285 (2023), abstract (reconstruction).
    """

    name = "spatial_entropy"
    scale_invariant = True

    def _compute(self, xp, Ws, need_grad):
        M, inv, nonzero = _normalise(xp, Ws)
        rows, cols = [], []
        for W in Ws:
            a = xp.abs(W) * inv  # in [0, 1]: the sums below cannot overflow
            # the marginals as matrix-vector products: one BLAS pass each, ~10x faster than xp.sum(axis)
            rows.append(a @ xp.ones((W.shape[1],), dtype=W.dtype))
            cols.append(xp.ones((W.shape[0],), dtype=W.dtype) @ a)
            del a
        S = _sum(
            xp, [xp.sum(r) for r in rows]
        )  # ≥ 1 unless every weight is 0 (the max entry counts 1)
        log_S = xp.log(_safe(xp, S, nonzero))
        S_safe = _safe(xp, S, nonzero)
        # log r_i = log(row mass) − log S, computed from the mass so that tiny shares do not underflow to 0
        log_r = [xp.where(r > 0, _safe_log(xp, r) - log_S, xp.zeros_like(r)) for r in rows]
        log_c = [xp.where(c > 0, _safe_log(xp, c) - log_S, xp.zeros_like(c)) for c in cols]
        H_r = -_sum(xp, [xp.sum((r / S_safe) * lr) for r, lr in zip(rows, log_r, strict=True)])
        H_c = -_sum(xp, [xp.sum((c / S_safe) * lc) for c, lc in zip(cols, log_c, strict=True)])
        value = H_r + H_c
        if not need_grad:
            return value, None
        # −1/(M S): the chain rule through W/M; divided in two steps because M·S can overflow for huge W
        scale = (-1.0 / _safe(xp, M, nonzero)) / S_safe
        grads = []
        for W, lr, lc in zip(Ws, log_r, log_c, strict=True):
            g = ((lr + H_r) * scale)[:, None] + ((lc + H_c) * scale)[None, :]
            grads.append(g * xp.sign(W))
        return value, grads


class ElementEntropy(Regularizer):
    """Element entropy: the Shannon entropy of the normalised magnitudes (the arrangement-blind ablation).

    .. math::
        R(W) = H(p) = −Σ_ij p_ij \\log p_ij,\\quad p_ij = |w_ij| / S;\\qquad
        ∂R/∂w_ij = −sign(w_ij)(\\log p_ij + H(p)) / S

    Notes
    -----
    Scale-invariant and invariant under any permutation of the entries; ``0 ≤ R ≤ log(mn)``.
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
        M, inv, nonzero = _normalise(xp, Ws)
        masses = [xp.sum(xp.abs(W) * inv) for W in Ws]
        S = _sum(xp, masses)
        S_safe = _safe(xp, S, nonzero)
        log_S = xp.log(S_safe)
        H = 0.0
        log_ps = []
        for W in Ws:
            a = xp.abs(W) * inv
            log_p = xp.where(a > 0, _safe_log(xp, a) - log_S, xp.zeros_like(a))
            H = H - xp.sum((a / S_safe) * log_p)
            log_ps.append(log_p if need_grad else None)
        value = H
        if not need_grad:
            return value, None
        scale = (-1.0 / _safe(xp, M, nonzero)) / S_safe  # two divisions: M·S can overflow
        grads = [xp.sign(W) * ((log_p + H) * scale) for W, log_p in zip(Ws, log_ps, strict=True)]
        return value, grads


class L1(Regularizer):
    """L1 norm (LASSO): ``R(W) = Σ_ij |w_ij|``, ``∂R/∂w_ij = sign(w_ij)`` with ``sign(0) = 0``.

    Not scale-invariant: ``R(cW) = |c| R(W)``. (Tibshirani 1996.)
    """

    name = "l1"

    def _compute(self, xp, Ws, need_grad):
        M, inv, _ = _normalise(xp, Ws)
        value = M * _sum(xp, [xp.sum(xp.abs(W) * inv) for W in Ws])
        return value, ([xp.sign(W) for W in Ws] if need_grad else None)


class L2(Regularizer):
    """L2 / weight decay: ``R(W) = ½ Σ_ij w_ij²``, ``∂R/∂w_ij = w_ij``.

    Not scale-invariant: ``R(cW) = c² R(W)``; its value overflows to inf only if ``½Σw²`` itself does.
    """

    name = "l2"

    def _compute(self, xp, Ws, need_grad):
        M, inv, _ = _normalise(xp, Ws)
        value = 0.5 * M * (M * _sum(xp, [xp.sum((W * inv) ** 2) for W in Ws]))
        return value, ([xp.asarray(W, copy=True) for W in Ws] if need_grad else None)


class GroupLasso(Regularizer):
    """Group lasso over rows (output units): ``R(W) = Σ_i ||W_i,:||₂``.

    .. math::
        ∂R/∂W_i,: = W_i,: / ||W_i,:||₂ \\quad (0 \\text{ for a zero row, the subgradient choice})

    Not scale-invariant: ``R(cW) = |c| R(W)``. (Yuan & Lin 2006; structured sparsity, Wen et al. 2016.)
    """

    name = "group_lasso"

    def _compute(self, xp, Ws, need_grad):
        M, inv, _ = _normalise(xp, Ws)
        norms = [xp.linalg.vector_norm(W * inv, axis=1) for W in Ws]  # of W/M, in [0, sqrt(n)]
        value = M * _sum(xp, [xp.sum(nrm) for nrm in norms])
        if not need_grad:
            return value, None
        grads = []
        for W, nrm in zip(Ws, norms, strict=True):
            pos = nrm > 0
            grads.append(
                (W * inv) * xp.where(pos, 1.0 / _safe(xp, nrm, pos), xp.zeros_like(nrm))[:, None]
            )
        return value, grads


class _HoyerBase(Regularizer):
    """Shared sums of ``W/M``: ``L1 = Σ|w|/M`` and ``Q = Σ w²/M²`` over the pooled matrices."""

    scale_invariant = True

    def _sums(self, xp, Ws):
        M, inv, nonzero = _normalise(xp, Ws)
        L1 = _sum(xp, [xp.sum(xp.abs(W) * inv) for W in Ws])
        Q = _sum(xp, [xp.sum((W * inv) ** 2) for W in Ws])  # ≥ 1 unless all zero
        return M, inv, nonzero, L1, _safe(xp, Q, nonzero)


class Hoyer(_HoyerBase):
    """Hoyer's sparsity measure as a penalty: ``R(W) = Σ|w| / sqrt(Σ w²)`` (0 for W = 0).

    .. math::
        ∂R/∂w = sign(w)/||W||₂ − ||W||₁ w / ||W||₂³

    Scale-invariant; ``1 ≤ R ≤ sqrt(mn)`` for W ≠ 0. (Hoyer 2004; Yang, Wen & Li, DeepHoyer, ICLR 2020.)
    """

    name = "hoyer"

    def _compute(self, xp, Ws, need_grad):
        _M, inv, nonzero, L1, Q = self._sums(xp, Ws)
        L2 = xp.sqrt(Q)
        value = xp.where(nonzero, L1 / L2, xp.zeros_like(L1))
        if not need_grad:
            return value, None
        # chain rule through W/M: ∇R(W) = ∇R(W/M) / M
        a, b = inv / L2, inv * L1 / (L2 * Q)
        return value, [xp.sign(W) * a - (W * inv) * b for W in Ws]


class HoyerSquare(_HoyerBase):
    """Hoyer-Square (DeepHoyer): ``R(W) = (Σ|w|)² / Σ w²`` (0 for W = 0).

    .. math::
        ∂R/∂w = 2 ||W||₁ sign(w) / ||W||₂² − 2 ||W||₁² w / ||W||₂⁴

    Scale-invariant; ``1 ≤ R ≤ mn``; ``R = exp(H₂)`` with ``H₂`` the order-2 Rényi entropy of ``|w|/||W||₁``.
    (Yang, Wen & Li, "DeepHoyer", ICLR 2020, Sec. 3.)
    """

    name = "hoyer_square"

    def _compute(self, xp, Ws, need_grad):
        _M, inv, nonzero, L1, Q = self._sums(xp, Ws)
        value = xp.where(nonzero, L1 * L1 / Q, xp.zeros_like(L1))
        if not need_grad:
            return value, None
        a, b = 2.0 * inv * L1 / Q, 2.0 * inv * L1 * L1 / (Q * Q)
        return value, [xp.sign(W) * a - (W * inv) * b for W in Ws]


class GroupHoyerSquare(_HoyerBase):
    """Group Hoyer-Square for a fully connected layer (DeepHoyer): columns (inputs) and rows (units).

    .. math::
        R(W) = [(Σ_j ||W_:,j||)² + (Σ_i ||W_i,:||)²] / Σ w²

        ∂R/∂w_ij = [2C w_ij/||W_:,j|| + 2Ρ w_ij/||W_i,:||] / Σw² − 2(C² + Ρ²) w_ij / (Σw²)²

    with ``C = Σ_j ||W_:,j||``, ``Ρ = Σ_i ||W_i,:||``; a zero row or column gets the zero subgradient.
    Scale-invariant. (Yang, Wen & Li, "DeepHoyer", ICLR 2020, Sec. 3, Group-HS.)
    """

    name = "group_hoyer_square"

    def _compute(self, xp, Ws, need_grad):
        _M, inv, nonzero = _normalise(xp, Ws)
        row_norms = [xp.linalg.vector_norm(W * inv, axis=1) for W in Ws]
        col_norms = [xp.linalg.vector_norm(W * inv, axis=0) for W in Ws]
        C = _sum(xp, [xp.sum(c) for c in col_norms])
        P = _sum(xp, [xp.sum(r) for r in row_norms])
        Q = _safe(xp, _sum(xp, [xp.sum(r * r) for r in row_norms]), nonzero)
        value = xp.where(nonzero, (C * C + P * P) / Q, xp.zeros_like(C))
        if not need_grad:
            return value, None
        grads = []
        for W, rn, cn in zip(Ws, row_norms, col_norms, strict=True):
            inv_r = xp.where(rn > 0, 1.0 / _safe(xp, rn, rn > 0), xp.zeros_like(rn))
            inv_c = xp.where(cn > 0, 1.0 / _safe(xp, cn, cn > 0), xp.zeros_like(cn))
            coef = (2.0 * P / Q) * inv_r[:, None] + ((2.0 * C / Q) * inv_c)[None, :]
            coef = coef - 2.0 * (C * C + P * P) / (Q * Q)
            grads.append((W * inv) * (coef * inv))
        return value, grads


REGULARIZERS: dict[str, Regularizer] = {
    r.name: r
    for r in (
        SpatialEntropy(),
        ElementEntropy(),
        L1(),
        L2(),
        GroupLasso(),
        Hoyer(),
        HoyerSquare(),
        GroupHoyerSquare(),
    )
}
"""The regularizers by name; ``spatial_entropy`` is the default of :func:`penalty`."""


def get_regularizer(regularizer: str | Regularizer) -> Regularizer:
    """A :class:`Regularizer` from its name in :data:`REGULARIZERS` (or the object itself).

    Raises
    ------
    ValueError
        An unknown name; the message lists the valid ones.
    TypeError
        Neither a str nor a :class:`Regularizer`.
    """
    if isinstance(regularizer, Regularizer):
        return regularizer
    if not isinstance(regularizer, str):
        raise TypeError(
            f"regularizer must be a name in REGULARIZERS or a Regularizer, got {type(regularizer).__name__}"
        )
    check_choice("regularizer", regularizer, REGULARIZERS)
    return REGULARIZERS[regularizer]


def weight_names(params: Mapping[str, Any], names: Sequence[str] | None = None) -> list[str]:
    """The keys to regularize or prune: ``names``, or by default every 2-D array (the weights, not biases).

    Raises
    ------
    ValueError
        A name not in ``params``, or ``params`` without any 2-D array.
    """
    if names is None:
        chosen = [k for k, v in params.items() if is_array(v) and v.ndim == 2]
        if not chosen:
            raise ValueError(f"params holds no 2-D weight matrix; keys {list(params)}")
        return chosen
    if isinstance(names, str):
        raise TypeError(f"names must be a list of keys, got the str {names!r}")
    names = list(names)
    unknown = [k for k in names if k not in params]
    if unknown or not names:
        raise ValueError(
            f"names must be a non-empty list of keys of params {list(params)}, got {names}"
        )
    return names


def penalty(
    params: Mapping[str, Any],
    regularizer: str | Regularizer = "spatial_entropy",
    alpha: float = 1.0,
    names: Sequence[str] | None = None,
    scope: str = "layer",
) -> tuple[Any, dict[str, Any]]:
    """``α Σ_l R(W_l)`` over the weight matrices of a net, and its gradient, to add to the loss.

    .. math::
        \\text{layer: } P = α Σ_l R(W_l);\\qquad \\text{network: } P = α R(W_1 ⊕ … ⊕ W_L)

    With ``scope="network"`` every sum inside ``R`` runs over all selected matrices at once: one mass
    ``S = Σ_l Σ_ij |w^l_ij|``, one max-normalisation, and for the spatial entropy the concatenated marginals
    ``r = (r^1, …, r^L)`` (all rows of all layers, ``r^l_i = Σ_j |w^l_ij| / S``) and ``c = (c^1, …, c^L)`` (all
    columns), ``R = H(r) + H(c)`` with gradient ``−sign(w^l_ij)(log r^l_i + H(r) + log c^l_j + H(c)) / S``.
    Element entropy, Hoyer and (Group) Hoyer-Square likewise pool their sums; for L1, L2 and group lasso the
    two scopes coincide. A network-wide scale-invariant ``R`` is invariant to scaling *all* weights together.

    Parameters
    ----------
    params : dict of arrays
        E.g. ``MLP.init`` output; weights of shape (out, in).
    regularizer : str or Regularizer
        A name in :data:`REGULARIZERS` (default ``"spatial_entropy"``).
    alpha : float >= 0
        The regularization strength α.
    names : list of str, optional
        The keys to regularize; default every 2-D array (biases are not regularized).
    scope : {"layer", "network"}

    Returns
    -------
    value : 0-d array
        ``P`` in the params' dtype.
    grads : dict
        ``∂P/∂params[k]`` for the keys in ``names`` only (shapes and dtypes of the params).

    References
    ----------
    Bayandorian (2023), arXiv:2301.07285: loss ``L(θ) + α Σ_layers R(W_l)`` (the additive form in the abstract).
    """
    alpha = check_nonnegative("alpha", alpha)
    reg = get_regularizer(regularizer)
    check_choice("scope", scope, SCOPES)
    namespace_of_params(params)
    keys = weight_names(params, names)
    Ws = [params[k] for k in keys]
    xp = _check_matrices(Ws, [f"params[{k!r}]" for k in keys])
    if scope == "network":
        value, grads = reg._compute(xp, Ws, need_grad=True)
    else:
        values, grads = [], []
        for W in Ws:
            v, g = reg._compute(xp, [W], need_grad=True)
            values.append(v)
            grads.append(g[0])
        value = _sum(xp, values)
    return alpha * value, {k: alpha * g for k, g in zip(keys, grads, strict=True)}


# ---------------------------------------------------------------------------------------------- pruning
def magnitude_mask(
    params: Mapping[str, Any],
    threshold: float,
    relative: bool = False,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Keep-masks of magnitude pruning: ``keep = |w| ≥ t`` (absolute) or ``|w| ≥ t · max|W|`` (relative).

    Parameters
    ----------
    params : dict of arrays
    threshold : float >= 0
        ``t``; weights with ``|w| < t`` (or ``< t · max|W|`` per tensor) are pruned.
    relative : bool
        Threshold relative to each tensor's largest magnitude.
    names : list of str, optional
        Tensors to prune; default every 2-D array (biases are kept).

    Returns
    -------
    masks : dict of bool arrays
        One per pruned tensor, of its shape; True = kept.

    References
    ----------
    DeepHoyer (Yang et al. 2020) prunes ``|w| < 1e-3`` after training, then fine-tunes with the mask fixed.
    """
    threshold = check_nonnegative("threshold", threshold)
    if not isinstance(relative, bool):
        raise TypeError(f"relative must be a bool, got {relative!r}")
    xp = namespace_of_params(params)
    masks = {}
    for key in weight_names(params, names):
        W = params[key]
        t = threshold * _max_abs(xp, [W]) if relative else threshold
        masks[key] = xp.abs(W) >= t
    return masks


def _check_masks(masks: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    if not isinstance(masks, Mapping):
        raise TypeError(f"masks must be a dict of bool arrays, got {type(masks).__name__}")
    for key, mask in masks.items():
        if key not in params:
            raise ValueError(f"masks[{key!r}] has no parameter; params keys are {list(params)}")
        if not is_array(mask) or mask.dtype != get_namespace(mask).bool:
            raise TypeError(
                f"masks[{key!r}] must be a bool array, got {getattr(mask, 'dtype', mask)!r}"
            )
        if tuple(mask.shape) != tuple(params[key].shape):
            raise ValueError(
                f"masks[{key!r}] must have shape {tuple(params[key].shape)}, got {tuple(mask.shape)}"
            )


def apply_mask(params: Mapping[str, Any], masks: Mapping[str, Any]) -> dict[str, Any]:
    """``θ_k ⊙ mask_k`` for every key in ``masks`` (others unchanged); a new dict, inputs untouched."""
    _check_masks(masks, params)
    out = dict(params)
    for key, mask in masks.items():
        p = params[key]
        out[key] = get_namespace(p).where(mask, p, get_namespace(p).zeros_like(p))
    return out


def count_nonzero(params: Mapping[str, Any], names: Sequence[str] | None = None) -> int:
    """``Σ_k #{w ∈ θ_k : w ≠ 0}`` over ``names`` (default: every array in ``params``), a host int."""
    xp = namespace_of_params(params)
    keys = list(params) if names is None else weight_names(params, names)
    return sum(int(xp.sum(xp.astype(params[k] != 0, xp.int64))) for k in keys)


def _mask_state(state: Any, masks: Mapping[str, Any]) -> Any:
    """Zero the entries of pruned weights in every per-parameter buffer of an optimizer state (recursively)."""
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return state._replace(**{f: _mask_state(getattr(state, f), masks) for f in state._fields})
    if isinstance(state, dict):
        out = {}
        for key, value in state.items():
            mask = masks.get(key)
            if mask is not None and is_array(value) and tuple(value.shape) == tuple(mask.shape):
                xp = get_namespace(value)
                value = xp.where(mask, value, xp.zeros_like(value))
            else:
                value = _mask_state(value, masks)
            out[key] = value
        return out
    if isinstance(state, list):
        return [_mask_state(v, masks) for v in state]
    return state


@dataclass(frozen=True)
class Masked:
    """An optimizer whose pruned weights stay exactly zero (masked fine-tuning).

    .. math::
        g ← g ⊙ mask;\\quad (θ, s) ← \\text{optimizer}(g, s, θ);\\quad θ ← θ ⊙ mask;\\quad s ← s ⊙ mask

    Every per-parameter buffer of the inner state (momentum, Adam's moments) is masked too, so no stale
    momentum moves a pruned weight; the state is the inner optimizer's own state type (``refreg.io`` saves it).
    """

    optimizer: Any
    masks: Mapping[str, Any]

    def __post_init__(self):
        if not (hasattr(self.optimizer, "init") and hasattr(self.optimizer, "update")):
            raise TypeError(
                f"optimizer must have init and update, got {type(self.optimizer).__name__}"
            )
        if not isinstance(self.masks, Mapping):
            raise TypeError(f"masks must be a dict of bool arrays, got {type(self.masks).__name__}")

    def init(self, params: Mapping[str, Any]) -> Any:
        _check_masks(self.masks, params)
        return _mask_state(self.optimizer.init(params), self.masks)

    def update(
        self, grads: Mapping[str, Any], state: Any, params: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Any]:
        _check_masks(self.masks, params)
        masked_grads = apply_mask(grads, self.masks)
        new_params, new_state = self.optimizer.update(
            masked_grads, _mask_state(state, self.masks), params
        )
        return apply_mask(new_params, self.masks), _mask_state(new_state, self.masks)


def masked(optimizer: Any, masks: Mapping[str, Any]) -> Masked:
    """Wrap ``optimizer`` so that the weights where ``masks`` is False stay exactly 0; see :class:`Masked`.

    Parameters
    ----------
    optimizer : object with ``init(params)`` and ``update(grads, state, params)``
        E.g. ``refreg.optim.adam(1e-4)`` or ``sgd(0.01, momentum=0.9)``.
    masks : dict of bool arrays
        From :func:`magnitude_mask`; True = trainable, False = pruned.
    """
    return Masked(optimizer, masks)
