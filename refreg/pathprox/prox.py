"""PathProx proximal operators: group soft-thresholding, the sphere projection and the exact joint prox."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refreg._backend import check_param_dtype, get_namespace
from refreg._pow2 import GroupPow2, unsafe_norms
from refreg._validation import (
    check_finite_array,
    check_nonnegative,
)
from refreg.pathprox.groups import _in_norm, _safe_norms

SPHERE_EPS = 1e-6
"""The authors' clip (``regularize_func.py``): ``||w||`` is floored at 1e-6 before dividing, and each ``P_g`` is
floored at 1e-6 in the layer balance."""


def _check_tau(tau: Any) -> float:
    return check_nonnegative("tau", tau)


def _check_float_array(name: str, x: Any, ndim: int | None = None) -> Any:
    xp = get_namespace(x)
    check_param_dtype(name, x, xp)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d, got shape {tuple(x.shape)}")
    check_finite_array(name, x)
    return xp


def group_soft_threshold(z: Any, tau: float, axis: int = 0) -> Any:
    """Group soft-thresholding, the prox of ``tau·||·||₂`` applied to every slice along ``axis``.

    .. math::
        prox(z) = argmin_x ½||x − z||² + τ||x|| = max(0, 1 − τ/||z||)·z

    zero iff ``||z|| ≤ τ`` (inclusive, as ``regularize_func.py``); otherwise ``||out|| = ||z|| − τ`` in the
    direction of z. ``axis`` is the axis the norm runs over: ``axis=0`` thresholds the columns ``v_k = V[:, k]``.

    Parameters
    ----------
    z : array of any shape, float
    tau : float >= 0
    axis : int

    Returns
    -------
    array of z's shape, namespace and dtype
    """
    tau = _check_tau(tau)
    xp = _check_float_array("z", z)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {type(axis).__name__}: {axis!r}")
    axis = int(axis)
    if not -z.ndim <= axis < z.ndim:
        raise ValueError(
            f"axis must be in [{-z.ndim}, {z.ndim - 1}] for z of shape {tuple(z.shape)}"
        )
    # Σz² overflows beyond sqrt(float max) (float32 z = 2^70) and underflows for tiny z (float32 2^-80 gave
    # norm 0, so a τ below the true norm zeroed z): such slices get their norms from z·2^-e with e their own
    # exponent (a slice of 1e200 once zeroed the column [3, 4] next to it). A norm beyond the float max is inf
    # and its factor 1 − τ/inf = 1, the exact one rounded unless τ > 2^-53·(float max).
    norm = _safe_norms(
        xp, lambda z: xp.linalg.vector_norm(z, axis=axis, keepdims=True), (z, axis), keepdims=True
    )
    return z * _shrink_factor(xp, norm, tau)


def _shrink_factor(xp: Any, norm: Any, tau: float) -> Any:
    # τ = 0 is the identity, also for a norm that underflowed to 0 (fused.py's sums of squares)
    if tau == 0.0:
        return xp.ones_like(norm)
    keep = norm > tau
    return xp.where(keep, 1.0 - tau / xp.where(keep, norm, 1.0), 0.0)


def project_unit_sphere(
    W: Any, b: Any | None = None, *, include_bias: bool = False
) -> tuple[Any, Any]:
    """The authors' projection of every unit's incoming weights onto the unit sphere.

    .. math::
        n_k = max(||w_k||, 10^{-6}),\\qquad w_k ← w_k·(1/n_k),\\quad b_k ← b_k·(1/n_k)

    As computed: the reciprocal ``1/n_k`` is formed once per row and multiplies the row (and bias); this is
    ``w_k / n_k`` up to one rounding, and differs from a division in the last bit for about a quarter of the
    entries, which matters for a bitwise port (PORTING.md).

    (``regularize_func.py``; the bias follows its row so that ``w·x + b`` keeps its sign pattern;
    ``include_bias=True`` uses ``n_k = max(||[w_k, b_k]||, 1e-6)``, the ``regularize_bias`` variant). It is
    the Euclidean projection onto ``{||w_k|| = 1}`` for ``||w_k|| > 0``. A row with ``||w_k|| < 1e-6``
    becomes ``w_k·10^6``, which is *not* on the sphere (an all-zero row stays zero): the authors' clip, kept
    so that updates match theirs.

    Parameters
    ----------
    W : array of shape (N, n_in)
    b : array of shape (N,) or None

    Returns
    -------
    (W, b) : the projected arrays (b is None if it was None)
    """
    xp = _check_float_array("W", W, ndim=2)
    if b is not None:
        _check_float_array("b", b, ndim=1)
        get_namespace(W, b)
        if b.shape[0] != W.shape[0] or b.dtype != W.dtype:
            raise ValueError(
                f"b must have shape ({W.shape[0]},) and dtype {W.dtype}, got {tuple(b.shape)} {b.dtype}"
            )
    norm = _in_norm(xp, W, b, include_bias)
    inv = 1.0 / xp.clip(norm, min=SPHERE_EPS)
    if bool(xp.any(norm == math.inf)):  # ||w_k|| beyond the float max
        return _project_huge_rows(xp, W, b, include_bias, norm == math.inf, inv)
    return W * inv[:, None], (None if b is None else b * inv)


def _project_huge_rows(
    xp: Any, W: Any, b: Any, include_bias: bool, over: Any, inv: Any
) -> tuple[Any, Any]:
    """:func:`project_unit_sphere` where some row norms overflowed (``over``): those rows ``w_k·2^-e_k`` (and
    ``b_k·2^-e_k``) times ``1/||w_k·2^-e_k||``, with ``e_k`` their own exponent (the scaled norm is at least
    1/2, so the 1e-6 floor is moot); the other rows as before."""
    with_bias = include_bias and b is not None
    scale = GroupPow2(xp, [(W, 1, False)] + ([(b, None, False)] if with_bias else []), "W")
    with np.errstate(over="ignore", under="ignore"):  # rows not taken from here; negligible entries
        Ws = scale(W, 1, False)
        bs = None if b is None else scale(b, None, False)
    inv_s = 1.0 / _in_norm(xp, Ws, bs, include_bias)
    W_out = xp.where(over[:, None], Ws * inv_s[:, None], W * inv[:, None])
    return W_out, (None if b is None else xp.where(over, bs * inv_s, b * inv))


def prox_norm_product(W: Any, V: Any, tau: float) -> tuple[Any, Any]:
    """The exact joint prox of ``τ·||w||·||v||`` for every unit ``(w_k, v_k) = (W[k, :], V[:, k])``.

    .. math::
        (x, y) = argmin ½||x − w||² + ½||y − v||² + τ||x||·||y||,\\qquad x = ||x||·w/||w||,\\
        y = ||y||·v/||v||

    (derived in docs/derivations.md, "The joint prox of τ‖w‖·‖v‖, all cases"; not in the authors' code):

    - ``τ < 1``, ``||w|| > τ||v||``, ``||v|| > τ||w||``: ``||x|| = (||w|| − τ||v||)/(1 − τ²)``,
      ``||y|| = (||v|| − τ||w||)/(1 − τ²)``;
    - ``τ < 1``, ``||w|| ≤ τ||v||``: ``(0, v)``; ``||v|| ≤ τ||w||``: ``(w, 0)``;
    - ``τ ≥ 1``: keep the longer vector and zero the other (value ``½min(||w||, ||v||)²``).

    Convexity: ``½||x||² + ½||y||² + τ||x||·||y|| = ½(||x|| + τ||y||)² + ½(1 − τ²)||y||²``, so the problem (and
    its radial form in the two norms) is convex for ``τ ≤ 1`` and strictly convex for ``τ < 1`` (a unique
    prox); ``τ = 1`` is convex but not strictly: on a tie ``||w|| = ||v||`` every split
    ``||x|| + ||y|| = ||w||`` is a minimizer. For ``τ > 1`` it is nonconvex, and on a tie both ``(w, 0)`` and
    ``(0, v)`` are minimizers.

    Ties, as computed: the norms are the computed ones (square root of the sum of squares), and the branches
    compare them in floating point: for ``τ ≥ 1`` a unit keeps w (returns ``(w, 0)``) iff ``||w|| >= ||v||``;
    for ``τ < 1`` w is zeroed iff ``||w|| <= τ·||v||`` and otherwise v iff ``||v|| <= τ·||w||`` (products
    rounded). Vectors of equal exact norm can have different computed norms, so the rule is the computed one.

    It never zeroes both (unless both are zero): the penalty vanishes once one factor is 0.

    Parameters
    ----------
    W : array of shape (N, n_in)
    V : array of shape (n_out, N)
    tau : float >= 0

    Returns
    -------
    (W, V) : arrays of the input shapes, namespace and dtype
    """
    tau = _check_tau(tau)
    xp = _check_float_array("W", W, ndim=2)
    _check_float_array("V", V, ndim=2)
    get_namespace(W, V)
    if V.shape[1] != W.shape[0] or V.dtype != W.dtype:
        raise ValueError(
            f"V must have shape (n_out, {W.shape[0]}) and dtype {W.dtype} to match W, "
            f"got {tuple(V.shape)} {V.dtype}"
        )
    if tau == 0.0:  # the identity (the factors below are exactly 1, or 0 on a zero vector)
        return W * 1.0, V * 1.0
    # Σw² overflows beyond sqrt(float max) and underflows for tiny w (W = 1e200 gave NaN; float32 W = 2^70
    # too): a unit with such a norm gets both norms at its own scale instead (_unit_scaled_norms). The factors
    # are scale-free (the prox is positively homogeneous), so they are the same, bit for bit where the plain
    # squares were exact.
    with np.errstate(over="ignore", under="ignore"):  # handled below, not errors
        alpha, beta = xp.linalg.vector_norm(W, axis=1), xp.linalg.vector_norm(V, axis=0)
    bad_w = unsafe_norms(xp, alpha, [(W, 1, False)])
    bad_v = unsafe_norms(xp, beta, [(V, 0, False)])
    if bad_w is not None or bad_v is not None:
        bad = bad_v if bad_w is None else (bad_w if bad_v is None else bad_w | bad_v)
        a, b = _unit_scaled_norms(xp, W, V)
        alpha, beta = xp.where(bad, a, alpha), xp.where(bad, b, beta)
    fw, fv = _norm_product_factors(xp, alpha, beta, tau)
    return W * fw[:, None], V * fv[None, :]


def _unit_scaled_norms(xp: Any, W: Any, V: Any) -> tuple[Any, Any]:
    """``(||w_k||, ||v_k||)·2^-e_k`` with ``e_k`` the exponent of the larger of the two, per unit.

    Each norm is computed on its vector scaled by its own power of two (:class:`~refreg._pow2.GroupPow2`), so
    it is right whatever the other units hold, and the pair is then brought to the common scale ``2^-e_k``:
    the larger norm lies in [1/2, sqrt(n)], and the smaller one is rounded to a subnormal or 0 only when the
    ratio of the two is below 2^-1022 (float32 2^-126). The prox then zeroes the smaller vector anyway for
    every ``τ >= 2^-1000`` (float32 2^-100) (and ``τ = 0`` is the identity), so the result is unaffected.
    """
    sw = GroupPow2(xp, [(W, 1, False)], "W")
    sv = GroupPow2(xp, [(V, 0, False)], "V")
    with np.errstate(under="ignore"):  # entries negligible next to their vector's largest
        a = xp.linalg.vector_norm(sw(W, 1, False), axis=1)
        b = xp.linalg.vector_norm(sv(V, 0, False), axis=0)
    # an all-zero vector (norm 0 at any scale) must not set the unit's scale
    ea = np.where(sw.nonzero, sw.exponent, -(2**20))
    eb = np.where(sv.nonzero, sv.exponent, -(2**20))
    e = np.maximum(ea, eb)
    with np.errstate(under="ignore"):
        return a * sw.factor(ea - e), b * sv.factor(eb - e)


def _norm_product_factors(xp: Any, alpha: Any, beta: Any, tau: float) -> tuple[Any, Any]:
    """Factors ``||x||/||w||`` and ``||y||/||v||`` (0 where the norm is 0) of :func:`prox_norm_product`, per unit."""
    if tau < 1.0:
        zero_w = alpha <= tau * beta
        zero_v = (beta <= tau * alpha) & ~zero_w
        d = 1.0 - tau * tau
        r = xp.where(zero_w, 0.0, xp.where(zero_v, alpha, (alpha - tau * beta) / d))
        s = xp.where(zero_v, 0.0, xp.where(zero_w, beta, (beta - tau * alpha) / d))
    else:
        keep_w = alpha >= beta  # ties keep w (documented convention)
        r = xp.where(keep_w, alpha, 0.0)
        s = xp.where(keep_w, 0.0, beta)
    fw = xp.where(alpha > 0, r / xp.where(alpha > 0, alpha, 1.0), 0.0)
    fv = xp.where(beta > 0, s / xp.where(beta > 0, beta, 1.0), 0.0)
    return fw, fv
