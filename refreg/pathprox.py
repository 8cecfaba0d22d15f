"""PathProx: proximal training of the norm-product (ℓ₂ path norm) objective, and its equivalence to weight decay.

Yang, Gunasekar, Zhou, Tang, Wang, Srebro, Ghahramani, "PathProx: A Proximal Gradient Algorithm for Weight
Decay Regularized Deep Neural Networks" (arXiv 2210.03069; v1 "A Better Way to Decay", NeurIPS'22 OPT
workshop), and the authors' code ``github.com/Leiay/PathProx`` (``regularize.py``, ``regularize_func.py``).

Notation (PyTorch layout; a *group* is a disjoint pair of consecutive layers ``(W, V)``):

=============  ==================  ==============================================================
symbol         shape               meaning
=============  ==================  ==============================================================
W              (N, n_in)           the group's first layer; row ``w_k = W[k, :]`` = unit k's input
b              (N,)                W's bias; ``b_k`` is rescaled with ``w_k``
V              (n_out, N)          the group's second layer; column ``v_k = V[:, k]`` = unit k's output
P_g            scalar              group g's path norm ``Σ_k ||w_k||·||v_k||``
PN             scalar              the ℓ₂ path norm ``Σ_g P_g``
WD             scalar              the weight-decay penalty ``½ Σ_g (||W_g||² + ||V_g||²)``
lam            scalar              λ, the regularization strength
tau            scalar              τ, the prox threshold; ``tau = lam · lr`` inside :func:`pathprox`
=============  ==================  ==============================================================

For ReLU units ``f(a w, a b, v / a) = f(w, b, v)`` (a > 0), and ``½(||w||² + ||v||²) ≥ ||w||·||v||`` with
equality iff ``||w|| = ||v||`` (AM-GM), so ``min_θ L + λ·WD = min_θ L + λ·PN`` and the two share their
minimizing functions (spec section 3). PathProx takes a gradient step on L, rescales the groups so that every
``P_g`` equals their geometric mean (function unchanged), and applies the prox of the non-smooth part of the
equivalent problem ``min L + λ Σ ||v_k|| s.t. ||w_k|| = 1``: project ``w_k`` onto the unit sphere and
group-soft-threshold ``v_k`` by ``τ = λ·lr``, which sets whole units to exactly zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from refreg._backend import get_namespace, namespace_of_params
from refreg._validation import (
    check_choice,
    check_finite_array,
    check_grads,
    check_in_range,
    check_lr,
    check_nonnegative,
)
from refreg.nn.mlp import MLP
from refreg.optim.optimizers import check_state_matches
from refreg.optim.schedules import Schedule, current_lr

__all__ = [
    "SPHERE_EPS",
    "Group",
    "Groups",
    "PathProx",
    "PathProxState",
    "active_units",
    "balance_layers",
    "balance_units",
    "check_groups",
    "group_soft_threshold",
    "pair_groups",
    "path_norm",
    "pathprox",
    "project_unit_sphere",
    "prox_norm_product",
    "sgd_weight_decay",
    "unit_norms",
    "weight_decay_objective",
    "weight_decay_penalty",
]

SPHERE_EPS = 1e-6
"""The authors' clip (``regularize_func.py``): ``||w||`` is floored at 1e-6 before dividing, and each ``P_g`` is
floored at 1e-6 in the layer balance."""

Params = dict[str, Any]


# --------------------------------------------------------------------------------------------------- groups
class Group(NamedTuple):
    """One pair of consecutive layers ``(W, V)``: the parameter keys of W, V and their biases (or None)."""

    w: str
    v: str
    w_bias: str | None = None
    v_bias: str | None = None


class Groups(NamedTuple):
    """The regularized pairs and the "other" layers, which get plain weight decay ``λ/2·||W||²``.

    ``pairs`` must be consecutive layers of the network in order (V_g feeds W_{g+1}) for
    :func:`balance_layers`; ``other`` holds weight keys, ``other_biases`` their bias keys (decayed only with
    ``regularize_bias=True``).
    """

    pairs: tuple[Group, ...]
    other: tuple[str, ...] = ()
    other_biases: tuple[str, ...] = ()


def pair_groups(net: MLP) -> Groups:
    """The authors' grouping of an MLP: disjoint consecutive pairs ``(layer 0, layer 1), (layer 2, layer 3), ...``.

    A unit of a pair is a hidden unit at the W layer's output: incoming ``W[k, :]`` (with ``b[k]``), outgoing
    ``V[:, k]``. With an odd number of layers the last layer is "other" (plain weight decay), as the VGG
    classifier in the authors' code (spec 1c).

    Parameters
    ----------
    net : MLP
        At least 2 layers; activation "relu" or "identity" (positively homogeneous, so rescaling a unit
        leaves the function unchanged).

    Returns
    -------
    Groups

    Examples
    --------
    >>> pair_groups(MLP([4, 8, 8, 3])).pairs[0]
    Group(w='layers.0.weight', v='layers.1.weight', w_bias='layers.0.bias', v_bias='layers.1.bias')
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a refreg.nn.MLP, got {type(net).__name__}")
    if net.activation not in ("relu", "identity"):
        raise ValueError(
            f"net.activation must be positively homogeneous ('relu' or 'identity') for the rescalings "
            f"of PathProx to keep the function, got {net.activation!r}"
        )
    if net.n_layers < 2:
        raise ValueError(f"net must have at least 2 layers to form a pair, got {net.n_layers}")

    def bias(i: int) -> str | None:
        return net.bias_name(i) if net.bias else None

    pairs = tuple(
        Group(net.weight_name(i), net.weight_name(i + 1), bias(i), bias(i + 1))
        for i in range(0, net.n_layers - 1, 2)
    )
    if net.n_layers % 2:
        last = net.n_layers - 1
        return Groups(pairs, (net.weight_name(last),), (net.bias_name(last),) if net.bias else ())
    return Groups(pairs)


def check_groups(params: Mapping[str, Any], groups: Groups) -> Any:
    """Check that ``groups`` matches ``params`` (keys, 2-d shapes, unit counts, disjointness); returns ``xp``.

    Raises
    ------
    TypeError
        ``groups`` is not a :class:`Groups`, or ``params`` is not a dict of float arrays of one dtype.
    ValueError
        A key is missing, used twice, or a shape does not match its pair (``W`` (N, n_in), ``b`` (N,),
        ``V`` (n_out, N), V's bias (n_out,)).
    """
    xp = namespace_of_params(params)
    if not isinstance(groups, Groups):
        raise TypeError(f"groups must be a refreg.pathprox.Groups, got {type(groups).__name__}")
    dtypes = {str(p.dtype) for p in params.values()}
    if len(dtypes) != 1:
        raise TypeError(f"params must share one float dtype, got {sorted(dtypes)}")
    seen: set[str] = set()

    def use(key: Any, what: str) -> Any:
        if not isinstance(key, str) or key not in params:
            raise ValueError(f"groups names {what}={key!r}, which is not a key of params")
        if key in seen:
            raise ValueError(
                f"groups uses params[{key!r}] twice; pairs and other layers must be disjoint"
            )
        seen.add(key)
        return params[key]

    for g, pair in enumerate(groups.pairs):
        if not isinstance(pair, Group):
            raise TypeError(f"groups.pairs[{g}] must be a Group, got {type(pair).__name__}")
        W, V = use(pair.w, f"pairs[{g}].w"), use(pair.v, f"pairs[{g}].v")
        if W.ndim != 2 or V.ndim != 2 or V.shape[1] != W.shape[0]:
            raise ValueError(
                f"groups.pairs[{g}]: W={pair.w!r} must have shape (N, n_in) and V={pair.v!r} shape "
                f"(n_out, N) with the same N, got {tuple(W.shape)} and {tuple(V.shape)}"
            )
        for key, n, what in (
            (pair.w_bias, W.shape[0], "w_bias"),
            (pair.v_bias, V.shape[0], "v_bias"),
        ):
            if key is not None and tuple(use(key, f"pairs[{g}].{what}").shape) != (n,):
                raise ValueError(
                    f"groups.pairs[{g}].{what}={key!r} must have shape ({n},), got "
                    f"{tuple(params[key].shape)}"
                )
    for i, key in enumerate(groups.other):
        use(key, f"other[{i}]")
    for i, key in enumerate(groups.other_biases):
        use(key, f"other_biases[{i}]")
    return xp


def _check_lam(lam: Any) -> float:
    return check_nonnegative("lam", lam)


def _check_finite_params(params: Mapping[str, Any]) -> None:
    """``FloatingPointError`` naming the first parameter that holds NaN or inf.

    Fast path: a NaN or inf makes its array's sum non-finite, so one sum per array and one host sync decide;
    only then is each array checked element-wise to name it (a finite array whose sum overflows passes).
    """
    xp = get_namespace(*params.values())
    sums = xp.stack([xp.sum(p) for p in params.values()])
    if bool(xp.all(xp.isfinite(sums))):
        return
    for key, p in params.items():
        check_finite_array(f"params[{key!r}]", p)


def _in_norm(xp: Any, W: Any, b: Any, with_bias: bool) -> Any:
    """``||w_k||`` per row, or ``||[w_k, b_k]||`` with the bias (shape (N,))."""
    if with_bias and b is not None:
        return xp.sqrt(xp.sum(W * W, axis=1) + b * b)
    return xp.linalg.vector_norm(W, axis=1)


def unit_norms(
    params: Mapping[str, Any], groups: Groups, *, regularize_bias: bool = False
) -> list[tuple[Any, Any]]:
    """Per pair, ``(||w_k||, ||v_k||)`` for every unit k: two arrays of shape (N,).

    ``||w_k||`` includes ``b_k`` when ``regularize_bias`` (the vector ``[w_k, b_k]``).
    """
    xp = check_groups(params, groups)
    return _unit_norms(xp, params, groups, regularize_bias)


def _unit_norms(xp: Any, params: Mapping[str, Any], groups: Groups, with_bias: bool) -> list:
    out = []
    for pair in groups.pairs:
        b = params[pair.w_bias] if pair.w_bias is not None else None
        out.append(
            (
                _in_norm(xp, params[pair.w], b, with_bias),
                xp.linalg.vector_norm(params[pair.v], axis=0),
            )
        )
    return out


# ------------------------------------------------------------------------------------------------ penalties
def weight_decay_penalty(
    params: Mapping[str, Any], groups: Groups, *, regularize_bias: bool = False
) -> tuple[Any, Params]:
    """The weight-decay penalty of the grouped layers and its gradient.

    .. math::
        WD(θ) = ½ Σ_g (||W_g||_F² + ||V_g||_F²),\\qquad ∂WD/∂W_g = W_g,\\ ∂WD/∂V_g = V_g

    With ``regularize_bias`` the W biases enter as ``½ Σ_k b_k²`` (the unit vector ``[w_k, b_k]``). Other
    layers and V biases are not part of it (spec 1c).

    Parameters
    ----------
    params : dict of arrays
    groups : Groups

    Returns
    -------
    value : 0-d array (params' namespace and dtype)
    grads : dict with every key of params (zero for keys outside the penalty)
    """
    xp = check_groups(params, groups)
    grads = {k: xp.zeros_like(p) for k, p in params.items()}
    value = xp.zeros((), dtype=next(iter(params.values())).dtype)
    keys = [k for pair in groups.pairs for k in (pair.w, pair.v)]
    if regularize_bias:
        keys += [pair.w_bias for pair in groups.pairs if pair.w_bias is not None]
    for key in keys:
        p = params[key]
        value = value + 0.5 * xp.sum(p * p)
        grads[key] = xp.asarray(p, copy=True)  # never hand out the caller's array as a gradient
    return value, grads


def path_norm(
    params: Mapping[str, Any], groups: Groups, *, regularize_bias: bool = False
) -> tuple[Any, Params]:
    """The ℓ₂ path norm (norm-product penalty) and a (sub)gradient.

    .. math::
        PN(θ) = Σ_g Σ_k ||w_gk||·||v_gk||,\\qquad ∂PN/∂w_k = ||v_k||·w_k/||w_k||,\\
        ∂PN/∂v_k = ||w_k||·v_k/||v_k||

    At ``w_k = 0`` (or ``v_k = 0``) the subgradient with zero in that block is returned. ``w_k`` includes
    ``b_k`` when ``regularize_bias``.

    Returns
    -------
    value : 0-d array
    grads : dict with every key of params (zero outside the grouped weights)
    """
    xp = check_groups(params, groups)
    grads = {k: xp.zeros_like(p) for k, p in params.items()}
    value = xp.zeros((), dtype=next(iter(params.values())).dtype)
    for pair, (nw, nv) in zip(
        groups.pairs, _unit_norms(xp, params, groups, regularize_bias), strict=True
    ):
        value = value + xp.sum(nw * nv)
        # ||v_k|| / ||w_k|| scales row k of W (0 where w_k = 0, the minimum-norm subgradient)
        row = xp.where(nw > 0, nv / xp.where(nw > 0, nw, 1.0), 0.0)
        col = xp.where(nv > 0, nw / xp.where(nv > 0, nv, 1.0), 0.0)
        grads[pair.w] = params[pair.w] * row[:, None]
        grads[pair.v] = params[pair.v] * col[None, :]
        if regularize_bias and pair.w_bias is not None:
            grads[pair.w_bias] = params[pair.w_bias] * row
    return value, grads


def weight_decay_objective(
    loss: Any,
    params: Mapping[str, Any],
    groups: Groups,
    lam: float,
    *,
    regularize_bias: bool = False,
) -> Any:
    """The weight-decay objective of the balanced net: ``loss + λ·PN(θ) + λ/2·Σ_other ||W||²``.

    This is ``min over per-unit rescalings of loss + λ/2·||θ||²`` (spec 4, "wd objective"), so PathProx and
    SGD + weight decay are compared on the same number. ``loss`` is a float or 0-d array.
    """
    lam = _check_lam(lam)
    xp = check_groups(params, groups)
    value, _ = path_norm(params, groups, regularize_bias=regularize_bias)
    other = list(groups.other) + (list(groups.other_biases) if regularize_bias else [])
    for key in other:
        value = value + 0.5 * xp.sum(params[key] * params[key])
    return loss + lam * value


def active_units(params: Mapping[str, Any], groups: Groups) -> float:
    """Percentage of grouped units with ``||w_k||·||v_k|| > 0`` (exact zero; biases excluded, as the authors).

    Returns a host float in [0, 100] (spec 4, "active neurons (%)").
    """
    xp = check_groups(params, groups)
    if not groups.pairs:
        raise ValueError("groups has no pairs, so there are no units to count")
    alive, total = 0, 0
    for nw, nv in _unit_norms(xp, params, groups, False):
        # product of two tiny norms could underflow to 0; test each factor instead
        alive += int(xp.sum(xp.astype((nw > 0) & (nv > 0), xp.int64)))
        total += nw.shape[0]
    return 100.0 * alive / total


# ------------------------------------------------------------------------------------------------ rescaling
def balance_units(
    params: Mapping[str, Any], groups: Groups, *, regularize_bias: bool = False
) -> Params:
    """Rescale every unit so that ``||w_k|| = ||v_k||``; the ReLU network's function is unchanged.

    .. math::
        w_k ← a_k w_k,\\ b_k ← a_k b_k,\\ v_k ← v_k / a_k,\\qquad a_k² = ||v_k|| / ||w_k||

    Afterwards ``WD = PN`` (AM-GM equality, spec 3.1). Units with ``||w_k||·||v_k|| = 0`` are left unchanged
    (their infimum is not attained by a function-preserving rescaling). With ``regularize_bias`` ``||w_k||``
    is the norm of ``[w_k, b_k]``. Returns a new dict; the input is not modified.
    """
    xp = check_groups(params, groups)
    _check_finite_params(params)
    out = dict(params)
    for pair, (nw, nv) in zip(
        groups.pairs, _unit_norms(xp, params, groups, regularize_bias), strict=True
    ):
        alive = (nw > 0) & (nv > 0)
        a = xp.where(alive, xp.sqrt(nv / xp.where(alive, nw, 1.0)), 1.0)
        out[pair.w] = params[pair.w] * a[:, None]
        out[pair.v] = params[pair.v] / a[None, :]
        if pair.w_bias is not None:
            out[pair.w_bias] = params[pair.w_bias] * a
    return out


def _layer_scales(xp: Any, P: list[Any]) -> list[Any]:
    """Cumulative scales ``s_g`` of the authors' sequential layer balance (closed form).

    ``s_g = G/P_g`` applied in order with ``P_{g+1} ← P_{g+1}/s_g`` gives ``s_g = G^{g+1} / Π_{j≤g} P_j``; the
    last one is 1 up to rounding and is set to exactly 1 (the last V has no layer to compensate it).
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
    """The authors' layer-wise balance: every group path norm ``P_g`` becomes their geometric mean G.

    .. math::
        s_g = G^{g+1} / Π_{j≤g} P_j,\\quad V_g ← (s_g/s_{g-1}) V_g,\\quad b_{V_g} ← s_g b_{V_g},\\quad
        b_{W_{g+1}} ← s_g b_{W_{g+1}}

    with ``G = (Π_g max(P_g, 1e-6))^{1/n}`` and ``s_{-1} = 1`` (``layerwise_balance`` in the authors'
    ``regularize_func.py``, spec 1c). The output of group g is scaled by ``s_g`` and undone by the next group,
    ReLU being positively homogeneous; W weights (and hence ``||w_k|| = 1``) are untouched, ``Π_g P_g`` is
    preserved, and ``Σ_g P_g`` is minimized over layer-wise rescalings (AM-GM, spec 3.3). The last scale is 1
    up to rounding in the authors' code; here it is exactly 1, so the function is kept exactly.
    Biases are excluded from ``P_g``. Returns a new dict.
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


# ---------------------------------------------------------------------------------------- proximal operators
def _check_tau(tau: Any) -> float:
    return check_nonnegative("tau", tau)


def _check_float_array(name: str, x: Any, ndim: int | None = None) -> Any:
    xp = get_namespace(x)
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{name} must have a real floating dtype, got {x.dtype}")
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
    norm = xp.linalg.vector_norm(z, axis=axis, keepdims=True)
    return z * _shrink_factor(xp, norm, tau)


def _shrink_factor(xp: Any, norm: Any, tau: float) -> Any:
    keep = norm > tau
    return xp.where(keep, 1.0 - tau / xp.where(keep, norm, 1.0), 0.0)


def project_unit_sphere(
    W: Any, b: Any | None = None, *, include_bias: bool = False
) -> tuple[Any, Any]:
    """The authors' projection of every unit's incoming weights onto the unit sphere.

    .. math::
        n_k = max(||w_k||, 10^{-6}),\\qquad w_k ← w_k / n_k,\\quad b_k ← b_k / n_k

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
        (x, y) = argmin ½||x − a||² + ½||y − c||² + τ||x||·||y||,\\qquad x = r·a/α,\\ y = s·c/β

    with ``α = ||a||``, ``β = ||c||`` (spec 1b, derived):

    - ``τ < 1``, ``α > τβ``, ``β > τα``: ``r = (α − τβ)/(1 − τ²)``, ``s = (β − τα)/(1 − τ²)`` (convex case);
    - ``τ < 1``, ``α ≤ τβ``: ``(0, c)``; ``β ≤ τα``: ``(a, 0)``;
    - ``τ ≥ 1`` (nonconvex): keep the longer vector and zero the other (value ``½min(α, β)²``). On a tie
      ``α = β`` both are minimizers (for ``τ = 1`` every split ``r + s = α`` is); this returns ``(a, 0)``.

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
    alpha, beta = xp.linalg.vector_norm(W, axis=1), xp.linalg.vector_norm(V, axis=0)
    fw, fv = _norm_product_factors(xp, alpha, beta, tau)
    return W * fw[:, None], V * fv[None, :]


def _norm_product_factors(xp: Any, alpha: Any, beta: Any, tau: float) -> tuple[Any, Any]:
    """Factors ``r/α`` and ``s/β`` (0 where the norm is 0) of :func:`prox_norm_product`, per unit."""
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


# ---------------------------------------------------------------------------------------------- optimizer
class PathProxState(NamedTuple):
    """``step``: updates applied so far; ``momentum_buffer[name]``: torch's SGD buffer (empty if momentum 0)."""

    step: int
    momentum_buffer: dict[str, Any]


_PROX = ("sphere", "joint", "none")


@dataclass(frozen=True)
class PathProx:
    """PathProx (``prox="sphere"``/``"joint"``) and its SGD + weight-decay baseline (``prox="none"``).

    One update (the authors' ``regularize.py``, spec 2), with ``γ`` the current learning rate:

    1. ``d = ∇L + λ·W`` for the "other" weights (and, for ``prox="none"``, every grouped weight too);
       biases are decayed only with ``regularize_bias``; torch-style momentum on d;
       ``θ ← θ − γ·d``.
    2. ``layer_balance`` (and no ``regularize_bias``): :func:`balance_layers`.
    3. prox with ``τ = λ·γ``: ``"sphere"``: :func:`project_unit_sphere` on ``(W, b)`` then
       :func:`group_soft_threshold` of the columns of V; ``"joint"``: :func:`prox_norm_product` on
       ``(W, V)`` (``[W, b]`` with ``regularize_bias``).

    Steps 2 and 3 are fused into one rescaling of each array (same values as the composition up to
    rounding). Use :func:`pathprox` and :func:`sgd_weight_decay` to build one.
    """

    lr: float | Schedule
    lam: float
    groups: Groups
    momentum: float = 0.0
    prox: str = "sphere"
    layer_balance: bool = True
    regularize_bias: bool = False

    def __post_init__(self):
        check_lr(self.lr)
        _check_lam(self.lam)
        check_in_range("momentum", self.momentum, 0.0, 1.0, closed="left")
        check_choice("prox", self.prox, _PROX)
        if not isinstance(self.groups, Groups):
            raise TypeError(
                f"groups must be a refreg.pathprox.Groups, got {type(self.groups).__name__}"
            )
        for name in ("layer_balance", "regularize_bias"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")

    def init(self, params: Mapping[str, Any]) -> PathProxState:
        """A fresh state: step 0 and zero momentum buffers (none when momentum is 0)."""
        xp = check_groups(params, self.groups)
        buffers = {k: xp.zeros_like(p) for k, p in params.items()} if self.momentum else {}
        return PathProxState(step=0, momentum_buffer=buffers)

    def _decayed_keys(self) -> list[str]:
        keys = list(self.groups.other)
        if self.prox == "none":
            keys += [k for pair in self.groups.pairs for k in (pair.w, pair.v)]
        if self.regularize_bias:
            keys += list(self.groups.other_biases)
            if self.prox == "none":
                keys += [p.w_bias for p in self.groups.pairs if p.w_bias is not None]
        return keys

    def update(
        self, grads: Mapping[str, Any], state: PathProxState, params: Mapping[str, Any]
    ) -> tuple[Params, PathProxState]:
        """``(new_params, new_state)``; the arguments are not modified and a failed call changes nothing."""
        xp = check_groups(params, self.groups)
        check_grads(grads, params)
        _check_finite_params(params)
        check_state_matches(
            state, params if self.momentum else {}, PathProxState, "momentum_buffer"
        )
        balance = self.layer_balance and not self.regularize_bias and self.prox != "none"
        if balance:
            _check_chain(params, self.groups)
        lr = current_lr(self.lr, state.step)

        decayed = set(self._decayed_keys())
        new_params, new_buffers = {}, {}
        for key, p in params.items():
            d = grads[key]
            if key in decayed and self.lam:
                d = d + self.lam * p
            if self.momentum:
                buf = d if state.step == 0 else self.momentum * state.momentum_buffer[key] + d
                new_buffers[key] = buf
                d = buf
            # -(lr d) + p is bitwise p - lr d; adding in place into our own temporary saves one array
            step = d * (-lr)
            step += p
            new_params[key] = step
        if self.prox != "none":
            new_params = self._prox_step(xp, new_params, self.lam * lr, balance)
        return new_params, PathProxState(step=state.step + 1, momentum_buffer=new_buffers)

    def _prox_step(self, xp: Any, params: Params, tau: float, balance: bool) -> Params:
        """Layer balance then the prox, fused into one rescaling per array (rows of W, columns of V, biases).

        Balance multiplies V_g's columns by ``s_g/s_{g-1}`` and W_g's bias by ``s_{g-1}``; the prox then
        multiplies row k of W_g by ``fw_k`` and column k of V_g by ``fv_k``, both computed from the balanced
        norms (W's norms are not changed by the balance). ``params`` must be this update's own fresh arrays:
        they are rescaled in place.
        """
        groups, n_pairs = self.groups, len(self.groups.pairs)
        norms = _unit_norms(xp, params, groups, self.regularize_bias)
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
            if self.prox == "sphere":
                fw = 1.0 / xp.clip(nw, min=SPHERE_EPS)
                fv = _shrink_factor(xp, nv, tau)
            else:
                fw, fv = _norm_product_factors(xp, nw, nv, tau)
            if self.prox == "sphere" or self.regularize_bias:
                # the bias follows its row; the joint prox leaves an unregularized bias alone
                bias_factor = bias_factor * fw
            # in place: these arrays are the fresh results of this update's SGD step, owned here
            out[pair.w] *= fw[:, None]
            out[pair.v] *= (fv * column)[None, :]
            if pair.w_bias is not None and (balanced or not isinstance(bias_factor, float)):
                out[pair.w_bias] *= bias_factor
        return out


def pathprox(
    lr: float | Schedule,
    lam: float,
    *,
    groups: Groups,
    momentum: float = 0.0,
    prox: str = "sphere",
    layer_balance: bool = True,
    regularize_bias: bool = False,
) -> PathProx:
    """PathProx as an optimizer with ``init(params)`` / ``update(grads, state, params)``.

    Proximal SGD on ``L + λ Σ_g Σ_k ||w_k||·||v_k|| + λ/2 Σ_other ||W||²`` (arXiv 2210.03069; the authors'
    ``regularize.py``): SGD step, layer balance, then the prox with ``τ = λ·lr_t`` (see :class:`PathProx`).

    Parameters
    ----------
    lr : float > 0 or schedule ``t -> lr``
    lam : float >= 0
        λ; the authors use 1e-4 (MNIST) and 1e-3 (CIFAR-10).
    groups : Groups
        From :func:`pair_groups`.
    momentum : float in [0, 1)
        The authors use 0.
    prox : {"sphere", "joint"}
        "sphere": the authors' projection of w onto ``||w|| = 1`` and group soft-threshold of v;
        "joint": the exact prox of ``τ||w||·||v||`` (:func:`prox_norm_product`).
    layer_balance : bool
        Apply :func:`balance_layers` before the prox (skipped with ``regularize_bias``, as the authors).
    regularize_bias : bool
        Treat ``[w_k, b_k]`` as the unit's input vector and decay the other layers' biases.

    Returns
    -------
    PathProx
        ``init(params) -> PathProxState``; ``update(grads, state, params) -> (params, state)``.

    Raises
    ------
    ValueError
        ``lr <= 0``, ``lam < 0``, momentum outside [0, 1), an unknown ``prox``; at ``update``: groups that do
        not match the params (keys, shapes), non-consecutive pairs with ``layer_balance``.
    TypeError
        ``groups`` is not a :class:`Groups`; at ``update``: a wrong state type, mixed dtypes.
    FloatingPointError
        At ``update``: a NaN or inf in a gradient or parameter (the message names its key). A failed update
        leaves params and state untouched.

    Examples
    --------
    >>> from refreg import MLP
    >>> net = MLP([4, 8, 3])
    >>> params = net.init(rng=0)
    >>> opt = pathprox(0.3, 1e-4, groups=pair_groups(net))
    >>> state = opt.init(params)
    """
    check_choice("prox", prox, ("sphere", "joint"))
    return PathProx(lr, lam, groups, momentum, prox, layer_balance, regularize_bias)


def sgd_weight_decay(
    lr: float | Schedule, lam: float, *, groups: Groups, momentum: float = 0.0
) -> PathProx:
    """The authors' baseline on the same pipeline: SGD on ``L + λ/2·Σ ||W||²`` over every weight (no biases).

    ``θ ← θ − lr·(∇L + λ·W)`` (``--with-loss-term`` in ``regularize.py``); no balance, no prox. Returns a
    :class:`PathProx` with ``prox="none"``, so both methods share validation, momentum and state.
    """
    return PathProx(lr, lam, groups, momentum, "none", False, False)
