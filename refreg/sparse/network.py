"""Sparse regularizers over a network: the registry by name and ``penalty`` per layer or network-wide."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from refreg._backend import host_namespace, is_array, namespace_of_params
from refreg._validation import check_choice, check_nonnegative
from refreg.sparse._matrices import (
    _check_matrices,
    _sum,
)
from refreg.sparse.baselines import L1, L2, GroupHoyerSquare, GroupLasso, Hoyer, HoyerSquare
from refreg.sparse.entropy import ElementEntropy, SpatialEntropy
from refreg.sparse.regularizer import Regularizer

SCOPES = ("layer", "network")


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
    """``λ Σ_l R(W_l)`` over the weight matrices of a net, and its gradient, to add to the loss.

    .. math::
        \\text{layer: } P = λ Σ_l R(W_l);\\qquad \\text{network: } P = λ R(W_1 ⊕ … ⊕ W_L)

    With ``scope="network"`` every sum inside ``R`` runs over all selected matrices at once: one mass
    ``‖W‖₁ = Σ_l Σ_ij |w^l_ij|``, one max-normalisation, and for the spatial entropy the concatenated marginals
    ``r = (r^1, …, r^L)`` (all rows of all layers, ``r^l_i = Σ_j |w^l_ij| / ‖W‖₁``) and ``c = (c^1, …, c^L)`` (all
    columns), ``R = H(r) + H(c)`` with gradient ``−sign(w^l_ij)(log r^l_i + H(r) + log c^l_j + H(c)) / ‖W‖₁``.
    Element entropy, Hoyer and (Group) Hoyer-Square likewise pool their sums; for L1, L2 and group lasso the
    two scopes coincide. A network-wide scale-invariant ``R`` is invariant to scaling *all* weights together.

    Parameters
    ----------
    params : dict of arrays
        E.g. ``MLP.init`` output; weights of shape (out, in).
    regularizer : str or Regularizer
        A name in :data:`REGULARIZERS` (default ``"spatial_entropy"``).
    alpha : float >= 0
        The penalty coefficient λ (``alpha`` in the abstract's notation).
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
    Bayandorian (2023), arXiv:2301.07285: loss ``L(θ) + alpha·Σ_layers R(W_l)`` (the additive form in the abstract).
    """
    alpha = check_nonnegative("alpha", alpha)
    reg = get_regularizer(regularizer)
    check_choice("scope", scope, SCOPES)
    namespace_of_params(params)
    keys = weight_names(params, names)
    Ws = [params[k] for k in keys]
    xp = host_namespace(_check_matrices(Ws, [f"params[{k!r}]" for k in keys]))
    if scope == "network":
        value, grads = reg._compute(xp, Ws, need_grad=True)
    else:
        values, grads = [], []
        for W in Ws:
            v, g = reg._compute(xp, [W], need_grad=True)
            values.append(v)
            grads.append(g[0])
        value = _sum(xp, values)
    return alpha * value, {k: _times_alpha(alpha, g, Ws) for k, g in zip(keys, grads, strict=True)}


def _times_alpha(alpha: float, g: Any, Ws: list[Any]) -> Any:
    """``alpha·g``; in place when ``g`` is a NumPy array the regularizer made (``g·alpha`` rounds as
    ``alpha·g``, bit for bit), which saves a fresh array of the weights' size per matrix."""
    if (
        isinstance(g, np.ndarray)
        and g.flags.owndata
        and g.flags.writeable
        and all(g is not W for W in Ws)
    ):
        g *= alpha
        return g
    return alpha * g
