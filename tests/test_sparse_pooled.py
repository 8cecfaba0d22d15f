"""Tests of refreg.sparse.pooled: the position-aware (patch-pooled) spatial entropy, the second reconstruction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import asnumpy
from hypothesis import given
from hypothesis import strategies as st

from refreg import sparse
from refreg.sparse.pooled import PooledSpatialEntropy, patch_matrix
from refreg.testing import numerical_grad, relative_error


@st.composite
def layouts(draw):
    """(regularizer, W) with a random image layout, patch size and |w| in [0.05, 3] with random signs."""
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    bh, bw = draw(st.integers(1, h + 1)), draw(st.integers(1, w + 1))
    m = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    W = rng.uniform(0.05, 3.0, (m, h * w)) * rng.choice([-1.0, 1.0], (m, h * w))
    return PooledSpatialEntropy((h, w), (bh, bw)), W


def by_hand(W, P):
    a = np.abs(W)
    S = a.sum()
    r, q = a.sum(1) / S, (a.sum(0) @ P) / S

    def H(p):
        p = p[p > 0]
        return -(p * np.log(p)).sum()

    return H(r) + H(q)


@given(case=layouts())
def test_gradient_matches_central_differences_and_formula(case):
    reg, W = case
    value, grad = reg.value_and_grad(W)
    assert float(value) == pytest.approx(by_hand(W, reg._P), rel=1e-12, abs=1e-12)
    num = numerical_grad(lambda p: float(reg.value(p["W"])), {"W": W})["W"]
    assert relative_error(grad, num, floor=0.05 * max(1.0, abs(float(value)))) < 1e-6


@given(case=layouts(), c=st.floats(1e-3, 1e3), negative=st.booleans())
def test_scale_invariance_and_euler_identity(case, c, negative):
    reg, W = case
    c = -c if negative else c
    value, grad = reg.value_and_grad(W)
    assert float(reg.value(c * W)) == pytest.approx(float(value), rel=1e-12, abs=1e-12)
    scale = max(1.0, abs(float(value)), float(np.sum(np.abs(grad * W))))
    assert abs(float(np.sum(grad * W))) <= 1e-12 * W.size * scale
    assert reg.scale_invariant


def test_unit_patches_give_the_spatial_entropy():
    W = np.random.default_rng(0).standard_normal((5, 12))
    pooled = PooledSpatialEntropy((3, 4), (1, 1))
    ref = sparse.REGULARIZERS["spatial_entropy"]
    v1, g1 = pooled.value_and_grad(W)
    v2, g2 = ref.value_and_grad(W)
    assert float(v1) == pytest.approx(float(v2), rel=1e-13)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-15)


def test_position_aware_where_the_spatial_entropy_is_not():
    """Permuting pixels inside a patch keeps R; moving mass across patches changes it. The marginal spatial
    entropy cannot tell a compact blob from scattered pixels; the pooled one prefers the blob."""
    reg = PooledSpatialEntropy((4, 4), (2, 2))
    rng = np.random.default_rng(1)
    W = rng.uniform(0.1, 1.0, (3, 16))
    inside = np.arange(16)
    inside[[0, 1, 4, 5]] = [5, 4, 1, 0]  # a permutation within the top-left 2x2 patch
    assert float(reg.value(W[:, inside])) == pytest.approx(float(reg.value(W)), rel=1e-13)
    # four pixels: a 2x2 blob (one patch) vs the four corners (four patches), same mass
    blob, corners = np.zeros((1, 16)), np.zeros((1, 16))
    blob[0, [0, 1, 4, 5]] = 1.0
    corners[0, [0, 3, 12, 15]] = 1.0
    spatial = sparse.REGULARIZERS["spatial_entropy"]
    assert float(spatial.value(blob)) == pytest.approx(float(spatial.value(corners)), rel=1e-13)
    assert float(reg.value(blob)) == pytest.approx(0.0, abs=1e-15)
    assert float(reg.value(corners)) == pytest.approx(math.log(4.0), rel=1e-13)


def test_bounds_and_zero_handling():
    reg = PooledSpatialEntropy((3, 3), (2, 2))  # patches of 4, 2, 2 and 1 pixels: B = 4
    assert reg._P.shape == (9, 4) and np.all(reg._P.sum(1) == 1)
    np.testing.assert_array_equal(reg._P.sum(0), [4, 2, 2, 1])
    W = np.ones((2, 9))
    assert float(reg.value(W)) <= math.log(2) + math.log(4) + 1e-12
    Z = np.zeros((2, 9))
    value, grad = reg.value_and_grad(Z)
    assert float(value) == 0.0 and np.all(grad == 0)
    W = np.random.default_rng(2).standard_normal((3, 9))
    W[1] = 0.0
    W[:, [0, 1, 3, 4]] = 0.0  # an empty row and an empty patch
    grad = reg.grad(W)
    assert np.all(np.isfinite(grad)) and np.all(grad[W == 0] == 0)
    num = numerical_grad(lambda p: float(reg.value(p["W"])), {"W": W}, 1e-7)["W"]
    live = W != 0
    assert relative_error(grad[live], num[live]) < 1e-5


def test_penalty_on_the_input_layer_and_network_scope():
    rng = np.random.default_rng(3)
    params = {
        "layers.0.weight": rng.standard_normal((3, 6)),
        "layers.0.bias": rng.standard_normal(3),
        "layers.1.weight": rng.standard_normal((2, 3)),
    }
    reg = PooledSpatialEntropy((2, 3), (1, 2))
    names = ["layers.0.weight"]
    for scope in sparse.SCOPES:
        value, grads = sparse.penalty(params, reg, 0.5, names=names, scope=scope)
        num = numerical_grad(
            lambda p, s=scope: float(sparse.penalty(p, reg, 0.5, names=names, scope=s)[0]), params
        )
        assert relative_error(grads["layers.0.weight"], num["layers.0.weight"]) < 1e-6
    # two image matrices pooled network-wide: one mass S, concatenated marginals
    Ws = [rng.standard_normal((2, 6)), rng.standard_normal((3, 6))]
    value, grads = reg.value_and_grads(Ws)
    S = sum(np.abs(W).sum() for W in Ws)
    r = np.concatenate([np.abs(W).sum(1) for W in Ws]) / S
    q = np.concatenate([np.abs(W).sum(0) @ reg._P for W in Ws]) / S
    assert float(value) == pytest.approx(-(r * np.log(r)).sum() - (q * np.log(q)).sum(), rel=1e-12)


def test_backends_agree_with_numpy(xp):
    reg = PooledSpatialEntropy((2, 3), (2, 2))
    W = np.random.default_rng(4).standard_normal((4, 6))
    v, g = reg.value_and_grad(xp.asarray(W))
    v0, g0 = reg.value_and_grad(W)
    assert float(v) == pytest.approx(float(v0), rel=1e-12)
    np.testing.assert_allclose(asnumpy(g), g0, rtol=1e-12)
    v32, g32 = reg.value_and_grad(xp.asarray(W, dtype=xp.float32))
    assert g32.dtype == xp.float32
    assert float(v32) == pytest.approx(float(v0), rel=1e-5)


def test_bad_input_messages():
    with pytest.raises(ValueError, match=r"image_shape must be a pair of ints >= 1, got \(28, 0\)"):
        PooledSpatialEntropy((28, 0))
    with pytest.raises(ValueError, match="patch must be a pair"):
        PooledSpatialEntropy((28, 28), 4)
    with pytest.raises(ValueError, match=r"needs matrices with 784 columns, got shape \(3, 5\)"):
        PooledSpatialEntropy().value(np.ones((3, 5)))
    with pytest.raises(TypeError, match="float32 or float64"):
        PooledSpatialEntropy((1, 2)).value(np.ones((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="image_shape"):
        patch_matrix((2,), (1, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_magnitudes_are_finite_and_exact(dtype):
    """Huge and tiny weights: the power-of-two scaling keeps every sum finite and the value unchanged."""
    reg = PooledSpatialEntropy((2, 3), (2, 2))
    W = np.random.default_rng(5).standard_normal((4, 6)).astype(dtype)
    big, small = np.finfo(dtype).max / 8, np.finfo(dtype).tiny * 8
    v0 = float(reg.value(W))
    for c in (big / np.abs(W).max(), small / np.abs(W).max()):
        Wc = (W.astype(np.float64) * c).astype(dtype)
        value, grad = reg.value_and_grad(Wc)
        assert np.isfinite(float(value)) and np.all(np.isfinite(grad))
        assert float(value) == pytest.approx(v0, rel=1e-4 if dtype == np.float32 else 1e-10)
