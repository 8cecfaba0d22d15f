"""PathProx's speed layer: the fused update equals the reference update (the algorithm box) step by step."""

from __future__ import annotations

import numpy as np
import pytest

from refreg.nn import MLP
from refreg.optim import cosine
from refreg.pathprox import pair_groups, pathprox, sgd_weight_decay
from refreg.testing import relative_error


@pytest.mark.parametrize("prox", ["sphere", "joint"])
@pytest.mark.parametrize("regularize_bias", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("sizes", [[4, 6, 5, 6, 5, 3], [4, 7, 3], [5, 6, 4, 6, 3]])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_update_equals_reference_update(prox, regularize_bias, momentum, sizes, bias):
    net = MLP(sizes, bias=bias)
    groups = pair_groups(net)
    params = net.init(rng=3)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, sizes[0])), rng.integers(0, sizes[-1], 16)
    opt = pathprox(
        cosine(0.3, 20), 0.2, groups=groups, prox=prox, momentum=momentum,
        regularize_bias=regularize_bias,
    )  # fmt: skip
    fused, ref = (params, opt.init(params)), (params, opt.init(params))
    for _ in range(8):
        _, g_fused = net.value_and_grad(fused[0], x, y)
        _, g_ref = net.value_and_grad(ref[0], x, y)
        fused = opt.update(g_fused, fused[1], fused[0])
        ref = opt.reference_update(g_ref, ref[1], ref[0])
        for key in params:
            assert relative_error(fused[0][key], ref[0][key]) < 1e-12, key
        assert fused[1].step == ref[1].step


def test_baseline_reference_update_is_bitwise_the_update():
    """Without a prox both paths are the same gradient step, bit for bit."""
    net = MLP([4, 6, 3])
    params = net.init(rng=1)
    opt = sgd_weight_decay(0.1, 0.05, groups=pair_groups(net), momentum=0.9)
    _, grads = net.value_and_grad(params, np.ones((2, 4)), np.array([0, 2]))
    a, _ = opt.update(grads, opt.init(params), params)
    b, _ = opt.reference_update(grads, opt.init(params), params)
    assert all(np.array_equal(a[k], b[k]) for k in params)
