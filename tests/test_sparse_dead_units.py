"""Tests of refreg.sparse.structure on hand-made nets whose dead units and removable weights are known."""

from __future__ import annotations

import numpy as np
import pytest

from refreg import MLP
from refreg.sparse.dead_units import structure


def test_hand_made_net():
    """4 inputs -> 3 -> 3 -> 2. Known by hand:
    layer 1: unit 0 has a zero incoming row (not fed); unit 1 has a zero outgoing column (not heard);
    unit 2 is alive. Layer 2: unit 0 gets input only from the unfed unit 0 (dead by propagation),
    unit 1 feeds nothing (its outgoing column is zero), unit 2 is alive. Input 3 feeds only the unheard
    unit 1, input 2 feeds nothing."""
    W0 = np.array(
        [
            [0.0, 0.0, 0.0, 0.0],  # unit 0: not fed
            [0.5, 0.0, 0.0, 2.0],  # unit 1: fed by inputs 0 and 3, but never heard
            [1.0, -1.0, 0.0, 0.0],  # unit 2: alive, fed by inputs 0 and 1
        ]
    )
    W1 = np.array(
        [
            [3.0, 0.0, 0.0],  # layer-2 unit 0 hears only layer-1 unit 0 (not fed)
            [0.0, 0.0, 1.0],  # layer-2 unit 1: fed by unit 2 but heard by nobody
            [0.0, 0.0, -2.0],  # layer-2 unit 2: alive
        ]
    )
    W2 = np.array([[1.0, 0.0, 1.0], [-1.0, 0.0, 0.5]])
    params = {"a": W0, "b": W1, "c": W2}
    s = structure(params, ["a", "b", "c"])
    assert s["nnz"] == 4 + 3 + 4 and s["nnz_layers"] == [4, 3, 4]
    assert s["dead_units_layers"] == [2, 2] and s["dead_units"] == 4 and s["hidden_units"] == 6
    assert s["dead_inputs"] == 2  # input 2 (no weight) and input 3 (only to the unheard unit 1)
    # effective: inputs 0,1 -> unit 2 (2), unit 2 -> layer-2 unit 2 (1), layer-2 unit 2 -> outputs (2)
    assert s["nnz_effective"] == 5


def test_dense_net_has_nothing_dead_and_pruned_copy_is_counted():
    net = MLP([5, 4, 3])
    params = net.init(rng=0)
    names = [net.weight_name(i) for i in range(net.n_layers)]
    s = structure(params, names)
    assert s == {
        "nnz": 32,
        "nnz_layers": [20, 12],
        "nnz_effective": 32,
        "dead_units": 0,
        "dead_units_layers": [0],
        "hidden_units": 4,
        "dead_inputs": 0,
    }
    pruned = dict(params)
    pruned[names[1]] = params[names[1]].copy()
    pruned[names[1]][:, 2] = 0.0  # unit 2 is no longer heard: its 5 incoming weights are removable
    s = structure(pruned, names)
    assert (s["nnz"], s["dead_units"], s["nnz_effective"]) == (29, 1, 24)


def test_bad_chains():
    with pytest.raises(ValueError, match="does not follow"):
        structure({"a": np.ones((3, 4)), "b": np.ones((2, 4))}, ["a", "b"])
    with pytest.raises(ValueError, match="non-empty list"):
        structure({"a": np.ones((3, 4))}, [])
