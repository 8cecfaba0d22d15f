"""PathProx proximal operators: group soft-thresholding, the sphere projection and the exact joint prox."""

from __future__ import annotations

from typing import Any

from refreg._backend import check_param_dtype, get_namespace
from refreg._pow2 import Pow2Scale
from refreg._validation import (
    check_finite_array,
    check_nonnegative,
)
from refreg.pathprox.groups import _in_norm

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
    if not -z.ndim <= axis < z.ndim:
        raise ValueError(
            f"axis must be in [{-z.ndim}, {z.ndim - 1}] for z of shape {tuple(z.shape)}"
        )
    # Σz² overflows beyond sqrt(float max) (float32 z = 2^70) and underflows for tiny z (float32 2^-80 gave
    # norm 0, so a τ below the true norm zeroed z): outside the safe range the norms come from z·2^-e
    m = _max_abs(xp, z)
    if _squares_unsafe(m, z.dtype == xp.float32):
        scale = Pow2Scale(m, z.dtype == xp.float32, "z")
        norm = scale.undo(xp.linalg.vector_norm(scale(z), axis=axis, keepdims=True))
    else:
        norm = xp.linalg.vector_norm(z, axis=axis, keepdims=True)
    return z * _shrink_factor(xp, norm, tau)


def _squares_unsafe(m: float, float32: bool) -> bool:
    """Whether sums of squares of entries up to ``m = max|x|`` could overflow or lose bits to underflow.

    Σx² is safe for ``0 < m`` within 2^±400 in float64 and 2^±50 in float32 (float32 squares overflow at 2^64
    and go subnormal below 2^-63); ``m = 0`` is safe (every norm is 0).
    """
    bound = 2.0**50 if float32 else 2.0**400
    return 0.0 < m < 1.0 / bound or m > bound


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
    inv = 1.0 / xp.clip(_in_norm(xp, W, b, include_bias), min=SPHERE_EPS)
    return W * inv[:, None], (None if b is None else b * inv)


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
    # the factors are scale-free (the prox is positively homogeneous), so compute the norms of 2^-e·(W, V)
    # when Σw² could overflow or underflow: bitwise the same factors, no inf/inf (W = 1e200 gave NaN)
    # (float32 W = 2^70 gave NaN with float64's bounds)
    m = max(_max_abs(xp, W), _max_abs(xp, V))
    if _squares_unsafe(m, W.dtype == xp.float32):
        scale = Pow2Scale(m, W.dtype == xp.float32, "W and V")
        alpha = xp.linalg.vector_norm(scale(W), axis=1)
        beta = xp.linalg.vector_norm(scale(V), axis=0)
    else:
        alpha, beta = xp.linalg.vector_norm(W, axis=1), xp.linalg.vector_norm(V, axis=0)
    fw, fv = _norm_product_factors(xp, alpha, beta, tau)
    return W * fw[:, None], V * fv[None, :]


def _max_abs(xp: Any, X: Any) -> float:
    return max(float(xp.max(X)), -float(xp.min(X)))


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
