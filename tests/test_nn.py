"""Hand-written backward passes against central finite differences (float64), losses, backends, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import asnumpy
from hypothesis import assume, given
from hypothesis import strategies as st

from refreg import MLP
from refreg.nn import ACTIVATIONS, losses
from refreg.testing import check_vjp, numerical_grad, relative_error

# central differences at eps = 1e-6 in float64 agree with an exact gradient to ~1e-9 relative
GRAD_TOL = 1e-7


@st.composite
def nets_and_batches(draw):
    activation = draw(st.sampled_from(["relu", "tanh", "identity"]))
    depth = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 5)) for _ in range(depth + 1)]
    bias = draw(st.booleans())
    n = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.floats(0.1, 3.0))
    return MLP(sizes, activation, bias), n, seed, scale


def _min_abs_preactivation(net, params, x):
    _, cache = net.forward(params, x)
    hidden = cache.z[:-1]
    return min((float(np.min(np.abs(z))) for z in hidden), default=np.inf)


@given(nets_and_batches(), st.sampled_from(["mse", "softmax_cross_entropy"]))
def test_mlp_gradients_match_central_differences(case, loss_name):
    net, n, seed, scale = case
    rng = np.random.default_rng(seed)
    params = net.init(rng=rng, scale=scale)
    x = rng.standard_normal((n, net.sizes[0]))
    if loss_name == "mse":
        y = rng.standard_normal((n, net.sizes[-1]))
    else:
        y = rng.integers(0, net.sizes[-1], size=n)
    if net.activation == "relu":
        # keep every ReLU pre-activation away from the kink, where the derivative jumps
        assume(_min_abs_preactivation(net, params, x) > 1e-3)

    def loss_of(p):
        return float(net.value_and_grad(p, x, y, loss_name)[0])

    value, grads = net.value_and_grad(params, x, y, loss_name)
    numeric = numerical_grad(loss_of, params)
    # central differences carry round-off ~ eps_mach·|L|/h = 2e-10·|L| at h = 1e-6: allow 50x that on top
    roundoff = 1e-8 * max(1.0, abs(float(value)))
    for key in params:
        error = float(np.max(np.abs(grads[key] - numeric[key]), initial=0.0))
        scale = max(float(np.max(np.abs(grads[key]), initial=0.0)), 1e-8)
        assert error <= GRAD_TOL * scale + roundoff, (key, error, scale)


@given(nets_and_batches())
def test_input_gradient_passes_the_vjp_dot_product_test(case):
    net, n, seed, scale = case
    rng = np.random.default_rng(seed)
    params = net.init(rng=rng, scale=scale)
    x = rng.standard_normal((n, net.sizes[0]))
    if net.activation == "relu":
        assume(_min_abs_preactivation(net, params, x) > 1e-3)

    def vjp(v):
        _, cache = net.forward(params, x)
        return net.backward(params, cache, v)[1]

    analytic, numeric = check_vjp(lambda z: net.predict(params, z), vjp, x, rng)
    assert abs(analytic - numeric) <= GRAD_TOL * max(1.0, abs(numeric))


@given(
    st.integers(1, 6),
    st.integers(2, 6),
    st.integers(0, 2**32 - 1),
    st.floats(1e-2, 1e3),
)
def test_cross_entropy_gradient_and_stability(n, n_classes, seed, spread):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, n_classes)) * spread
    labels = rng.integers(0, n_classes, size=n)
    value, grad = losses.softmax_cross_entropy(logits, labels)
    assert np.isfinite(value) and value >= 0
    # the reference: log-sum-exp with scipy, exact in float64 for any spread
    from scipy.special import logsumexp

    expected = np.mean(logsumexp(logits, axis=1) - logits[np.arange(n), labels])
    # logsumexp(z) − z_y cancels: its rounding error is relative to max|z|, not to the (tiny) difference
    # (n=1, C=2, spread 36 gives 9.3e-5 from logits of size 36: relative error 4e-12, absolute 4e-16)
    tol = 1e-12 * abs(expected) + 8 * np.finfo(np.float64).eps * float(np.abs(logits).max())
    assert abs(float(value) - expected) <= tol
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)
    if spread <= 10:
        numeric = numerical_grad(
            lambda p: losses.softmax_cross_entropy(p["z"], labels)[0], {"z": logits}
        )
        assert relative_error(grad, numeric["z"]) <= GRAD_TOL


def test_cross_entropy_survives_huge_logits():
    value, grad = losses.softmax_cross_entropy(np.array([[1e300, -1e300, 0.0]]), np.array([1]))
    assert np.isfinite(value) and value > 1e299
    assert np.all(np.isfinite(grad))


def test_mse_value_and_gradient():
    pred = np.array([[1.0, 2.0], [3.0, 5.0]])
    target = np.array([[0.0, 2.0], [1.0, 1.0]])
    value, grad = losses.mse(pred, target)
    assert value == pytest.approx((1 + 0 + 4 + 16) / 4)
    np.testing.assert_allclose(grad, 2 * (pred - target) / 4)


def test_relu_derivative_at_zero_is_zero():
    net = MLP([1, 1, 1], bias=False)
    params = {"layers.0.weight": np.array([[1.0]]), "layers.1.weight": np.array([[1.0]])}
    value, grads = net.value_and_grad(params, np.array([[0.0]]), np.array([[1.0]]), "mse")
    assert grads["layers.0.weight"][0, 0] == 0.0
    assert value == 1.0


def test_forward_backward_agree_across_backends(xp):
    net = MLP([6, 5, 4, 3], activation="relu")
    params_np = net.init(rng=3)
    params = net.init(rng=3, xp=xp)
    for k in params:
        np.testing.assert_array_equal(asnumpy(params[k]), params_np[k])
    rng = np.random.default_rng(0)
    x_np, y_np = rng.standard_normal((7, 6)), rng.integers(0, 3, size=7)
    value, grads = net.value_and_grad(params, xp.asarray(x_np), xp.asarray(y_np))
    value_np, grads_np = net.value_and_grad(params_np, x_np, y_np)
    assert relative_error(asnumpy(value), value_np) <= 1e-15
    for k in grads:
        assert type(grads[k]) is type(params[k])
        assert relative_error(asnumpy(grads[k]), grads_np[k]) <= 1e-14


def test_float32_stays_float32(xp):
    net = MLP([3, 4, 2], activation="tanh")
    params = net.init(rng=0, dtype="float32", xp=xp)
    x = xp.asarray(np.ones((2, 3)), dtype=xp.float32)
    value, grads = net.value_and_grad(params, x, xp.asarray(np.array([0, 1])))
    assert value.dtype == xp.float32
    assert all(g.dtype == xp.float32 for g in grads.values())


def test_init_is_reproducible_and_uses_pytorch_bounds():
    net = MLP([100, 50, 10])
    a, b = net.init(rng=7), net.init(rng=np.random.default_rng(7))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert np.max(np.abs(a["layers.0.weight"])) <= 0.1
    assert np.max(np.abs(a["layers.0.weight"])) > 0.099
    big = net.init(rng=7, scale=12.0)
    np.testing.assert_array_equal(big["layers.0.weight"], 12.0 * a["layers.0.weight"])
    np.testing.assert_array_equal(big["layers.0.bias"], a["layers.0.bias"])
    assert not np.array_equal(net.init(rng=8)["layers.0.weight"], a["layers.0.weight"])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: MLP([3]), ValueError, "sizes must be a sequence of >= 2 positive ints"),
        (lambda: MLP([3, 0]), ValueError, "sizes must be"),
        (
            lambda: MLP([3, 2], activation="sigmoid"),
            ValueError,
            "activation must be one of 'relu', 'tanh', 'identity'; got 'sigmoid'",
        ),
        (
            lambda: MLP([3, 2]).init(dtype="int32"),
            TypeError,
            "dtype must be 'float32' or 'float64'",
        ),
        (lambda: MLP([3, 2]).init(rng=-1), ValueError, "rng seed must be a non-negative int"),
        (
            lambda: MLP([3, 2]).init(rng="seed"),
            TypeError,
            "rng must be None, an int or a numpy.random.Generator",
        ),
        (
            lambda: MLP([3, 2]).forward(MLP([3, 2]).init(rng=0), np.ones((4, 2))),
            ValueError,
            r"x must have shape \(n, 3\)",
        ),
        (
            lambda: MLP([3, 2]).forward(MLP([3, 2]).init(rng=0), np.ones((4, 3), dtype=np.float32)),
            TypeError,
            "x must have the params' dtype",
        ),
        (
            lambda: MLP([3, 2]).forward({"layers.0.weight": np.ones((2, 3))}, np.ones((1, 3))),
            ValueError,
            r"missing \['layers.0.bias'\]",
        ),
        (
            lambda: MLP([3, 2]).forward(
                {"layers.0.weight": np.ones((3, 2)), "layers.0.bias": np.ones(2)}, np.ones((1, 3))
            ),
            ValueError,
            r"params\['layers.0.weight'\] must have shape \(2, 3\)",
        ),
        (
            lambda: MLP([3, 2]).value_and_grad(
                MLP([3, 2]).init(rng=0), np.ones((1, 3)), np.array([0]), loss="hinge"
            ),
            ValueError,
            "loss must be one of 'softmax_cross_entropy', 'mse'",
        ),
        (
            lambda: losses.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3])),
            ValueError,
            r"labels must lie in \[0, 2\]",
        ),
        (
            lambda: losses.softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])),
            TypeError,
            "labels must be integer class indices",
        ),
        (
            lambda: losses.mse(np.zeros((2, 3)), np.zeros((3, 2))),
            ValueError,
            r"target must have the shape of pred \(2, 3\)",
        ),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_mixed_array_libraries_are_a_type_error():
    import array_api_strict as xs

    net = MLP([3, 2])
    params = net.init(rng=0)
    params["layers.0.bias"] = xs.asarray(params["layers.0.bias"])
    with pytest.raises(TypeError, match="different array libraries"):
        net.forward(params, np.ones((1, 3)))


def test_relu_propagates_nan_and_matches_torch_on_special_values():
    z = np.array([-0.0, 0.0, np.nan, -np.inf, np.inf, -1.0, 2.0])
    a = ACTIVATIONS["relu"].forward(z)
    # torch.relu: [-0., 0., nan, 0., inf, 0., 2.]; grad of sum: [0, 0, 1, 0, 1, 0, 1]
    np.testing.assert_array_equal(a, [-0.0, 0.0, np.nan, 0.0, np.inf, 0.0, 2.0])
    assert np.signbit(a[0]) and not np.signbit(a[1])
    np.testing.assert_array_equal(
        ACTIVATIONS["relu"].backward(z, a, np.ones(7)), [0, 0, 1, 0, 1, 0, 1]
    )


def test_nan_in_a_hidden_weight_reaches_the_output():
    net = MLP([3, 4, 2])
    params = net.init(rng=0)
    params["layers.0.weight"][1, 2] = np.nan
    out = net.predict(params, np.ones((2, 3)))
    assert np.isnan(out).all()  # where(z > 0, z, 0) turned this into a finite output


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint16])
def test_cross_entropy_with_narrow_integer_labels_and_many_classes(dtype):
    """Labels of any integer dtype give the int64 result, also with more classes than the dtype holds: an
    ``arange(C)`` in uint8 wraps at 256 and marked label k ≤ 43 a second time at column 256 + k (value 7.53
    instead of 5.97 for C = 300; found by an audit against torch)."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 300))
    labels = np.array([0, 5, 44, 100])
    expected = losses.softmax_cross_entropy(logits, labels)
    value, grad = losses.softmax_cross_entropy(logits, labels.astype(dtype))
    assert value == expected[0]
    np.testing.assert_array_equal(grad, expected[1])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert value == pytest.approx(-np.mean(np.log(p[np.arange(4), labels])), rel=1e-14)
