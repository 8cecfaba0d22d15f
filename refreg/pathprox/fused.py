"""PathProx's speed layer: the checks, the gradient step's norms, the layer balance and the prox in fewer passes.

:func:`refreg.pathprox.reference.balance_then_prox` applies :func:`~refreg.pathprox.balance_layers` and then the
prox operators one after the other, each a pass over every array. Both only rescale rows of W, columns of V
and biases, so their product can be computed from the unit norms alone and applied once:
:func:`fused_balance_then_prox` does that. It equals the composition up to rounding (``tests/test_pathprox_layers.py``
checks 1e-13 relative, every prox, bias option and momentum) and is what :meth:`PathProx.update` runs.

:func:`checked_square_norms` lets :meth:`PathProx.update` skip the separate finiteness reads of the parameters
and gradients: the unit norms of the gradient step's results are sums of squares over every element, and a
NaN or inf in θ or ∇L reaches that result (see its docstring), so finite sums prove finite inputs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refreg._backend import host_namespace
from refreg.pathprox import _accel
from refreg.pathprox.balance import _layer_scales
from refreg.pathprox.groups import Groups, Params, _unit_norms
from refreg.pathprox.prox import SPHERE_EPS, _norm_product_factors, _shrink_factor

__all__ = ["checked_square_norms", "fused_balance_then_prox"]


def fused_balance_then_prox(
    xp: Any,
    params: Params,
    groups: Groups,
    tau: float,
    *,
    prox: str,
    balance: bool,
    regularize_bias: bool,
    norms: list | None = None,
) -> Params:
    """Layer balance then the prox, as one rescaling per array (rows of W, columns of V, biases).

    Balance multiplies V_g's columns by ``s_g/s_{g-1}`` and W_g's bias by ``s_{g-1}``; the prox then multiplies
    row k of W_g by ``fw_k`` and column k of V_g by ``fv_k``, both computed from the balanced norms (W's norms
    are not changed by the balance). ``params`` must be the caller's own fresh arrays: they are rescaled in
    place. ``norms``: the unit norms of ``params`` if the caller has them (:func:`checked_square_norms`).
    """
    n_pairs = len(groups.pairs)
    xp = host_namespace(xp)
    if norms is None:
        norms = _fast_unit_norms(xp, params, groups, regularize_bias)
    balanced = balance and n_pairs > 1
    if balanced:
        scales = _layer_scales(xp, [xp.sum(nw * nv) for nw, nv in norms])
    out = dict(params)
    for g, (pair, (nw, nv)) in enumerate(zip(groups.pairs, norms, strict=True)):
        column: Any = 1.0
        bias_factor: Any = 1.0
        if balanced:
            prev = scales[g - 1] if g else 1.0
            column, bias_factor = scales[g] / prev, prev
            nv = nv * column
            if pair.v_bias is not None and g + 1 < n_pairs:
                out[pair.v_bias] = params[pair.v_bias] * scales[g]
        if prox == "sphere":
            # max(n, ε) is clip(n, min=ε) for the finite norms here, with fewer checks
            fw = 1.0 / (np.maximum(nw, SPHERE_EPS) if xp is np else xp.clip(nw, min=SPHERE_EPS))
            fv = _shrink_factor(xp, nv, tau)
        elif xp is np and tau < 1.0:
            fw, fv = _host_norm_product_factors(nw, nv, tau)
        else:
            fw, fv = _norm_product_factors(xp, nw, nv, tau)
        if prox == "sphere" or regularize_bias:
            # the bias follows its row; the joint prox leaves an unregularized bias alone
            bias_factor = bias_factor * fw
        # in place: these arrays are the fresh results of this update's gradient step, owned here
        if balanced:
            fv = fv * column
        W, V = out[pair.w], out[pair.v]
        kernels = W.size + V.size >= _accel.MIN_SIZE and _accel.kernels(W, V, fw, fv)
        if kernels:  # numba: the same products without a ufunc call per row
            _accel.scale_rows(W, fw)
            _accel.scale_cols(V, fv)
        else:
            W *= fw[:, None]
            V *= fv[None, :]
        if pair.w_bias is not None and (balanced or not isinstance(bias_factor, float)):
            out[pair.w_bias] *= bias_factor
    return out


def _host_norm_product_factors(alpha: Any, beta: Any, tau: float) -> tuple[Any, Any]:
    """:func:`~refreg.pathprox.prox._norm_product_factors` for ``tau < 1`` on NumPy, bit for bit, in fewer
    calls (``tests/test_pathprox_layers.py`` compares them).

    Each unit takes the reference's value (a = ||w||, b = ||v||): ``fw = ((a − τb)/d)/a`` and
    ``fv = ((b − τa)/d)/b`` inside the cone; ``fw = 0`` where w is zeroed (``a ≤ τb``, every ``a = 0``
    included); ``fv = 0`` where v is zeroed or ``b = 0``; and where the other vector is zeroed the factor is
    ``a/a`` resp. ``b/b``, which is exactly 1 (a, b > 0 there).
    """
    d = 1.0 - tau * tau
    tb, ta = tau * beta, tau * alpha
    zero_w = alpha <= tb
    zero_v = beta <= ta
    zero_v &= ~zero_w
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # the entries set below
        fw = alpha - tb
        fw /= d
        fw /= alpha
        fv = beta - ta
        fv /= d
        fv /= beta
    fw[zero_v] = 1.0
    fw[zero_w] = 0.0
    fv[zero_w] = 1.0
    fv[zero_v | (beta == 0)] = 0.0
    return fw, fv


def _fast_unit_norms(xp: Any, params: Params, groups: Groups, with_bias: bool) -> list:
    """:func:`~refreg.pathprox.groups.unit_norms` on the host with one ``einsum`` per array (a speed path).

    ``sqrt(Σ_j W_kj²)`` by ``einsum("ij,ij->i")`` reads W once without the temporary ``W·W`` that
    ``vector_norm`` forms; the sum is in another order, so the norms differ from the plain ones by rounding
    only (the fused update is tested against :meth:`PathProx.reference_update` at 1e-13 relative in float64).
    The plain norms avoid overflow and underflow of the squares; the sums of squares are therefore used only
    when they are finite and each is 0 for an all-zero unit or at least ``sqrt(tiny)``, where squares that
    underflowed are below the rounding. Otherwise, on other backends, and for the norm of ``[w_k, b_k]``, the
    plain norms are used.
    """
    if xp is not np or with_bias:
        return _unit_norms(xp, params, groups, with_bias)
    norms = _square_sum_norms(params, groups)
    return _unit_norms(xp, params, groups, with_bias) if norms is None else norms


def _square_sum_norms(params: Params, groups: Groups) -> list | None:
    """Per pair ``(sqrt(einsum W·W by rows), sqrt(einsum V·V by columns))`` on NumPy arrays, or None where a
    sum of squares is not finite or underflowed (:func:`_squares_ok`)."""
    out = []
    for pair in groups.pairs:
        W, V = params[pair.w], params[pair.v]
        sw, sv = np.einsum("ij,ij->i", W, W), np.einsum("ij,ij->j", V, V)
        if not (_squares_ok(sw, W) and _squares_ok(sv, V.T)):
            return None
        out.append((np.sqrt(sw), np.sqrt(sv)))
    return out


def checked_square_norms(new_params: Params, groups: Groups) -> list | None:
    """The unit norms of the gradient step's results if every element of ``new_params`` is finite, else None.

    Each result is ``θ − η·(∇L + λθ)`` (``λ`` 0 or not, ``η`` finite) in IEEE arithmetic: a NaN or ±inf in
    θ or ∇L makes it NaN or ±inf (``0·inf`` is NaN, ``inf − inf`` is NaN). The square of such an element is
    NaN or +inf, and so is every sum that contains it (squares are ≥ 0, so no ``inf − inf``). The unit norms
    sum the squares of every element of each W (by rows) and V (by columns); every other array gets one dot
    product. Finite sums therefore prove that θ and ∇L were finite, which spares the two finiteness reads per
    array of the checked path. None (the caller then runs the checked path, whose checks raise) where an
    input was not finite, or where finite values overflowed or underflowed in the squares. NumPy arrays of
    float32/float64 only; the norms are those of :func:`fused_balance_then_prox`'s own path, bit for bit.
    """
    norms = _square_sum_norms(new_params, groups)
    if norms is None:
        return None
    paired = {key for pair in groups.pairs for key in (pair.w, pair.v)}
    for key, p in new_params.items():
        if key not in paired:
            flat = p.reshape(-1)
            if not math.isfinite(np.dot(flat, flat)):
                return None
    return norms


def _squares_ok(s: Any, rows: Any) -> bool:
    """The sums of squares ``s`` of ``rows`` carry no overflow and no underflow beyond rounding."""
    if not math.isfinite(s.max()):  # a finite total means every partial sum was finite
        return False
    small = s < _SQRT_TINY[s.dtype]
    return not small.any() or not np.any(rows[small])  # small sums only for all-zero units


_SQRT_TINY = {np.dtype(t): math.sqrt(np.finfo(t).tiny) for t in (np.float32, np.float64)}
