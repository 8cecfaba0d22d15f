"""Group norms at any scale: every row, column or unit is right whatever the others hold.

The overflow/underflow guard once rescaled a whole array by the power of two of its largest entry, so next to
a row of 1e200 the squares of an ordinary row underflowed: ``project_unit_sphere`` gave [3e6, 4e6] for the
row [3, 4], ``group_soft_threshold`` and ``prox_norm_product`` zeroed it, ``path_norm`` was 0. Each group is
now scaled by its own power of two (refreg._pow2.GroupPow2). The oracles here are computed group by group in
60-digit decimal arithmetic; the ordinary-scale results are checked bit for bit against the plain formulas
the code computed before.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refreg import _numba
from refreg._pow2 import Pow2Scale
from refreg.nn import MLP
from refreg.pathprox import (
    SPHERE_EPS,
    Group,
    Groups,
    balance_units,
    group_soft_threshold,
    pair_groups,
    path_norm,
    pathprox,
    project_unit_sphere,
    prox_norm_product,
    unit_norms,
)
from refreg.pathprox.prox import _norm_product_factors
from refreg.sparse import GroupHoyerSquare, GroupLasso
from refreg.sparse._matrices import _safe

F32, F64 = np.float32, np.float64
DTYPES = st.sampled_from([F32, F64])
ONE_GROUP = Groups((Group("w", "v"),))


# ------------------------------------------------------------------------------------------------ oracles
def _d(x) -> Decimal:
    return Decimal(float(x))  # exact


def dnorm(values) -> Decimal:
    """The exact norm, to 60 digits."""
    with localcontext() as ctx:
        ctx.prec = 60
        return sum((_d(x) ** 2 for x in np.ravel(values)), Decimal(0)).sqrt()


def dmul(values, factor: Decimal) -> np.ndarray:
    """``values·factor`` correctly rounded to float64 from 60 digits."""
    with localcontext() as ctx:
        ctx.prec = 60
        return np.array([float(_d(x) * factor) for x in np.ravel(values)]).reshape(np.shape(values))


def dquot(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return a / b if b else Decimal(0)


def assert_close(got, want, ref, dtype, k=8):
    """``|got − want| <= k·eps·|ref| + k·(smallest subnormal)``, in the dtype's eps (a few ulps of ``ref``)."""
    got, want = np.atleast_1d(got).astype(np.float64), np.atleast_1d(want).astype(np.float64)
    fi = np.finfo(dtype)
    ref = np.broadcast_to(np.abs(np.asarray(ref, dtype=np.float64)), got.shape)
    tol = k * float(fi.eps) * ref + k * float(fi.smallest_subnormal)
    bad = ~(np.abs(got - want) <= tol)
    assert not bad.any(), f"got {got[bad]}, want {want[bad]} (tolerance {tol[bad]})"


def as_dtype_float(x: float, dtype) -> float:
    """The Python float a NumPy array of ``dtype`` sees for the scalar ``x`` (NEP 50: cast to the dtype)."""
    return float(np.dtype(dtype).type(x))


# --------------------------------------------------------------------------------------------- strategies
def top(dtype) -> int:
    """Decimal exponents of the group scales: entries 0.1·10^-top … 10·10^top, normal numbers whose norms are
    finite (float32 1e-37 … 1e37, float64 1e-301 … 1e301)."""
    return 36 if dtype is F32 else 300


BASE = st.one_of(st.just(0.0), st.floats(0.1, 10.0), st.floats(-10.0, -0.1))


@st.composite
def scaled_groups(draw, dtype, n_groups, length):
    """An (n_groups, length) array whose row g is ``base·10^k_g``: k_g 0 (ordinary) or anywhere in ±top."""
    t = top(dtype)
    exponents = st.one_of(st.just(0), st.integers(-t, t))
    k = draw(st.lists(exponents, min_size=n_groups, max_size=n_groups))
    base = draw(hnp.arrays(np.float64, (n_groups, length), elements=BASE))
    return (base * 10.0 ** np.array(k, dtype=np.float64)[:, None]).astype(dtype)


shapes = st.tuples(st.integers(1, 5), st.integers(1, 5))


# -------------------------------------------------------------------------------- the audit's exact cases
def test_audit_cases_project_unit_sphere():
    for dtype, big, small in [
        (F64, 1e200, [3.0, 4.0]),
        (F32, 1e30, [3.0, 4.0]),
        (F32, 1e20, [3e-3, 4e-3]),
        (F64, 1.5e308, [3.0, 4.0]),  # the big row's norm overflows: it is still projected
        (F32, 3e38, [3.0, 4.0]),
    ]:
        W = np.array([[big, big], small], dtype=dtype)
        out, _ = project_unit_sphere(W)
        np.testing.assert_allclose(out[1], [0.6, 0.8], rtol=4 * np.finfo(dtype).eps)
        np.testing.assert_allclose(out[0], [0.5**0.5] * 2, rtol=4 * np.finfo(dtype).eps)


def test_audit_cases_group_soft_threshold():
    z = np.array([[1e200, 3.0], [1e200, 4.0]])
    np.testing.assert_allclose(group_soft_threshold(z, 0.1)[:, 1], [2.94, 3.92], rtol=1e-15)
    z = np.array([[1e16, 3e-6], [1e16, 4e-6]], dtype=F32)
    col = z[:, 1]
    n = dnorm(col)
    want = dmul(col, 1 - dquot(_d(as_dtype_float(1e-6, F32)), n))
    assert_close(group_soft_threshold(z, 1e-6)[:, 1], want, want, F32, k=4)


def test_audit_cases_prox_norm_product_and_path_norm():
    W = np.array([[1e200, 1e200], [3.0, 4.0]])
    V = np.array([[1e200, 3.0], [1e200, 4.0]])
    Wo, Vo = prox_norm_product(W, V, 0.5)
    np.testing.assert_allclose(Wo[1], [2.0, 8.0 / 3.0], rtol=1e-15)
    np.testing.assert_allclose(Vo[:, 1], [2.0, 8.0 / 3.0], rtol=1e-15)
    params = {"w": np.array([[1e200, 0.0], [3.0, 4.0]]), "v": np.array([[1e-200, 3.0], [0.0, 4.0]])}
    ((nw, nv),) = unit_norms(params, ONE_GROUP)
    np.testing.assert_allclose(nw, [1e200, 5.0], rtol=1e-15)
    np.testing.assert_allclose(nv, [1e-200, 5.0], rtol=1e-15)
    value, grads = path_norm(params, ONE_GROUP)
    assert float(value) == pytest.approx(26.0, rel=1e-15)
    # ∂/∂w_0 = ||v_0||·w_0/||w_0|| = [1e-200, 0], ∂/∂v_0 = ||w_0||·v_0/||v_0|| = [1e200, 0]
    np.testing.assert_allclose(grads["w"], [[1e-200, 0.0], [3.0, 4.0]], rtol=1e-15)
    np.testing.assert_allclose(grads["v"], [[1e200, 3.0], [0.0, 4.0]], rtol=1e-15)
    # balance_units: a_0 = sqrt(1e-200/1e200) = 1e-200 (the ratio 1e-400 itself underflows)
    out = balance_units(params, ONE_GROUP)
    np.testing.assert_allclose(out["w"], [[1.0, 0.0], [3.0, 4.0]], rtol=1e-15)
    np.testing.assert_allclose(out["v"], [[1.0, 3.0], [0.0, 4.0]], rtol=1e-15)


def test_audit_cases_group_lasso():
    for dtype, W in [
        (F64, [[1e200, 0.0], [3e30, 4e30]]),
        (F64, [[1.0, 0.0], [3e-170, 4e-170]]),
        (F32, [[1e10, 0.0], [3e-10, 4e-10]]),
    ]:
        W = np.array(W, dtype=dtype)
        _, g = GroupLasso().value_and_grad(W)
        np.testing.assert_allclose(g[1], W[1] / float(dnorm(W[1])), rtol=4 * np.finfo(dtype).eps)


# ------------------------------------------------------------------------------------ per-group oracles
@given(DTYPES.flatmap(lambda d: st.tuples(st.just(d), shapes, st.data())), st.booleans())
def test_unit_norms_per_unit(case, with_bias):
    dtype, (N, n), data = case
    W = data.draw(scaled_groups(dtype, N, n))
    V = np.ascontiguousarray(data.draw(scaled_groups(dtype, N, 3)).T)  # columns scaled
    b = data.draw(scaled_groups(dtype, N, 1))[:, 0]
    groups = Groups((Group("w", "v", "b"),))
    ((nw, nv),) = unit_norms({"w": W, "v": V, "b": b}, groups, regularize_bias=with_bias)
    for k in range(N):
        want_w = float(dnorm(np.append(W[k], b[k]) if with_bias else W[k]))
        want_v = float(dnorm(V[:, k]))
        assert_close(nw[k], want_w, want_w, dtype, k=4)
        assert_close(nv[k], want_v, want_v, dtype, k=4)


@given(DTYPES.flatmap(lambda d: st.tuples(st.just(d), shapes, st.data())), st.booleans())
def test_project_unit_sphere_per_row(case, include_bias):
    dtype, (N, n), data = case
    Wb = data.draw(scaled_groups(dtype, N, n + 1))  # the bias follows its row's scale
    W, b = np.ascontiguousarray(Wb[:, :n]), np.ascontiguousarray(Wb[:, n])
    Wo, bo = project_unit_sphere(W, b, include_bias=include_bias)
    floor = _d(as_dtype_float(SPHERE_EPS, dtype))
    for k in range(N):
        inv = dquot(Decimal(1), max(dnorm(Wb[k] if include_bias else W[k]), floor))
        want = dmul(W[k], inv)
        assert_close(Wo[k], want, want, dtype)
        want_b = dmul([b[k]], inv)
        # (b_k·1e6 after a row of norm below 1e-6 can exceed the float max)
        if abs(want_b[0]) <= np.finfo(dtype).max:
            assert_close(bo[k], want_b, want_b, dtype)


@given(
    DTYPES.flatmap(lambda d: st.tuples(st.just(d), shapes, st.data())),
    st.sampled_from([0, 1]),
    st.sampled_from([0.0, 0.25, 0.5, 1.5]),
)
def test_group_soft_threshold_per_slice(case, axis, c):
    dtype, (G, n), data = case
    z = data.draw(scaled_groups(dtype, G, n))  # slice g = row g
    if axis == 0:
        z = np.ascontiguousarray(z.T)  # slice g = column g
    slices = [z[:, g] if axis == 0 else z[g] for g in range(G)]
    j = data.draw(st.integers(0, G - 1))
    tau = c * float(dnorm(slices[j]))  # τ at a fraction (or 1.5 times) of one slice's norm
    t = _d(as_dtype_float(tau, dtype))
    out = group_soft_threshold(z, tau, axis=axis)
    for g, s in enumerate(slices):
        n_g = dnorm(s)
        factor = 1 - dquot(t, n_g) if n_g > t else Decimal(0)
        got = out[:, g] if axis == 0 else out[g]
        # |Δout| <= |z|·(1 + τ/||z||)·(error of the norm): the factor's conditioning
        # (capped: far beyond the threshold the slice is 0 either way)
        ref = np.abs(s.astype(np.float64)) * (1.0 + min(float(dquot(t, n_g)), 2.0))
        assert_close(got, dmul(s, factor), ref, dtype)


@given(
    DTYPES.flatmap(lambda d: st.tuples(st.just(d), shapes, st.integers(1, 4), st.data())),
    st.sampled_from([0.0, 0.3, 0.7, 1.0, 1.5]),
)
def test_prox_norm_product_per_unit(case, tau):
    dtype, (N, n_in), n_out, data = case
    t = top(dtype)
    # one scale per unit for w_k and v_k, and v_k a few decades (or anywhere) away from w_k
    k_unit = data.draw(st.lists(st.one_of(st.just(0), st.integers(-t, t)), min_size=N, max_size=N))
    offset = st.one_of(st.integers(-2, 2), st.integers(-t, t))
    k_v = [
        max(-t, min(t, k + d))
        for k, d in zip(k_unit, data.draw(st.lists(offset, min_size=N, max_size=N)), strict=True)
    ]
    W = (
        data.draw(hnp.arrays(np.float64, (N, n_in), elements=BASE))
        * 10.0 ** np.array(k_unit)[:, None]
    ).astype(dtype)
    V = (
        data.draw(hnp.arrays(np.float64, (n_out, N), elements=BASE))
        * 10.0 ** np.array(k_v)[None, :]
    ).astype(dtype)
    Wo, Vo = prox_norm_product(W, V, tau)
    ta = _d(as_dtype_float(tau, dtype))
    eps = float(np.finfo(dtype).eps)
    with localcontext() as ctx:
        ctx.prec = 60
        for k in range(N):
            a, b = dnorm(W[k]), dnorm(V[:, k])
            if ta < 1:
                d = 1 - ta * ta
                if a <= ta * b:
                    r, s = Decimal(0), b
                elif b <= ta * a:
                    r, s = a, Decimal(0)
                else:
                    r, s = (a - ta * b) / d, (b - ta * a) / d
                kw = 1 + float(dquot(ta * b, a * d)) if a else 1.0  # the factor's conditioning
                kv = 1 + float(dquot(ta * a, b * d)) if b else 1.0
            else:
                if abs(a - b) <= 64 * Decimal(eps) * max(a, b):
                    continue  # a tie up to rounding: either vector may be kept
                r, s = (a, Decimal(0)) if a >= b else (Decimal(0), b)
                kw = kv = 1.0
            assert_close(Wo[k], dmul(W[k], dquot(r, a)), np.abs(W[k].astype(float)) * kw, dtype)
            assert_close(
                Vo[:, k], dmul(V[:, k], dquot(s, b)), np.abs(V[:, k].astype(float)) * kv, dtype
            )


@given(DTYPES.flatmap(lambda d: st.tuples(st.just(d), shapes, st.data())))
def test_group_lasso_per_row(case):
    dtype, (m, n), data = case
    W = data.draw(scaled_groups(dtype, m, n))
    value, grad = GroupLasso().value_and_grad(W)
    norms = [dnorm(row) for row in W]
    total = float(sum(norms))
    assert_close(value, total, total, dtype)
    for i in range(m):
        want = dmul(W[i], dquot(Decimal(1), norms[i]))
        assert_close(grad[i], want, want, dtype)


@given(DTYPES.flatmap(lambda d: st.tuples(st.just(d), shapes, st.data())))
def test_group_hoyer_square_per_row_and_column(case):
    """Rows and columns at any scale. The gradient is computed on ``Wn = W·2^-E`` (E for max|W|): an entry
    more than 2^1022 (float32 2^126) below max|W| is subnormal or 0 there, and its gradient entry carries that
    rounding (relative ``2^-1074/|Wn_ij|``, the tolerance below; negligible next to the gradient's largest
    entries) while the norms of its row and column stay right."""
    dtype, (m, n), data = case
    fi = np.finfo(dtype)
    half = top(dtype) // 2
    exps = st.one_of(st.just(0), st.integers(-half, half))
    rows = data.draw(st.lists(exps, min_size=m, max_size=m))
    cols = data.draw(st.lists(exps, min_size=n, max_size=n))
    base = data.draw(hnp.arrays(np.float64, (m, n), elements=BASE))
    W = (base * 10.0 ** (np.array(rows)[:, None] + np.array(cols)[None, :])).astype(dtype)
    value, grad = GroupHoyerSquare().value_and_grad(W)
    if not W.any():
        return
    # |Wn_ij| = |w_ij|·2^-E below the smallest normal: relative rounding up to 2^-1074/|Wn_ij| (or all of it)
    E = np.frexp(float(np.max(np.abs(W))))[1]
    absW = np.abs(W.astype(np.float64))
    small = (absW > 0) & (np.ldexp(absW, -E) < fi.smallest_normal)
    sub = np.zeros_like(absW)
    sub[small] = np.ldexp(float(fi.smallest_subnormal), E) / absW[small]
    with localcontext() as ctx:
        ctx.prec = 60
        rn = [dnorm(W[i]) for i in range(m)]
        cn = [dnorm(W[:, j]) for j in range(n)]
        c_out, c_in = sum(rn), sum(cn)
        S = sum(_d(x) ** 2 for x in W.ravel())
        K = 2 * (c_in**2 + c_out**2) / (S * S)
        assert_close(value, float((c_in**2 + c_out**2) / S), float((c_in**2 + c_out**2) / S), dtype)
        for i in range(m):
            for j in range(n):
                w = _d(W[i, j])
                t1 = 2 * c_in * w / cn[j] / S if cn[j] else Decimal(0)
                t2 = 2 * c_out * w / rn[i] / S if rn[i] else Decimal(0)
                t3 = K * w
                ref = float(abs(t1) + abs(t2) + abs(t3)) * (1 + sub[i, j] / (16 * float(fi.eps)))
                assert_close(grad[i, j], float(t1 + t2 - t3), ref, dtype, k=16)


# ----------------------------------------------------------------------------- the PathProx update itself
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("prox", ["sphere", "joint"])
@pytest.mark.parametrize("numba", [True, False])
def test_pathprox_update_with_one_huge_unit(dtype, prox, numba):
    """A unit of 1e200 (float32 1e30) next to ordinary ones: the others are projected / thresholded as if it
    were not there (their rows end on the unit sphere), fused and reference updates agree, numba on or off
    (the 128×64 W and V take the numba kernels)."""
    previous = _numba.set_enabled(numba)
    try:
        net = MLP([64, 128, 64])
        params = {k: v.astype(dtype) for k, v in net.init(rng=0).items()}
        big = dtype(1e30 if dtype is F32 else 1e200)
        params["layers.0.weight"][5] *= big
        params["layers.1.weight"][:, 5] /= big
        grads = {k: np.zeros_like(v) for k, v in params.items()}
        opt = pathprox(0.1, 1e-3, groups=pair_groups(net), prox=prox, layer_balance=False)
        out, _ = opt.update(grads, opt.init(params), params)
        ref, _ = opt.reference_update(grads, opt.init(params), params)
        for key in out:
            np.testing.assert_allclose(out[key], ref[key], rtol=64 * np.finfo(dtype).eps, atol=0)
        W0, W1 = params["layers.0.weight"], out["layers.0.weight"]
        if prox == "sphere":
            norms = [float(dnorm(row)) for row in W1]
            np.testing.assert_allclose(norms, 1.0, rtol=8 * np.finfo(dtype).eps)
        else:  # the ordinary units are those of the network without the huge one
            keep = np.arange(W0.shape[0]) != 5
            V0 = params["layers.1.weight"]
            Wr, Vr = prox_norm_product(W0[keep], np.ascontiguousarray(V0[:, keep]), 1e-4)
            np.testing.assert_array_equal(W1[keep], Wr)
            np.testing.assert_array_equal(out["layers.1.weight"][:, keep], Vr)
    finally:
        _numba.set_enabled(previous)


# ---------------------------------------------------------------------- ordinary scales: the same bits
def _plain_project(W, b, include_bias):
    n = np.sqrt(np.sum(W * W, axis=1) + b * b) if include_bias else np.linalg.vector_norm(W, axis=1)
    inv = 1.0 / np.clip(n, SPHERE_EPS, None)
    return W * inv[:, None], b * inv


def _plain_soft_threshold(z, tau, axis):
    norm = np.linalg.vector_norm(z, axis=axis, keepdims=True)
    if tau == 0.0:
        return z * np.ones_like(norm)
    keep = norm > tau
    return z * np.where(keep, 1.0 - tau / np.where(keep, norm, 1.0), 0.0)


def _plain_prox_norm_product(W, V, tau):
    alpha, beta = np.linalg.vector_norm(W, axis=1), np.linalg.vector_norm(V, axis=0)
    fw, fv = _norm_product_factors(np, alpha, beta, tau)
    return W * fw[:, None], V * fv[None, :]


def _plain_group_lasso(W):
    scale = Pow2Scale(float(np.max(np.abs(W))), W.dtype == F32)
    nrm = np.linalg.vector_norm(scale(W), axis=1)
    pos = nrm > 0
    grad = scale(W) * np.where(pos, 1.0 / _safe(np, nrm, pos), np.zeros_like(nrm))[:, None]
    return scale.undo(np.sum(nrm)), grad


def _plain_group_hoyer_square(W):
    scale = Pow2Scale(float(np.max(np.abs(W))), W.dtype == F32)
    rn, cn = np.linalg.vector_norm(scale(W), axis=1), np.linalg.vector_norm(scale(W), axis=0)
    C_in, C_out = np.sum(cn), np.sum(rn)
    Q = _safe(np, np.sum(rn * rn), scale.nonzero)
    value = (C_in * C_in + C_out * C_out) / Q if scale.nonzero else np.zeros_like(C_in)
    inv_r = np.where(rn > 0, 1.0 / _safe(np, rn, rn > 0), np.zeros_like(rn))
    inv_c = np.where(cn > 0, 1.0 / _safe(np, cn, cn > 0), np.zeros_like(cn))
    coef = (2.0 * C_out / Q) * inv_r[:, None] + ((2.0 * C_in / Q) * inv_c)[None, :]
    coef = coef - 2.0 * (C_in * C_in + C_out * C_out) / (Q * Q)
    return value, scale.rest(scale(W) * (coef * scale.fold))


def _bits(a):
    a = np.asarray(a)
    return a.view(f"u{a.dtype.itemsize}")


def _same_bits(got, want):
    np.testing.assert_array_equal(_bits(got), _bits(want))


ORDINARY = st.one_of(st.just(0.0), st.just(-0.0), st.floats(0.01, 10.0), st.floats(-10.0, -0.01))


@given(
    DTYPES.flatmap(lambda d: st.tuples(st.just(d), shapes, st.integers(1, 4), st.data())),
    st.sampled_from([0.0, 0.01, 0.3, 1.0, 1.5]),
)
def test_ordinary_scales_are_bitwise_the_plain_formulas(case, tau):
    """Squares that neither overflow nor underflow (entries 1e-14 … 1e13 in float32, 1e-92 … 1e91 in
    float64, zeros, rows and columns at different scales): every result is the plain formula's, bit for bit,
    which is what the code computed before the per-group guard. (The sparse regularizers square ``W/max|W|``:
    for them the rows stay within 1e17 of each other, float64 1e153.)"""
    dtype, (N, n_in), n_out, data = case
    t, t_sparse = (12, 7) if dtype is F32 else (90, 75)
    exps = st.integers(-t, t)
    k_rows = np.array(data.draw(st.lists(exps, min_size=N, max_size=N)), dtype=np.float64)
    base = data.draw(hnp.arrays(np.float64, (N, n_in), elements=ORDINARY))
    W = (base * 10.0 ** k_rows[:, None]).astype(dtype)
    Ws = (base * 10.0 ** np.clip(k_rows, -t_sparse, t_sparse)[:, None]).astype(dtype)
    V = (
        data.draw(hnp.arrays(np.float64, (n_out, N), elements=ORDINARY)) * 10.0 ** k_rows[None, :]
    ).astype(dtype)
    b = (data.draw(hnp.arrays(np.float64, (N,), elements=ORDINARY)) * 10.0**k_rows).astype(dtype)
    tau = tau * float(np.max(np.abs(V))) if V.any() else tau
    for include_bias in (False, True):
        for got, want in zip(
            project_unit_sphere(W, b, include_bias=include_bias),
            _plain_project(W, b, include_bias),
            strict=True,
        ):
            _same_bits(got, want)
    for axis in (0, 1):
        _same_bits(group_soft_threshold(V, tau, axis=axis), _plain_soft_threshold(V, tau, axis))
    for got, want in zip(
        prox_norm_product(W, V, tau), _plain_prox_norm_product(W, V, tau), strict=True
    ):
        _same_bits(got, want)
    ((nw, nv),) = unit_norms({"w": W, "v": V}, ONE_GROUP)
    _same_bits(nw, np.linalg.vector_norm(W, axis=1))
    _same_bits(nv, np.linalg.vector_norm(V, axis=0))
    for reg, plain in (
        (GroupLasso(), _plain_group_lasso),
        (GroupHoyerSquare(), _plain_group_hoyer_square),
    ):
        for got, want in zip(reg.value_and_grad(Ws), plain(Ws), strict=True):
            _same_bits(got, want)


@given(
    DTYPES.flatmap(lambda d: st.tuples(st.just(d), shapes, st.integers(1, 4), st.data())),
    st.sampled_from([0.3, 1.5]),
    st.booleans(),
)
def test_uniform_extreme_scales_are_bitwise_the_scaled_plain_formulas(case, tau, up):
    """Every entry at 2^±450 (float64) or 2^±55 (float32), where the prox operators before rescaled the whole
    array by one power of two: the results are still the plain formulas at scale 1, scaled, bit for bit (as
    those prox operators gave; the unit norms before had no underflow guard, and were wrong at 2^-55 in
    float32)."""
    dtype, (N, n_in), n_out, data = case
    c = dtype(2.0 ** ((55 if dtype is F32 else 450) * (1 if up else -1)))
    elements = st.one_of(st.just(0.0), st.floats(1e-5, 1e5), st.floats(-1e5, -1e-5))
    W = data.draw(hnp.arrays(np.float64, (N, n_in), elements=elements)).astype(dtype)
    V = data.draw(hnp.arrays(np.float64, (n_out, N), elements=elements)).astype(dtype)
    for got, want in zip(
        prox_norm_product(W * c, V * c, tau), _plain_prox_norm_product(W, V, tau), strict=True
    ):
        _same_bits(got, want * c)
    for axis in (0, 1):
        _same_bits(
            group_soft_threshold(V * c, float(tau * c), axis=axis),
            _plain_soft_threshold(V, tau, axis) * c,
        )
    ((nw, nv),) = unit_norms({"w": W * c, "v": V * c}, ONE_GROUP)
    _same_bits(nw, np.linalg.vector_norm(W, axis=1) * c)
    _same_bits(nv, np.linalg.vector_norm(V, axis=0) * c)
    _same_bits(GroupLasso().value_and_grad(W * c)[1], _plain_group_lasso(W)[1])


# ----------------------------------------------------------------------------------------------- messages
def test_group_soft_threshold_axis_must_be_an_int():
    for axis in (1.5, "0", None, True):
        with pytest.raises(TypeError, match=rf"axis must be an int, got {type(axis).__name__}: "):
            group_soft_threshold(np.ones((2, 2)), 0.1, axis=axis)
    np.testing.assert_array_equal(
        group_soft_threshold(np.ones((2, 2)), 0.1, axis=np.int64(1)),
        group_soft_threshold(np.ones((2, 2)), 0.1, axis=1),
    )


def test_groups_fields_must_be_tuples():
    net = MLP([3, 4, 2])
    params = net.init(rng=0)
    with pytest.raises(
        TypeError, match=r"groups\.pairs must be a tuple of Group pairs, got NoneType: None"
    ):
        pathprox(0.1, 0.1, groups=Groups(None))
    with pytest.raises(
        TypeError, match=r"groups\.pairs must be a tuple of Group pairs, got NoneType: None"
    ):
        unit_norms(params, Groups(None))
    pairs = pair_groups(net).pairs
    with pytest.raises(TypeError, match=r"groups\.other must be a tuple of keys, got str: 'layers"):
        unit_norms(params, Groups(pairs, "layers.1.weight"))
    with pytest.raises(
        TypeError, match=r"groups\.other_biases must be a tuple of keys, got int: 3"
    ):
        unit_norms(params, Groups(pairs, (), 3))


@pytest.mark.parametrize("reference", [False, True])
def test_update_that_overflows_says_so(reference):
    """lr = 1e308 on finite params and gradients: the step θ − lr·d overflows; the error names the step, the
    first tensor and lr, not the caller's params; nothing is modified."""
    net = MLP([5, 6, 4, 3])
    params = net.init(rng=0)
    grads = {k: np.full(v.shape, 5.0) for k, v in params.items()}
    before = {k: v.copy() for k, v in params.items()}
    opt = pathprox(1e308, 1e-4, groups=pair_groups(net))
    update = opt.reference_update if reference else opt.update
    with np.errstate(over="ignore"):
        with pytest.raises(
            FloatingPointError,
            match=r"the update overflowed: params\['layers\.0\.weight'\] − lr·d is not finite with "
            r"lr=1e\+308",
        ):
            update(grads, opt.init(params), params)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
