"""The spatial entropy's optional numba kernels (refreg.sparse._accel) against its NumPy lines, bit for bit.

Skipped without numba (the ``fast`` extra); the NumPy code is the reference and runs everywhere else.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refreg import _numba
from refreg.sparse import _accel, penalty
from refreg.sparse.entropy import SpatialEntropy

pytest.importorskip("numba", reason="numba (the optional 'fast' extra) is not installed")


@pytest.fixture
def switch():
    """``switch(flag)`` sets the kernels on or off for one test."""
    previous = _numba.set_enabled(True)
    yield _numba.set_enabled
    _numba.set_enabled(previous)


def _bits(a):
    a = np.asarray(a).reshape(-1)
    return a.view(f"u{a.dtype.itemsize}").tolist()


def _matrices(dtype):
    tiny = float(np.finfo(dtype).smallest_subnormal)
    elements = st.one_of(
        st.sampled_from([0.0, -0.0, tiny, -tiny, 1.0, -1.0]),
        st.floats(width=8 * np.dtype(dtype).itemsize, allow_nan=False, allow_infinity=False),
    )
    return hnp.arrays(
        dtype, hnp.array_shapes(min_dims=2, max_dims=2, max_side=12), elements=elements
    )


def _or_error(fn, *args):
    try:
        return fn(*args)
    except FloatingPointError as err:
        return str(err)


def _both(switch, fn):
    switch(True)
    fast = fn()
    switch(False)
    return fast, fn()


@given(
    st.sampled_from(["float32", "float64"]).flatmap(
        lambda d: st.lists(_matrices(d), min_size=1, max_size=3)
    )
)
def test_spatial_entropy_kernels_are_bitwise_the_numpy_lines(Ws):
    previous = _numba.set_enabled(True)
    try:
        assert _accel.usable(np, Ws)
        fast, plain = _both(
            _numba.set_enabled, lambda: _or_error(SpatialEntropy()._compute, np, Ws, True)
        )
    finally:
        _numba.set_enabled(previous)
    if isinstance(
        plain, str
    ):  # subnormal weights whose exact gradient is beyond the dtype: both refuse
        assert fast == plain
        return
    assert _bits(fast[0]) == _bits(plain[0])
    for f, p in zip(fast[1], plain[1], strict=True):
        assert f.dtype == p.dtype and f.shape == p.shape and _bits(f) == _bits(p)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scope", ["layer", "network"])
def test_penalty_with_kernels_is_bitwise_the_numpy_penalty(switch, dtype, scope):
    rng = np.random.default_rng(3)
    params = {
        "a": rng.standard_normal((300, 784)).astype(dtype),
        "b": (rng.standard_normal((100, 300)) * 1e-3).astype(dtype),
        "c": rng.standard_normal((10, 100)).astype(dtype),
    }
    params["a"][[4, 9], [7, 2]] = 0.0, -0.0
    fast, plain = _both(switch, lambda: penalty(params, "spatial_entropy", 1e-3, scope=scope))
    assert _bits(fast[0]) == _bits(plain[0])
    for k in params:
        assert _bits(fast[1][k]) == _bits(plain[1][k]), k


@pytest.mark.parametrize("scale", [2.0**-1010, 2.0**-600, 2.0**900])
def test_extreme_scales_take_the_numpy_factors_and_stay_bitwise(switch, scale):
    """Beyond 2^±100 the normalisation is several factors: the NumPy lines for |W|·2^-e, kernels elsewhere.

    (At 2^-1070 the exact gradient, ~1/Σ|w|, is beyond float64: a FloatingPointError on both paths.)"""
    W = np.random.default_rng(1).standard_normal((7, 5)) * scale
    fast, plain = _both(switch, lambda: SpatialEntropy().value_and_grad(W))
    assert _bits(fast[0]) == _bits(plain[0]) and _bits(fast[1]) == _bits(plain[1])
    assert np.all(np.isfinite(plain[1]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_raise_the_numpy_error(switch, bad):
    W = np.ones((4, 3), dtype=np.float32)
    W[2, 1] = bad
    messages = []
    for flag in (True, False):
        switch(flag)
        with pytest.raises(FloatingPointError) as err:
            SpatialEntropy().value_and_grad(W)
        messages.append(str(err.value))
    assert messages[0] == messages[1]


def test_kernels_skip_what_they_do_not_cover(switch):
    W = np.random.default_rng(2).standard_normal((6, 8))
    assert _accel.usable(np, [W])
    assert not _accel.usable(np, [W[:, ::2]])  # not C-contiguous: the NumPy lines
    assert not _accel.usable(np, [W.astype(np.float16)])
    switch(False)
    assert not _accel.usable(np, [W]) and not _numba.enabled()
