"""The optimizers' optional numba kernel (refreg.optim._accel) against the NumPy kernels, bit for bit.

Skipped without numba (the ``fast`` extra). The oracle is the NumPy reference ``kernels.adam_kernel`` (one new
array per operator), and the donated update with the kernel switched off; hypothesis draws the arrays (zeros,
``-0.0``, subnormals, infinities, values near the dtype's limits) and the step's coefficients (Adam and
AdamW, both branches of torch's lerp, any step).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refreg import _numba
from refreg.cpr import cpr
from refreg.cpr.kappa import Uniform
from refreg.optim import _accel, adam, adamw
from refreg.optim.kernels import AdamStepCoefficients, adam_kernel

pytest.importorskip("numba", reason="numba (the optional 'fast' extra) is not installed")


@pytest.fixture(autouse=True)
def numba_on():
    previous = _numba.set_enabled(True)
    yield
    _numba.set_enabled(previous)


def _bits(a):
    a = np.asarray(a).reshape(-1)
    return a.view(f"u{a.dtype.itemsize}").tolist()


def _values(dtype, nonnegative=False):
    info = np.finfo(dtype)
    special = [0.0, -0.0, float(info.smallest_subnormal), float(info.tiny), 1.0, float(info.max)]
    special += [] if nonnegative else [-1.0, -float(info.max), float("inf"), float("-inf")]
    width = 8 * np.dtype(dtype).itemsize
    floats = st.floats(
        min_value=0.0 if nonnegative else None, allow_nan=False, allow_infinity=False, width=width
    )
    return st.one_of(st.sampled_from(special), floats)


@st.composite
def _adam_problem(draw):
    dtype = draw(st.sampled_from(["float32", "float64"]))
    n = draw(st.integers(1, 300))
    arrays = [
        draw(hnp.arrays(dtype, n, elements=_values(dtype, nonnegative=i == 3))) for i in range(4)
    ]
    lr = draw(st.floats(1e-6, 1.0))
    decoupled = draw(st.booleans())
    wd = draw(st.sampled_from([0.0, 1e-4, 0.1, 0.5]))
    beta1 = draw(st.sampled_from([0.0, 0.3, 0.5, 0.9, 0.99]))
    beta2 = draw(st.sampled_from([0.0, 0.9, 0.999]))
    t = draw(st.integers(1, 10_000))
    c = AdamStepCoefficients(
        decay=(1.0 - lr * wd) if decoupled and wd else None,
        l2=0.0 if decoupled else wd,
        lerp_weight=1.0 - beta1,
        beta2=beta2,
        bias_correction2_sqrt=float(np.sqrt(1.0 - beta2**t)),
        eps=draw(st.sampled_from([0.0, 1e-8, 1e-3])),
        step_size=lr / (1.0 - beta1**t),
    )
    return c, arrays


@given(_adam_problem())
def test_adam_kernel_is_bitwise_the_numpy_kernel(problem):
    c, (p, g, m, v) = problem
    with np.errstate(all="ignore"):
        expected = adam_kernel(np, c, p, g, m, v)
        own = [a.copy() for a in (p, g, m, v)]
        assert _accel.usable(*own)
        _accel.adam_step_in_place(c, *own)
    for name, got, want in zip("θmv", (own[0], own[2], own[3]), expected, strict=True):
        assert _bits(got) == _bits(want), name
    assert _bits(own[1]) == _bits(g)  # the gradient is read only


@given(_adam_problem())
def test_adam_square_sum_is_bitwise_numpy_sum(problem):
    c, (p, g, m, v) = problem
    with np.errstate(all="ignore"):
        own = [a.copy() for a in (p, g, m, v)]
        expected = adam_kernel(np, c, p, g, m, v)
        total = _accel.adam_step_square_sum_in_place(c, *own)
        want = np.sum(expected[0] * expected[0])
    # θ, m and v are the step's own (the sum is taken in the step's loop), g is read only
    for name, got, step in zip("θmv", (own[0], own[2], own[3]), expected, strict=True):
        assert _bits(got) == _bits(step), name
    assert _bits(own[1]) == _bits(g)
    assert type(total) is type(want) and _bits(total) == _bits(want)


@given(
    st.sampled_from(["float32", "float64"]).flatmap(
        lambda dtype: hnp.arrays(dtype, st.integers(1, 3000), elements=_values(dtype))
    )
)
def test_square_sum_is_bitwise_numpy_sum(x):
    # sizes from one short leaf (< 8) to ~40 leaves: leaves with and without a remainder of n % 8
    with np.errstate(all="ignore"):
        want = np.sum(x * x)
        got = _accel.square_sum(x)
    assert type(got) is type(want) and _bits(got) == _bits(want)


def test_large_tensor_square_sum_crosses_many_leaves():
    rng = np.random.default_rng(3)
    n = 3 * 131072 + 1001  # 4,096 of NumPy's leaves: eight runs of 512
    p, g, m = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    v = np.abs(rng.standard_normal(n)).astype(np.float32)
    c = AdamStepCoefficients(None, 0.0, 0.1, 0.999, 0.3, 1e-8, 0.01)
    expected, m_new, v_new = adam_kernel(np, c, p, g, m, v)
    total = _accel.adam_step_square_sum_in_place(c, p, g, m, v)
    assert _bits(p) == _bits(expected) and _bits(total) == _bits(np.sum(expected * expected))
    assert _bits(m) == _bits(m_new) and _bits(v) == _bits(v_new)


@pytest.mark.parametrize("n", [61994, 65982, 66979, 133778])
def test_square_sums_across_runs_of_leaves_with_leftovers(n):
    # 513, 567, 692 and 1362 leaves: runs of 512 leaves and a last, shorter run
    rng = np.random.default_rng(n)
    p, g, m = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    v = np.abs(rng.standard_normal(n)).astype(np.float32)
    c = AdamStepCoefficients(None, 0.0, 0.1, 0.999, 0.3, 1e-8, 0.01)
    expected, m_new, v_new = adam_kernel(np, c, p, g, m, v)
    assert _bits(_accel.square_sum(p)) == _bits(np.sum(p * p))
    total = _accel.adam_step_square_sum_in_place(c, p, g, m, v)
    assert _bits(p) == _bits(expected) and _bits(total) == _bits(np.sum(expected * expected))
    assert _bits(m) == _bits(m_new) and _bits(v) == _bits(v_new)


def _run_with_and_without_the_kernel(opt, dtype, donate, n_steps=5):
    """The same steps from the same start with the kernel on, then off: [(params, state, λ per step)] × 2."""
    rng = np.random.default_rng(5)
    start = {
        "w": rng.standard_normal((70, 300)).astype(dtype),
        "b": rng.standard_normal(300).astype(dtype),
    }
    copy = {k: v.copy() for k, v in start.items()}
    runs = []
    for flag in (True, False):
        _numba.set_enabled(flag)
        params = {k: v.copy() for k, v in start.items()} if donate else start
        state, grads_rng, multipliers = opt.init(params), np.random.default_rng(6), []
        for _ in range(n_steps):
            g = {k: grads_rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
            params, state = opt.update(g, state, params, donate=donate)
            multipliers.append(getattr(state, "lam", None))
        runs.append((params, state, multipliers))
    assert all(
        _bits(start[k]) == _bits(v) for k, v in copy.items()
    )  # the caller's start is untouched
    return runs


def _adam_state(state):
    return getattr(state, "base", state)  # CPR's state wraps Adam's


@pytest.mark.parametrize("donate", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: adam(1e-2, weight_decay=0.1),
        lambda: adamw(1e-2, betas=(0.3, 0.9)),
        lambda: cpr(adam(1e-2), kappa_init=Uniform(16000.0)),  # R(w) is about 21000 at the start
    ],
    ids=["adam_l2", "adamw_low_beta1", "adam_cpr"],
)
def test_update_with_the_kernel_is_bitwise_without(make, dtype, donate):
    fast, plain = _run_with_and_without_the_kernel(make(), dtype, donate)
    for key in fast[0]:
        assert _bits(fast[0][key]) == _bits(plain[0][key]), key
        for moment in ("exp_avg", "exp_avg_sq"):
            got = getattr(_adam_state(fast[1]), moment)[key]
            assert _bits(got) == _bits(getattr(_adam_state(plain[1]), moment)[key]), (key, moment)
    assert (
        fast[2] == plain[2]
    )  # CPR: the same λ at every step (R from the kernel's pass when donated)
    if fast[2][0] is not None:
        assert fast[2][0]["w"] > 0.0  # the constraint step ran


@given(_adam_problem())
def test_pure_kernel_is_bitwise_the_numpy_kernel_and_leaves_inputs(problem):
    c, arrays = problem
    before = [a.copy() for a in arrays]
    with np.errstate(all="ignore"):
        expected = adam_kernel(np, c, *arrays)
        got = _accel.adam_step(c, *arrays)
    for name, x, y in zip("θmv", got, expected, strict=True):
        assert _bits(x) == _bits(y), name
    for a, b in zip(arrays, before, strict=True):
        assert _bits(a) == _bits(b)


@pytest.mark.parametrize("donate", [True, False])
def test_updates_reach_the_kernel(donate, monkeypatch):
    """The bitwise comparisons above would pass if the kernel were never called: count the calls."""
    calls = []
    for name in ("adam_step", "adam_step_in_place", "adam_step_square_sum_in_place"):
        original = getattr(_accel, name)
        monkeypatch.setattr(
            _accel, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a)
        )
    params = {"w": np.ones((4, 3), np.float32), "b": np.ones(3, np.float32)}
    grads = {k: np.full_like(v, 0.5) for k, v in params.items()}
    for opt, expected in (
        (adam(1e-2), "adam_step_in_place" if donate else "adam_step"),
        (
            cpr(adam(1e-2), kappa_init=Uniform(10.0)),  # R(w) = 12: λ > 0, 2λ < 1
            "adam_step_square_sum_in_place" if donate else "adam_step",
        ),
    ):
        calls.clear()
        own = {k: v.copy() for k, v in params.items()}
        opt.update(grads, opt.init(own), own, donate=donate)
        assert expected in calls, (opt, calls)


def test_kernel_is_not_used_off_the_fast_path():
    p = np.ones((4, 6), np.float32)
    assert not _accel.usable(p, p.T)  # not C-contiguous
    assert not _accel.usable(p, p.astype(np.float64))  # mixed dtypes
    assert not _accel.usable(p.astype(np.float16))
    assert not _accel.usable(np.ones((), np.float32))  # 0-d: NumPy's scalars
    _numba.set_enabled(False)
    assert not _accel.usable(p)


def test_step_scalars_are_kept_for_the_same_coefficients_object_only():
    # the memo is by identity: an equal-valued c with -0.0 where the last had 0.0 gets its own signed zero
    plus = AdamStepCoefficients(None, 0.0, 0.1, 0.999, 0.3, 1e-8, 0.01)
    minus = AdamStepCoefficients(None, -0.0, 0.1, 0.999, 0.3, 1e-8, 0.01)
    first = _accel._scalars(plus, np.dtype(np.float32))
    assert _accel._scalars(plus, np.dtype(np.float32)) is first
    assert np.signbit(_accel._scalars(minus, np.dtype(np.float32))[3])
    assert not np.signbit(_accel._scalars(plus, np.dtype(np.float32))[3])
    as64 = _accel._scalars(plus, np.dtype(np.float64))
    assert as64 is not first and type(as64[1]) is np.float64 and type(first[1]) is np.float32


@pytest.mark.parametrize("node", [128, 1000, 4096])
def test_square_sums_of_tensors_larger_than_one_compiled_node(monkeypatch, node):
    # above NODE elements the nodes' sums are added up NumPy's tree in Python, in the arrays' dtype
    monkeypatch.setattr(_accel, "NODE", node)
    rng = np.random.default_rng(node)
    for dtype in (np.float32, np.float64):
        n = 9 * node + 77
        p, g, m = (rng.standard_normal(n).astype(dtype) for _ in range(3))
        v = np.abs(rng.standard_normal(n)).astype(dtype)
        c = AdamStepCoefficients(None, 0.0, 0.1, 0.999, 0.3, 1e-8, 0.01)
        expected = adam_kernel(np, c, p, g, m, v)[0]
        got = _accel.square_sum(p)
        assert type(got) is dtype and _bits(got) == _bits(np.sum(p * p))
        total = _accel.adam_step_square_sum_in_place(c, p, g, m, v)
        assert _bits(p) == _bits(expected)
        assert type(total) is dtype and _bits(total) == _bits(np.sum(expected * expected))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_sums_are_numpys_bits(dtype):
    # which of two NaNs an addition keeps is NumPy's compiled code's choice: a NaN sum is taken by NumPy
    rng = np.random.default_rng(7)
    uint = np.uint32 if dtype == np.float32 else np.uint64
    quiet = uint(0x7FC00000) if dtype == np.float32 else uint(0x7FF8000000000000)
    sign = uint(1) << uint(8 * np.dtype(dtype).itemsize - 1)
    c = AdamStepCoefficients(None, 0.0, 0.1, 0.999, 0.3, 1e-8, 0.01)
    for trial in range(40):
        n = int(rng.integers(200, 3000))
        x = rng.standard_normal(n).astype(dtype)
        bits = x.view(uint)
        for k in rng.choice(n, size=int(rng.integers(1, 4)), replace=False):
            bits[k] = (
                quiet | uint(int(rng.integers(1, 200))) | (sign if rng.random() < 0.5 else uint(0))
            )
        assert _bits(_accel.square_sum(x)) == _bits(np.sum(x * x)), trial
        g, m = np.zeros_like(x), np.zeros_like(x)
        expected = adam_kernel(np, c, x, g, m, np.ones_like(x))[0]
        total = _accel.adam_step_square_sum_in_place(c, x.copy(), g, m.copy(), np.ones_like(x))
        assert _bits(total) == _bits(np.sum(expected * expected)), trial


def test_the_vector_sum_refuses_arrays_that_are_not_contiguous():
    from numba.core.errors import TypingError

    from refreg._pairwise import pairwise_leaves
    from refreg.optim import _loops

    x = np.arange(1.0, 2001.0)
    with pytest.raises(TypingError):
        _loops.square_sum(x[::2], *pairwise_leaves(1000))  # it would have summed x[:1000]
    assert not _accel.usable(x[::2])  # the public path never gets there


def test_numba_disable_jit_turns_the_kernels_off(monkeypatch):
    import numba

    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    assert not _numba.enabled() and _accel._kernels() is None
    x = np.ones(300, np.float32)
    assert not _accel.usable(x, x)
    from refreg.cpr._fused import square_sum

    assert square_sum(x) == np.sum(x * x)  # the NumPy blocks (the intrinsic cannot run as Python)
