"""Speed paths of the nets against their plain versions, bit for bit (the optimizers': test_optim_fused.py)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refreg import MLP
from refreg.nn.activations import ACTIVATIONS, zero_where_numpy

SPECIALS = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1.0, -1.0]


def _arrays(dtype):
    return hnp.arrays(
        dtype,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=9),
        elements=st.one_of(
            st.sampled_from(SPECIALS), st.floats(width=8 * np.dtype(dtype).itemsize)
        ),
    )


def _bits(a):
    return a.view(f"u{a.dtype.itemsize}")


@given(st.sampled_from(["float32", "float64"]).flatmap(lambda d: st.tuples(_arrays(d), _arrays(d))))
def test_zero_where_is_bitwise_numpy_where(pair):
    z, da = pair
    da = np.resize(da, z.shape).astype(z.dtype)
    for cond in (z < 0, z <= 0):
        expected = np.where(cond, np.zeros_like(z), z)
        np.testing.assert_array_equal(_bits(zero_where_numpy(cond, z)), _bits(expected))
        expected = np.where(cond, np.zeros_like(da), da)
        np.testing.assert_array_equal(_bits(zero_where_numpy(cond, da)), _bits(expected))


def test_relu_speed_path_is_the_reference_on_special_values():
    relu = ACTIVATIONS["relu"]
    z = np.array(SPECIALS * 3, dtype=np.float32).reshape(5, 6)
    da = np.array(SPECIALS[::-1] * 3, dtype=np.float32).reshape(5, 6)
    a = relu.forward(z)
    assert a.dtype == np.float32 and a.shape == z.shape
    np.testing.assert_array_equal(_bits(a), _bits(np.where(z < 0, np.zeros_like(z), z)))
    dz = relu.backward(z, a, da)
    np.testing.assert_array_equal(_bits(dz), _bits(np.where(z <= 0, np.zeros_like(da), da)))
    # a strided (non-contiguous) input takes the same path and the same bits
    np.testing.assert_array_equal(_bits(relu.forward(z.T)), _bits(a.T))


def test_value_and_grad_skips_only_the_input_gradient():
    net = MLP([7, 6, 5, 3])
    params = net.init(rng=0, dtype="float32")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 7)).astype(np.float32)
    y = rng.integers(0, 3, size=9)
    from refreg.nn.losses import softmax_cross_entropy

    out, cache = net.forward(params, x)
    value, grad_out = softmax_cross_entropy(out, y)
    grads_full, grad_x = net.backward(params, cache, grad_out)
    assert grad_x.shape == x.shape
    value2, grads = net.value_and_grad(params, x, y)
    assert _bits(np.asarray(value2)).tobytes() == _bits(np.asarray(value)).tobytes()
    for key in params:
        assert grads[key].dtype == np.float32
        np.testing.assert_array_equal(_bits(grads[key]), _bits(grads_full[key]))


@given(
    st.sampled_from(["float32", "float64"]).flatmap(_arrays),
    st.booleans(),
    st.sampled_from(["C", "F"]),
)
def test_all_finite_is_the_exact_test(x, nonnegative, order):
    from refreg._backend import all_finite

    x = np.asarray(x, order=order)
    expected = bool(np.all(np.isfinite(x)) and (not nonnegative or np.all(x >= 0)))
    assert all_finite(x, nonnegative=nonnegative) is expected


def test_all_finite_when_squares_overflow():
    from refreg._backend import all_finite

    x = np.full(10, 3e38, dtype=np.float32)  # finite, but x·x overflows: the exact test decides
    assert all_finite(x) and all_finite(x, nonnegative=True)
    assert not all_finite(-x, nonnegative=True)


@given(
    st.integers(1, 5000),
    st.sampled_from([128, 200, 1024, 10**9]),
    st.sampled_from(["float32", "float64"]),
)
def test_square_sum_is_numpy_pairwise_sum_bitwise(n, block, dtype):
    from refreg import _backend, _numba
    from refreg.cpr._fused import square_sum

    x = (np.random.default_rng(n).standard_normal(n) * 10).astype(dtype)
    old, numba_was = (
        _backend.FUSED_BLOCK,
        _numba.set_enabled(False),
    )  # the NumPy blocks (numba: test_optim_accel)
    _backend.FUSED_BLOCK = block
    try:
        got = square_sum(x)
    finally:
        _backend.FUSED_BLOCK = old
        _numba.set_enabled(numba_was)
    assert _bits(np.asarray(got)).tobytes() == _bits(np.asarray(np.sum(x * x))).tobytes()


@given(st.integers(1, 20000), st.sampled_from(["float32", "float64"]))
def test_pairwise_leaves_is_numpys_summation_tree(n, dtype):
    # NumPy's own sums of the leaves, added in the program's postfix order, must be np.sum bit for bit
    from refreg._pairwise import PAIRWISE_LEAF, pairwise_leaves

    x = (np.random.default_rng(n).standard_normal(n) * 10).astype(dtype)
    bounds, ops = pairwise_leaves(n)
    assert bounds[0] == 0 and bounds[-1] == n and np.all(np.diff(bounds) >= 1)
    assert np.all(np.diff(bounds) <= PAIRWISE_LEAF) and (
        n <= PAIRWISE_LEAF or np.diff(bounds).min() >= 64
    )
    leaves = iter(np.add.reduce(x[a:b]) for a, b in itertools.pairwise(bounds))
    stack = []
    for op in ops:
        stack.append(next(leaves) if op == 0 else stack.pop(-2) + stack.pop())
    assert len(stack) == 1 and next(leaves, None) is None
    assert _bits(np.asarray(stack[0])).tobytes() == _bits(np.asarray(np.sum(x))).tobytes()


def test_square_sum_of_a_large_matrix_is_bitwise():
    from refreg.cpr._fused import square_sum

    x = np.random.default_rng(0).standard_normal((701, 1283)).astype(np.float32)
    assert square_sum(x) == np.sum(x * x)


def test_sparse_regularizers_on_numpy_itself_are_bitwise_the_array_api_path():
    import array_api_compat.numpy as compat_np

    from refreg.sparse import REGULARIZERS

    rng = np.random.default_rng(3)
    Ws = [rng.standard_normal((13, 9)).astype(np.float32), rng.standard_normal((9, 4)) * 1e-3]
    Ws[0][2, :] = 0.0  # a zero row and a zero entry exercise the 0·log 0 and sign(0) branches
    Ws[1][1, 1] = 0.0
    Ws[1] = Ws[1].astype(np.float32)
    for name, reg in REGULARIZERS.items():
        fast_value, fast_grads = reg._compute(np, Ws, need_grad=True)
        ref_value, ref_grads = reg._compute(compat_np, Ws, need_grad=True)
        assert _bits(np.asarray(fast_value)).tobytes() == _bits(np.asarray(ref_value)).tobytes(), (
            name
        )
        for f, r in zip(fast_grads, ref_grads, strict=True):
            assert f.dtype == r.dtype == np.float32, name
            np.testing.assert_array_equal(_bits(f), _bits(r))


def _finite(dtype):
    return hnp.arrays(
        dtype,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=9),
        elements=st.one_of(
            st.sampled_from([0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0]),
            st.floats(width=8 * np.dtype(dtype).itemsize, allow_nan=False, allow_infinity=False),
        ),
    )


@given(st.sampled_from(["float32", "float64"]).flatmap(lambda d: st.tuples(_finite(d), _finite(d))))
def test_times_sign_is_bitwise_g_times_sign(pair):
    from refreg.sparse._matrices import _times_sign

    W, g = pair
    g = np.resize(g, W.shape).astype(W.dtype)
    expected = g * np.sign(W)
    # the caller's promise, honest or not: with a zero in W the plain product must be taken
    got = _times_sign(np, g.copy(), W, bool(np.all(W != 0)))
    np.testing.assert_array_equal(_bits(got), _bits(expected))
    nz = W.copy()
    nz[nz == 0] = 1.0
    np.testing.assert_array_equal(
        _bits(_times_sign(np, g.copy(), nz, True)), _bits(g * np.sign(nz))
    )


def test_spatial_entropy_sign_speed_path_is_bitwise_the_plain_product(monkeypatch):
    import refreg.sparse.entropy as entropy
    from refreg import _numba

    # the NumPy lines (with numba installed the kernels would replace the XOR; tests/test_sparse_accel.py)
    monkeypatch.setitem(_numba._STATE, "enabled", False)

    rng = np.random.default_rng(5)
    Ws = [rng.standard_normal((13, 9)).astype(np.float32), rng.standard_normal((9, 4))]
    reg = entropy.SpatialEntropy()
    for dtype in (np.float32, np.float64):
        ws = [W.astype(dtype) for W in Ws]
        fast = reg._compute(np, ws, need_grad=True)
        with monkeypatch.context() as m:
            m.setattr(entropy, "_times_sign", lambda xp, g, W, nz: g * xp.sign(W))
            plain = reg._compute(np, ws, need_grad=True)
        assert _bits(np.asarray(fast[0])).tobytes() == _bits(np.asarray(plain[0])).tobytes()
        for f, p in zip(fast[1], plain[1], strict=True):
            np.testing.assert_array_equal(_bits(f), _bits(p))


def test_log_share_on_numpy_is_bitwise_the_array_api_path():
    import array_api_compat.numpy as compat_np

    from refreg.sparse.entropy import _log_share

    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64):
        m = rng.random(50).astype(dtype)
        m[[3, 17]] = 0.0
        m[5] = np.finfo(dtype).smallest_subnormal
        log_S = np.log(np.asarray(m.sum()))
        fast = _log_share(np, m, log_S)
        ref = _log_share(compat_np, compat_np.asarray(m), compat_np.asarray(log_S))
        assert fast.dtype == ref.dtype == dtype
        np.testing.assert_array_equal(_bits(fast), _bits(np.asarray(ref)))
