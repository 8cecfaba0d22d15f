"""What a pruned feed-forward net really keeps: nonzero weights, dead hidden units and removable weights.

For a chain of weight matrices ``W_0 (n_1, n_0), …, W_{L-1} (n_L, n_{L-1})`` (PyTorch layout, row = unit), a
hidden unit ``k`` of layer ``l`` (``1 ≤ l < L``) has incoming row ``W_{l-1}[k, :]`` and outgoing column
``W_l[:, k]``. It is **dead** (removable without changing the function, after folding constants into the next
layer's bias) unless it is both

- *fed*: some nonzero ``W_{l-1}[k, j]`` comes from a fed unit (every input pixel is fed), and
- *heard*: some nonzero ``W_l[i, k]`` goes to a heard unit (every output unit is heard).

Both are propagated through the layers, so a unit whose only inputs are dead units is dead too (a unit that is
not fed outputs the constant ``ReLU(b_k)``, which the next layer's bias absorbs). A weight is **effective** when
its source and its target are alive (an input pixel is alive when heard); ``nnz_effective ≤ nnz``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from refreg._backend import to_numpy

__all__ = ["structure"]


def structure(params: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Nonzeros, dead units and effective nonzeros of the weight chain ``params[names[0]], …``.

    Parameters
    ----------
    params : dict of arrays (any backend; read on the host)
    names : list of str
        The weight matrices in forward order; ``params[names[l]]`` of shape (n_{l+1}, n_l).

    Returns
    -------
    dict
        ``nnz`` (nonzero weights), ``nnz_layers`` (per matrix), ``nnz_effective`` (nonzeros between living
        units), ``dead_units`` (hidden units, all layers), ``dead_units_layers`` (per hidden layer),
        ``hidden_units``, ``dead_inputs`` (input features with no effective weight).

    Raises
    ------
    ValueError
        Matrices whose shapes do not chain, or fewer than one name.
    """
    if isinstance(names, str) or len(names) < 1:
        raise ValueError(f"names must be a non-empty list of weight keys, got {names!r}")
    nz = [np.asarray(to_numpy(params[k])) != 0 for k in names]
    for l in range(1, len(nz)):
        if nz[l].ndim != 2 or nz[l].shape[1] != nz[l - 1].shape[0]:
            raise ValueError(
                f"params[{names[l]!r}] of shape {nz[l].shape} does not follow params[{names[l - 1]!r}] "
                f"of shape {nz[l - 1].shape}"
            )
    L = len(nz)
    fed = [np.ones(nz[0].shape[1], dtype=bool)]
    for l in range(L):
        fed.append(np.any(nz[l][:, fed[l]], axis=1))
    heard = [np.ones(nz[-1].shape[0], dtype=bool)]
    for l in reversed(range(L)):
        heard.insert(0, np.any(nz[l][heard[0], :], axis=0))
    alive = [heard[0]] + [fed[l] & heard[l] for l in range(1, L)] + [np.ones_like(heard[L])]
    effective = sum(int(np.sum(nz[l][np.ix_(alive[l + 1], alive[l])])) for l in range(L))
    dead_layers = [int(np.sum(~alive[l])) for l in range(1, L)]
    return {
        "nnz": int(sum(int(m.sum()) for m in nz)),
        "nnz_layers": [int(m.sum()) for m in nz],
        "nnz_effective": effective,
        "dead_units": sum(dead_layers),
        "dead_units_layers": dead_layers,
        "hidden_units": int(sum(nz[l].shape[1] for l in range(1, L))),
        "dead_inputs": int(np.sum(~alive[0])),
    }
