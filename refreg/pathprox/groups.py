"""PathProx groups: which pairs of consecutive layers ``(W, V)`` form units, and their per-unit norms.

A *group* is a disjoint pair of consecutive layers ``(W, V)`` of a ReLU network (PyTorch layout): unit k of
the pair has the incoming weights ``w_k = W[k, :]`` (with bias ``b_k``) and the outgoing weights
``v_k = V[:, k]``. :func:`unit_norms` gives ``(||w_k||, ||v_k||)`` per pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from refreg._backend import get_namespace, namespace_of_params
from refreg._pow2 import GroupPow2, unsafe_norms
from refreg._validation import (
    check_finite_array,
    check_nonnegative,
)
from refreg.nn.mlp import MLP

Params = dict[str, Any]


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
    classifier in the authors' code (their VGG19's ``other_layers``).

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

    A layout (the groups, and each key's array type, shape and dtype) that passed once is remembered and
    passes again without the checks, which depend on nothing else.
    """
    if isinstance(params, Mapping) and isinstance(groups, Groups):
        try:  # the checks below depend on nothing else, so a layout once accepted is accepted again
            layout = (groups, *((k, type(v), tuple(v.shape), v.dtype) for k, v in params.items()))
            xp = _ACCEPTED.get(layout)
        except (TypeError, AttributeError):  # unhashable, or not an array: the full checks say what
            layout = xp = None
        if xp is not None:
            return xp
    else:
        layout = None
    xp = namespace_of_params(params)
    _check_groups_type(groups)
    dtypes = {p.dtype for p in params.values()}
    if len(dtypes) != 1:
        raise TypeError(f"params must share one float dtype, got {sorted(map(str, dtypes))}")
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
    if layout is not None:
        if len(_ACCEPTED) >= 64:
            _ACCEPTED.clear()
        _ACCEPTED[layout] = xp
    return xp


def _check_groups_type(groups: Any) -> None:
    """``TypeError`` unless ``groups`` is a :class:`Groups` whose fields are tuples (or lists)."""
    if not isinstance(groups, Groups):
        raise TypeError(f"groups must be a refreg.pathprox.Groups, got {type(groups).__name__}")
    for field, what in (("pairs", "Group pairs"), ("other", "keys"), ("other_biases", "keys")):
        value = getattr(groups, field)
        if not isinstance(value, (tuple, list)):
            raise TypeError(
                f"groups.{field} must be a tuple of {what}, got {type(value).__name__}: {value!r:.80}"
            )


# Layouts check_groups has accepted: (groups, then per key its array type, shape and dtype) -> namespace.
# Every check of check_groups is a function of this layout alone, so an optimizer step on the same network
# skips them (O(number of arrays) tuple work instead of the namespace look-up and the per-pair checks).
_ACCEPTED: dict[tuple, Any] = {}


def _check_lam(lam: Any) -> float:
    return check_nonnegative("lam", lam)


def _check_finite_params(params: Mapping[str, Any], xp: Any = None) -> None:
    """``FloatingPointError`` naming the first parameter that holds NaN or inf.

    Fast path: a NaN or inf makes its array's sum non-finite, so one sum per array and one host sync decide;
    only then is each array checked element-wise to name it (a finite array whose sum overflows passes).
    ``xp``, when the caller has it from :func:`check_groups`, saves the namespace look-up.
    """
    xp = get_namespace(*params.values(), xp=xp)
    if array_api_compat.is_numpy_namespace(xp):
        # on the host a sync costs nothing: one BLAS read per array (refreg._backend.all_finite)
        for key, p in params.items():
            check_finite_array(f"params[{key!r}]", p)
        return
    sums = xp.stack([xp.sum(p) for p in params.values()])
    if bool(xp.all(xp.isfinite(sums))):
        return
    for key, p in params.items():
        check_finite_array(f"params[{key!r}]", p)


def _in_norm(xp: Any, W: Any, b: Any, with_bias: bool) -> Any:
    """``||w_k||`` per row, or ``||[w_k, b_k]||`` with the bias (shape (N,))."""
    if with_bias and b is not None:
        return _safe_norms(
            xp, lambda W, b: xp.sqrt(xp.sum(W * W, axis=1) + b * b), (W, 1), (b, None)
        )
    return _safe_norms(xp, lambda W: xp.linalg.vector_norm(W, axis=1), (W, 1))


def _out_norm(xp: Any, V: Any) -> Any:
    """``||v_k||`` per column of V (shape (N,))."""
    return _safe_norms(xp, lambda V: xp.linalg.vector_norm(V, axis=0), (V, 0))


def _safe_norms(xp: Any, norm: Any, *parts: tuple[Any, int | None], keepdims: bool = False) -> Any:
    """``norm(*arrays)``, a norm per group, right to a few ulps whatever the scale of each group.

    ``parts``: ``(array, axis)``, the group's entries running along ``axis`` (None: one entry per group, a
    bias); ``keepdims``: the norms keep the reduced axis (:func:`~refreg.pathprox.group_soft_threshold`).
    The plain norms are kept wherever they are finite and at least :func:`~refreg._pow2.norm_floor`, or 0 for
    an all-zero group (the usual case: one check over the N norms). Any other group (its sum of squares
    overflowed beyond ~1e154 in float64, or underflowed) is recomputed on its own entries scaled by its own
    power of two and scaled back (:class:`~refreg._pow2.GroupPow2`), so a norm of 1e200 is 1e200 and the row
    [3, 4] next to it still has norm 5. A norm beyond the float max is inf.
    """
    arrays = [a for a, _ in parts]
    full = [(a, axis, keepdims) for a, axis in parts]
    with np.errstate(over="ignore", under="ignore"):  # handled below, not errors
        n = norm(*arrays)
    bad = unsafe_norms(xp, n, full)
    if bad is None:
        return n
    scale = GroupPow2(xp, full, "the parameters")
    # a norm beyond the float max is inf; entries negligible next to their group's largest may underflow
    with np.errstate(over="ignore", under="ignore"):
        scaled = scale.undo(norm(*(scale(*part) for part in full)))
    return xp.where(bad, scaled, n)


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
                _out_norm(xp, params[pair.v]),
            )
        )
    return out
