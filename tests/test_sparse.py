"""Tests of refreg.sparse: gradients vs central differences, scale invariance, entropy properties, penalty."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import asnumpy
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refreg import sparse
from refreg.testing import numerical_grad, relative_error

NAMES = list(sparse.REGULARIZERS)
INVARIANT = [n for n, r in sparse.REGULARIZERS.items() if r.scale_invariant]


def matrices(max_side=6, low=0.05, high=3.0):
    """Hypothesis-drawn float64 matrices with |w| in [low, high] (away from the kink of |w| at 0)."""
    shapes = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=max_side)
    mags = st.floats(low, high)
    return shapes.flatmap(
        lambda s: st.tuples(
            hnp.arrays(np.float64, s, elements=mags),
            hnp.arrays(np.bool_, s),
        ).map(lambda t: np.where(t[1], -t[0], t[0]))
    )


def fd_grad(reg, W, eps=1e-6):
    return numerical_grad(lambda p: float(reg.value(p["W"])), {"W": W}, eps)["W"]


# -------------------------------------------------------------------------------- gradients vs FD
@pytest.mark.parametrize("name", NAMES)
@given(W=matrices())
def test_gradient_matches_central_differences(name, W):
    reg = sparse.REGULARIZERS[name]
    value, grad = reg.value_and_grad(W)
    assert float(value) == pytest.approx(float(reg.value(W)), rel=1e-12, abs=1e-12)
    np.testing.assert_array_equal(reg.grad(W), grad)
    # FD round-off is about 1e-16·|R|/eps = 1e-10·|R|: the floor keeps a stationary point (grad 0, e.g. a
    # constant matrix) from turning that round-off into a large relative error
    assert relative_error(grad, fd_grad(reg, W), floor=0.05 * max(1.0, abs(float(value)))) < 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_gradient_with_zero_rows_and_columns(name):
    """Zero rows/columns: FD in the nonzero entries still agrees (the zeros sit at the kink: skip them)."""
    rng = np.random.default_rng(3)
    W = rng.uniform(0.2, 2.0, (5, 4)) * rng.choice([-1.0, 1.0], (5, 4))
    W[1, :] = 0.0
    W[:, 2] = 0.0
    reg = sparse.REGULARIZERS[name]
    grad = reg.grad(W)
    num = fd_grad(reg, W, eps=1e-7)
    live = W != 0
    assert relative_error(grad[live], num[live]) < 1e-5
    assert np.all(np.isfinite(grad))
    if name not in ("l2",):  # the sign(0) = 0 subgradient; L2's gradient w is 0 there anyway
        assert np.all(grad[~live] == 0)


def test_spatial_entropy_gradient_formula_by_hand():
    """The closed form (docs/derivations.md, "The spatial entropy"), evaluated independently with NumPy on a 2 x 2 example."""
    W = np.array([[1.0, -2.0], [0.0, 3.0]])
    a = np.abs(W)
    S = a.sum()
    r, c = a.sum(1) / S, a.sum(0) / S
    Hr, Hc = -(r * np.log(r)).sum(), -(c * np.log(c)).sum()
    expected = -np.sign(W) * ((np.log(r) + Hr)[:, None] + (np.log(c) + Hc)[None, :]) / S
    value, grad = sparse.REGULARIZERS["spatial_entropy"].value_and_grad(W)
    assert float(value) == pytest.approx(Hr + Hc, rel=1e-14)
    np.testing.assert_allclose(grad, expected, rtol=1e-13, atol=0)
    # rows [1/6+2/6, 3/6] -> H(r) = log 2; columns [1/6, 5/6]
    assert Hr == pytest.approx(math.log(2.0))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scope", sparse.SCOPES)
@given(seed=st.integers(0, 2**32 - 1))
def test_penalty_gradient_matches_central_differences(name, scope, seed):
    """penalty() over a small MLP's weights, per layer and network-wide, vs FD (biases get no gradient)."""
    rng = np.random.default_rng(seed)
    params = {
        "layers.0.weight": rng.uniform(0.1, 1.0, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4)),
        "layers.0.bias": rng.standard_normal(3),
        "layers.1.weight": rng.uniform(0.1, 1.0, (2, 3)) * rng.choice([-1.0, 1.0], (2, 3)),
    }
    alpha = 0.7
    _value, grads = sparse.penalty(params, name, alpha, scope=scope)
    assert set(grads) == {"layers.0.weight", "layers.1.weight"}
    num = numerical_grad(lambda p: float(sparse.penalty(p, name, alpha, scope=scope)[0]), params)
    for key, g in grads.items():
        assert relative_error(g, num[key]) < 1e-6, key
    assert np.all(num["layers.0.bias"] == 0)


def test_network_spatial_entropy_is_entropy_of_concatenated_marginals():
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((3, 4)), rng.standard_normal((2, 3))]
    S = sum(np.abs(W).sum() for W in Ws)
    r = np.concatenate([np.abs(W).sum(1) for W in Ws]) / S
    c = np.concatenate([np.abs(W).sum(0) for W in Ws]) / S
    expected = -(r * np.log(r)).sum() - (c * np.log(c)).sum()
    params = {"a": Ws[0], "b": Ws[1]}
    value, _ = sparse.penalty(params, "spatial_entropy", 1.0, scope="network")
    assert float(value) == pytest.approx(expected, rel=1e-13)
    layer, _ = sparse.penalty(params, "spatial_entropy", 1.0, scope="layer")
    per = sum(float(sparse.REGULARIZERS["spatial_entropy"].value(W)) for W in Ws)
    assert float(layer) == pytest.approx(per, rel=1e-13)
    assert abs(float(layer) - float(value)) > 1e-3  # the two scopes are different functions


@pytest.mark.parametrize("name", ["l1", "l2", "group_lasso"])
def test_additive_regularizers_have_equal_scopes(name):
    rng = np.random.default_rng(1)
    params = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal((2, 3))}
    v1, g1 = sparse.penalty(params, name, 0.3, scope="layer")
    v2, g2 = sparse.penalty(params, name, 0.3, scope="network")
    assert float(v1) == pytest.approx(float(v2), rel=1e-13)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-13)


# ---------------------------------------------------------------------------- scale invariance
@pytest.mark.parametrize("name", INVARIANT)
@given(W=matrices(low=1e-3), c=st.floats(1e-3, 1e3), negative=st.booleans())
def test_scale_invariance_and_euler_identity(name, W, c, negative):
    reg = sparse.REGULARIZERS[name]
    c = -c if negative else c
    value, grad = reg.value_and_grad(W)
    assert float(reg.value(c * W)) == pytest.approx(float(value), rel=1e-12, abs=1e-12)
    # degree-0 homogeneity: <grad R(W), W> = 0 and grad R(cW) = grad R(W) / c
    # <grad, W> is itself scale-free: compare with R and the sum of |grad_ij w_ij| (round-off ~ 1e-16 each)
    scale = max(1.0, abs(float(value)), float(np.sum(np.abs(grad * W))))
    assert abs(float(np.sum(grad * W))) <= 1e-12 * W.size * scale
    natural = max(1.0, abs(float(value))) / np.abs(W).max()  # the size of a degree -1 gradient
    np.testing.assert_allclose(reg.grad(c * W) * c, grad, rtol=1e-9, atol=1e-12 * W.size * natural)


@pytest.mark.parametrize("name", INVARIANT)
@pytest.mark.parametrize("scope", sparse.SCOPES)
def test_network_scale_invariance(name, scope):
    rng = np.random.default_rng(2)
    params = {"a": rng.standard_normal((4, 5)), "b": rng.standard_normal((3, 4))}
    v, grads = sparse.penalty(params, name, 1.0, scope=scope)
    scaled = {k: 37.0 * w for k, w in params.items()}
    assert float(sparse.penalty(scaled, name, 1.0, scope=scope)[0]) == pytest.approx(
        float(v), rel=1e-12
    )
    euler = sum(float(np.sum(grads[k] * params[k])) for k in params)
    assert abs(euler) < 1e-12 * sum(float(np.abs(g).sum()) for g in grads.values())


@pytest.mark.parametrize("name,degree", [("l1", 1), ("l2", 2), ("group_lasso", 1)])
def test_lp_regularizers_are_not_scale_invariant(name, degree):
    reg = sparse.REGULARIZERS[name]
    assert not reg.scale_invariant
    W = np.random.default_rng(4).standard_normal((3, 5))
    assert float(reg.value(2.0 * W)) == pytest.approx(2.0**degree * float(reg.value(W)), rel=1e-12)
    assert float(reg.value(2.0 * W)) != pytest.approx(float(reg.value(W)), rel=1e-3)
    # Euler for degree k: <grad R, W> = k R != 0
    assert float(np.sum(reg.grad(W) * W)) == pytest.approx(degree * float(reg.value(W)), rel=1e-12)


def test_scale_invariant_set_is_as_documented():
    assert set(INVARIANT) == {
        "spatial_entropy",
        "element_entropy",
        "hoyer",
        "hoyer_square",
        "group_hoyer_square",
    }


# ---------------------------------------------------------------------------- entropy properties
def test_spatial_entropy_depends_on_arrangement_element_entropy_does_not():
    W = np.array([[1.0, 2.0, 0.5], [0.25, 3.0, 1.5]])
    spatial, element = (
        sparse.REGULARIZERS["spatial_entropy"],
        sparse.REGULARIZERS["element_entropy"],
    )
    moved = W.copy()
    moved[0, 0], moved[1, 0] = (
        W[1, 0],
        W[0, 0],
    )  # move mass between rows (same column): c fixed, r changes
    assert abs(float(spatial.value(moved)) - float(spatial.value(W))) > 1e-3
    assert float(element.value(moved)) == pytest.approx(float(element.value(W)), rel=1e-14)


@given(W=matrices(max_side=5, low=0.0), seed=st.integers(0, 2**32 - 1))
def test_element_entropy_is_permutation_invariant(W, seed):
    perm = np.random.default_rng(seed).permutation(W.size)
    shuffled = W.reshape(-1)[perm].reshape(
        W.shape[::-1]
    )  # any permutation, even into the transpose shape
    element = sparse.REGULARIZERS["element_entropy"]
    assert float(element.value(shuffled)) == pytest.approx(
        float(element.value(W)), rel=1e-12, abs=1e-14
    )


@given(W=matrices(max_side=7, low=0.0))
def test_entropy_bounds(W):
    m, n = W.shape
    s = float(sparse.REGULARIZERS["spatial_entropy"].value(W))
    e = float(sparse.REGULARIZERS["element_entropy"].value(W))
    assert -1e-12 <= s <= math.log(m) + math.log(n) + 1e-12
    assert -1e-12 <= e <= math.log(m * n) + 1e-12


def test_entropy_bounds_are_attained():
    ones = np.ones((3, 5))
    assert float(sparse.REGULARIZERS["spatial_entropy"].value(ones)) == pytest.approx(math.log(15))
    assert float(sparse.REGULARIZERS["element_entropy"].value(ones)) == pytest.approx(math.log(15))
    one_hot = np.zeros((3, 5))
    one_hot[1, 3] = -2.0
    for name in ("spatial_entropy", "element_entropy"):
        assert float(sparse.REGULARIZERS[name].value(one_hot)) == 0.0


def test_spatial_entropy_is_lowest_when_mass_fills_one_row_and_column():
    """Same element entropy (same multiset of magnitudes), lower spatial entropy when mass is grouped."""
    grouped = np.zeros((4, 4))
    grouped[0, :] = [1, 2, 3, 4]
    spread = np.diag([1.0, 2.0, 3.0, 4.0])
    spatial, element = (
        sparse.REGULARIZERS["spatial_entropy"],
        sparse.REGULARIZERS["element_entropy"],
    )
    assert float(element.value(grouped)) == pytest.approx(float(element.value(spread)))
    assert float(spatial.value(grouped)) < float(spatial.value(spread)) - 0.5


def test_hoyer_square_is_exp_renyi2_entropy():
    W = np.random.default_rng(5).standard_normal((4, 6))
    p = np.abs(W) / np.abs(W).sum()
    assert float(sparse.REGULARIZERS["hoyer_square"].value(W)) == pytest.approx(1 / np.sum(p**2))


# ---------------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_zero_and_extreme_matrices_are_finite(name, dtype):
    reg = sparse.REGULARIZERS[name]
    zero = np.zeros((4, 3), dtype=dtype)
    value, grad = reg.value_and_grad(zero)
    assert float(value) == 0.0 and np.all(grad == 0) and grad.dtype == dtype
    big = np.finfo(dtype).max / 4
    tiny = 1e-30 if dtype == np.float32 else 1e-200
    rng = np.random.default_rng(6)
    W = rng.standard_normal((4, 3)).astype(dtype)
    W[0, 0], W[1, 1], W[2, 2] = 0.0, 1e-40 if dtype == np.float64 else 1e-7, -3.0
    for scale in (1.0, tiny) if not reg.scale_invariant else (1.0, tiny, big):
        value, grad = reg.value_and_grad((W * dtype(scale)).astype(dtype))
        assert np.isfinite(float(value)) and np.all(np.isfinite(grad)), scale
    if reg.scale_invariant:
        # the scale-invariant ones are finite even where |W| is huge (the max-normalisation)
        huge = np.full((3, 3), big, dtype=dtype)
        value, grad = reg.value_and_grad(huge)
        assert np.isfinite(float(value)) and np.all(np.isfinite(grad))


def test_single_nonzero_entry_has_zero_entropy_gradient_everywhere():
    W = np.zeros((3, 4))
    W[2, 1] = 5.0
    for name in ("spatial_entropy", "element_entropy"):
        value, grad = sparse.REGULARIZERS[name].value_and_grad(W)
        assert float(value) == 0.0 and np.all(grad == 0)


# ---------------------------------------------------------------------------- backends
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backends_agree_with_numpy(xp, name, dtype):
    rng = np.random.default_rng(7)
    W = rng.standard_normal((5, 4))
    W[1, :] = 0.0
    reg = sparse.REGULARIZERS[name]
    Wx = xp.asarray(W, dtype=getattr(xp, dtype))
    value, grad = reg.value_and_grad(Wx)
    assert grad.dtype == Wx.dtype and value.dtype == Wx.dtype
    assert type(grad) is type(Wx)
    ref_v, ref_g = reg.value_and_grad(W)
    tol = 1e-12 if dtype == "float64" else 4 * math.sqrt(np.finfo(np.float32).eps)
    assert float(asnumpy(value)) == pytest.approx(float(ref_v), rel=tol, abs=tol)
    np.testing.assert_allclose(asnumpy(grad), ref_g, rtol=tol, atol=tol * np.abs(ref_g).max())
    np.testing.assert_array_equal(asnumpy(Wx), W.astype(dtype))  # input untouched


@pytest.mark.parametrize("scope", sparse.SCOPES)
def test_penalty_backends(xp, scope):
    rng = np.random.default_rng(8)
    host = {
        "w0": rng.standard_normal((4, 3)),
        "b0": rng.standard_normal(4),
        "w1": rng.standard_normal((2, 4)),
    }
    params = {k: xp.asarray(v) for k, v in host.items()}
    value, grads = sparse.penalty(params, "spatial_entropy", 0.5, scope=scope)
    ref_v, ref_g = sparse.penalty(host, "spatial_entropy", 0.5, scope=scope)
    assert float(asnumpy(value)) == pytest.approx(float(ref_v), rel=1e-12)
    for k in ref_g:
        np.testing.assert_allclose(asnumpy(grads[k]), ref_g[k], rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------- bad input
def test_bad_input_messages():
    W = np.ones((3, 2))
    params = {"w": W}
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        sparse.penalty(params, "l1", -0.1)
    with pytest.raises(
        ValueError, match=r"regularizer must be one of 'spatial_entropy'.*got 'entropy'"
    ):
        sparse.penalty(params, "entropy", 1.0)
    with pytest.raises(ValueError, match="scope must be one of"):
        sparse.penalty(params, "l1", 1.0, scope="global")
    with pytest.raises(TypeError, match="regularizer must be a name"):
        sparse.penalty(params, 3, 1.0)
    with pytest.raises(
        ValueError, match=r"W must be a 2-D weight matrix .* 1-D array of shape \(3,\)"
    ):
        sparse.REGULARIZERS["spatial_entropy"].value(np.ones(3))
    with pytest.raises(ValueError, match=r"3-D array of shape \(2, 2, 2\)"):
        sparse.REGULARIZERS["l1"].grad(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"params\['b'\] must be a 2-D weight matrix"):
        sparse.penalty({"w": W, "b": np.ones(3)}, "l1", 1.0, names=["w", "b"])
    with pytest.raises(ValueError, match="names must be a non-empty list of keys"):
        sparse.penalty(params, "l1", 1.0, names=["missing"])
    with pytest.raises(ValueError, match="params holds no 2-D weight matrix"):
        sparse.penalty({"b": np.ones(3)}, "l1", 1.0)
    with pytest.raises(TypeError, match="must have dtype float32 or float64"):
        sparse.REGULARIZERS["hoyer"].value(np.ones((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="m, n >= 1"):
        sparse.REGULARIZERS["hoyer"].value(np.ones((0, 2)))
    with pytest.raises(TypeError, match="share one dtype"):
        sparse.penalty({"a": W, "b": W.astype(np.float32)}, "l1", 1.0)


def test_penalty_does_not_touch_its_input_and_scales_with_alpha():
    rng = np.random.default_rng(9)
    params = {"w": rng.standard_normal((3, 3))}
    copy = {k: v.copy() for k, v in params.items()}
    v1, g1 = sparse.penalty(params, "element_entropy", 1.0)
    v2, g2 = sparse.penalty(params, "element_entropy", 2.5)
    np.testing.assert_array_equal(params["w"], copy["w"])
    assert float(v2) == pytest.approx(2.5 * float(v1))
    np.testing.assert_allclose(g2["w"], 2.5 * g1["w"])


def test_l2_gradient_is_a_copy():
    W = np.ones((2, 2))
    g = sparse.REGULARIZERS["l2"].grad(W)
    g[0, 0] = 5.0
    assert W[0, 0] == 1.0


# ------------------------------------------------------------------ scale invariance over the whole float range
_INT_W = np.array([[3.0, -1.0, 0.0, 7.0], [0.0, 2.0, -5.0, 1.0], [0.0, 0.0, 0.0, -4.0]])


@pytest.mark.parametrize("name", INVARIANT)
def test_scale_invariance_is_bitwise_for_every_power_of_two_down_to_subnormal(name):
    """``2^k W`` is exact for integer W (|w| <= 7) and k in [-1074, 1020]: R must not move by one bit."""
    reg = sparse.REGULARIZERS[name]
    value = reg.value(_INT_W)
    for k in range(-1074, 1021, 13):
        assert reg.value(np.ldexp(_INT_W, k)).tobytes() == value.tobytes(), k
    _, grad = reg.value_and_grad(_INT_W)
    for k in range(-1000, 1001, 50):  # ∇R(2^k W) = 2^-k ∇R(W), exactly while both are normal
        np.testing.assert_array_equal(
            reg.value_and_grad(np.ldexp(_INT_W, k))[1], np.ldexp(grad, -k)
        )


@pytest.mark.parametrize("name", INVARIANT)
def test_scale_invariance_for_c_from_1e_minus_320_to_1e300(name):
    """R(cW) = R(W) up to the rounding of cW itself: to 1e-12 where cW is normal, and R(V) = R(V/c) always."""
    reg = sparse.REGULARIZERS[name]
    rng = np.random.default_rng(0)
    W = rng.uniform(0.1, 1.0, (4, 5)) * rng.choice([-1.0, 1.0], (4, 5))
    W[1, 2] = 0.0
    value = float(reg.value(W))
    for c in np.logspace(-320, 300, 125):
        V = c * W
        got = float(reg.value(V))
        assert math.isfinite(got), c
        np.testing.assert_allclose(got, float(reg.value(V / c)), rtol=1e-12, err_msg=str(c))
        if c * 0.1 > np.finfo(np.float64).tiny:
            np.testing.assert_allclose(got, value, rtol=1e-12, err_msg=str(c))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.filterwarnings("ignore:overflow encountered")
@pytest.mark.parametrize("w", [5e-324, -5e-324, 1e-310, np.finfo(np.float64).max])
def test_extreme_single_weights_give_numbers(name, w):
    reg = sparse.REGULARIZERS[name]
    W = np.array([[w]])
    if name == "l2" and abs(w) > 1e154:  # ½w² is beyond float64: an error, not inf
        with pytest.raises(FloatingPointError, match="value at max"):
            reg.value_and_grad(W)
        return
    value, grad = reg.value_and_grad(W)
    assert not np.isnan(value) and not np.isnan(grad).any()
    if reg.scale_invariant:
        assert value == reg.value(np.array([[1.0]]))
        assert np.isfinite(grad).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_a_floating_point_error(name, bad):
    W = np.ones((2, 3))
    W[1, 1] = bad
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        sparse.REGULARIZERS[name].value_and_grad(W)


@pytest.mark.parametrize("name", INVARIANT)
def test_float32_subnormal_weights(name):
    reg = sparse.REGULARIZERS[name]
    W = _INT_W.astype(np.float32)
    value = reg.value(W)
    for k in (-149, -140, -126, -60, 0, 60, 120):
        V = np.ldexp(W, k).astype(np.float32)
        assert V.dtype == np.float32 and reg.value(V).dtype == np.float32
        assert reg.value(V).tobytes() == value.tobytes(), k


def test_gradient_beyond_the_dtype_range_is_an_error_not_inf():
    """R is scale-invariant, so its gradient grows like 1/max|W|: at subnormal weights the exact gradient can
    exceed float64. It used to come back as inf with an overflow warning (audit finding); the value stays
    exact, and a zero gradient (by symmetry) at the same scale is returned without a warning."""
    import warnings

    from refreg.sparse import SpatialEntropy

    W = np.array([[5e-324, 1e-323], [0.0, 5e-324]])
    with pytest.raises(FloatingPointError, match=r"gradient at max\|W\| = 1e-323 is beyond"):
        SpatialEntropy().value_and_grad(W)
    assert SpatialEntropy().value(W) == SpatialEntropy().value(W * 2.0**1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, g = SpatialEntropy().value_and_grad(np.array([[5e-324, 0.0], [0.0, 5e-324]]))
    assert not np.any(g)


def test_l2_value_is_finite_when_half_the_sum_of_squares_is():
    """½Σw² = 1.44e308 is a float64 although Σw² is not: halved before scaling back (a review finding)."""
    W = np.array([[1.2e154, 1.2e154]])
    value = sparse.REGULARIZERS["l2"].value(W)
    assert value == pytest.approx(1.44e308, rel=1e-15)
    with pytest.raises(FloatingPointError, match="value at max"):
        sparse.REGULARIZERS["l2"].value(np.array([[1.2e154, 1.2e154, 1.2e154]]) * 2)
