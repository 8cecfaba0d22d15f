"""Decoupled weight decay as a transformation: around adam it is adamw bit for bit; a mask leaves tensors alone."""

from __future__ import annotations

import numpy as np
import pytest

from refreg.nn import MLP
from refreg.optim import adam, adamw, cosine, decoupled_weight_decay, sgd


def _problem():
    net = MLP([5, 7, 3])
    params = net.init(rng=0)
    rng = np.random.default_rng(1)
    return net, params, rng.standard_normal((16, 5)), rng.integers(0, 3, 16)


@pytest.mark.parametrize("lr", [1e-2, cosine(1e-2, 10)])
def test_around_adam_it_is_adamw_bitwise(lr):
    net, params, x, y = _problem()
    composed = decoupled_weight_decay(adam(lr, (0.9, 0.98)), 0.3)
    reference = adamw(lr, (0.9, 0.98), weight_decay=0.3)
    pa, sa = params, composed.init(params)
    pb, sb = params, reference.init(params)
    for _ in range(10):
        _, ga = net.value_and_grad(pa, x, y)
        _, gb = net.value_and_grad(pb, x, y)
        pa, sa = composed.update(ga, sa, pa)
        pb, sb = reference.update(gb, sb, pb)
        assert all(pa[k].tobytes() == pb[k].tobytes() for k in params)


def test_mask_decays_only_the_chosen_tensors():
    net, params, x, y = _problem()
    _, grads = net.value_and_grad(params, x, y)
    weights_only = decoupled_weight_decay(sgd(0.1), 0.5, decay=lambda name, p: p.ndim >= 2)
    plain = sgd(0.1)
    new, _ = weights_only.update(grads, weights_only.init(params), params)
    base, _ = plain.update(grads, plain.init(params), params)
    for k in params:
        if params[k].ndim >= 2:
            np.testing.assert_array_equal(new[k], params[k] * 0.95 - 0.1 * grads[k])
        else:
            np.testing.assert_array_equal(new[k], base[k])
    by_name = decoupled_weight_decay(sgd(0.1), 0.5, decay={"layers.0.weight", "layers.1.weight"})
    named, _ = by_name.update(grads, by_name.init(params), params)
    assert all(np.array_equal(named[k], new[k]) for k in params)


def test_bad_input():
    with pytest.raises(ValueError, match="weight_decay"):
        decoupled_weight_decay(sgd(0.1), -1.0)
    with pytest.raises(TypeError, match="decay must be None"):
        decoupled_weight_decay(sgd(0.1), 0.1, decay="layers.0.weight")
    _, params, _, _ = _problem()
    opt = decoupled_weight_decay(sgd(1.0), 2.0)
    with pytest.raises(ValueError, match="lr·weight_decay <= 1"):
        opt.update({k: np.zeros_like(p) for k, p in params.items()}, opt.init(params), params)
    with pytest.raises(ValueError, match="not in params"):
        bad = decoupled_weight_decay(sgd(0.1), 0.1, decay={"nope"})
        bad.update({k: np.zeros_like(p) for k, p in params.items()}, bad.init(params), params)
