"""PathProx's speed layer: the fused update equals the reference update (the algorithm box) step by step."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refreg.nn import MLP
from refreg.optim import cosine
from refreg.pathprox import pair_groups, pathprox, sgd_weight_decay
from refreg.pathprox.fused import fused_balance_then_prox
from refreg.pathprox.unchecked import unchecked_update
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


def _checked_update(opt, grads, state, params):
    """The update with every finiteness check read separately (the path before the unchecked step)."""
    return opt._step(grads, state, params, fused_balance_then_prox)


@pytest.mark.parametrize("prox", ["sphere", "joint"])
@pytest.mark.parametrize("layer_balance", [True, False])
@pytest.mark.parametrize(
    "dtype, scale",
    [("float32", 2.0**-70), ("float32", 1.0), ("float64", 2.0**-540), ("float64", 1.0)],
)
@pytest.mark.parametrize("sizes", [[6, 7, 5, 6, 4, 3], [5, 9, 3], [6, 7, 5, 6, 3]])
def test_update_is_bitwise_the_checked_update(prox, layer_balance, dtype, scale, sizes):
    """update() takes its finiteness checks from the unit norms (refreg.pathprox.unchecked):
    its results are the checked path's, bit for bit, step after step (also where squares underflow and the
    checked path takes over)."""
    net = MLP(sizes)
    params = {k: (v * scale).astype(dtype) for k, v in net.init(rng=2).items()}
    params[pair_groups(net).pairs[0].w][1] = 0.0  # an all-zero unit
    rng = np.random.default_rng(5)
    opt = pathprox(
        cosine(0.3, 20), 0.05, groups=pair_groups(net), prox=prox, layer_balance=layer_balance
    )
    state = opt.init(params)
    for _ in range(4):
        grads = {k: (scale * rng.standard_normal(v.shape)).astype(dtype) for k, v in params.items()}
        new, new_state = opt.update(grads, state, params)
        ref, ref_state = _checked_update(opt, grads, state, params)
        taken = unchecked_update(opt, grads, state, params) is not None
        assert taken == (
            scale == 1.0
        )  # else squares underflow or overflow: the checked path takes over
        for key in params:
            assert new[key].dtype == ref[key].dtype
            assert np.array_equal(new[key], ref[key]), key
        assert new_state == ref_state
        params, state = new, new_state


@pytest.mark.parametrize("prox", ["sphere", "joint"])
@pytest.mark.parametrize("dtype, scale", [("float32", 2.0**66), ("float64", 2.0**600)])
def test_update_when_squares_overflow_is_the_checked_update(prox, dtype, scale):
    """Finite weights whose squares overflow: the unchecked step declines and the checked path runs."""
    net = MLP([5, 9, 3])
    params = {k: (v * scale).astype(dtype) for k, v in net.init(rng=1).items()}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    opt = pathprox(0.1, 1e-3, groups=pair_groups(net), prox=prox)
    state = opt.init(params)
    assert unchecked_update(opt, grads, state, params) is None
    new, _ = opt.update(grads, state, params)
    ref, _ = _checked_update(opt, grads, state, params)
    for key in params:
        assert np.isfinite(new[key]).all() and np.array_equal(new[key], ref[key]), key


@pytest.mark.parametrize("prox", ["sphere", "joint"])
@pytest.mark.parametrize("where", ["params", "grads"])
@pytest.mark.parametrize(
    "key", ["layers.0.weight", "layers.1.weight", "layers.2.weight", "layers.1.bias"]
)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_update_raises_the_checked_error_for_non_finite_input(prox, where, key, bad):
    """A NaN or inf anywhere reaches the unit norms or a dot product, and the checked path raises its own
    error (naming the key) without a warning first; nothing the caller passed is changed."""
    net = MLP([5, 6, 4, 3])
    params = net.init(rng=1)
    grads = {k: np.full_like(v, 0.01) for k, v in params.items()}
    (params if where == "params" else grads)[key][0, ...] = bad
    opt = pathprox(0.1, 1e-3, groups=pair_groups(net), prox=prox)
    state = opt.init(params)
    before = {k: (params[k].copy(), grads[k].copy()) for k in params}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FloatingPointError, match=rf"{where}\['{key}'\]"):
            opt.update(grads, state, params)
    for k, (p, g) in before.items():
        assert np.array_equal(params[k], p, equal_nan=True)
        assert np.array_equal(grads[k], g, equal_nan=True)


@pytest.mark.parametrize("prox", ["sphere", "joint"])
@pytest.mark.parametrize("momentum, regularize_bias", [(0.0, False), (0.9, False), (0.0, True)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes", [[6, 7, 5, 6, 4, 3], [5, 9, 3], [6, 7, 5, 6, 3]])
def test_update_with_numba_kernels_is_bitwise_the_numpy_update(
    prox, momentum, regularize_bias, dtype, sizes
):
    """The optional numba kernels (refreg.pathprox._accel) change no bit of the update."""
    pytest.importorskip("numba", reason="numba (the optional 'fast' extra) is not installed")
    from refreg import _numba

    net = MLP(sizes)
    rng = np.random.default_rng(11)
    opt = pathprox(
        cosine(0.3, 20), 0.05, groups=pair_groups(net), prox=prox, momentum=momentum,
        regularize_bias=regularize_bias,
    )  # fmt: skip
    start = {k: v.astype(dtype) for k, v in net.init(rng=4).items()}
    runs = []
    for flag in (True, False):
        previous = _numba.set_enabled(flag)
        try:
            params, state, rng = start, opt.init(start), np.random.default_rng(11)
            for _ in range(4):
                g = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
                params, state = opt.update(g, state, params)
        finally:
            _numba.set_enabled(previous)
        runs.append(params)
    for key in start:
        assert np.array_equal(
            runs[0][key].view(f"u{runs[0][key].itemsize}"),
            runs[1][key].view(f"u{runs[1][key].itemsize}"),
        ), key


@given(
    st.sampled_from(["float32", "float64"]).flatmap(
        lambda d: hnp.arrays(
            d,
            st.integers(1, 40).map(lambda n: (2, n)),
            elements=st.one_of(
                st.sampled_from([0.0, 1e-6, 0.5, 1.0, 2.0]),
                st.floats(0, 2.0**100, width=8 * np.dtype(d).itemsize),
            ),
        )
    ),
    st.sampled_from([0.0, 1e-6, 0.01, 0.3, 0.5, 0.999]),
)
def test_host_norm_product_factors_are_bitwise_the_reference(norms, tau):
    """The fused update's NumPy factors of the joint prox equal prox._norm_product_factors bit for bit,
    ties (a = τb), zero norms and both-zero units included."""
    from refreg.pathprox.fused import _host_norm_product_factors
    from refreg.pathprox.prox import _norm_product_factors

    alpha, beta = norms[0], norms[1]
    beta[::3] = (tau * alpha[::3]).astype(alpha.dtype)  # ties with the cone's edge
    for a, b in ((alpha, beta), (beta, alpha)):
        got, ref = _host_norm_product_factors(a, b, tau), _norm_product_factors(np, a, b, tau)
        for x, y in zip(got, ref, strict=True):
            assert x.dtype == y.dtype
            assert np.array_equal(x.view(f"u{x.itemsize}"), y.view(f"u{y.itemsize}"))
