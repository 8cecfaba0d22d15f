"""refreg.pathprox: groups, penalties, rescalings, proximal operators and the PathProx optimizer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import asnumpy
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.optimize import minimize

from refreg import io
from refreg.nn import MLP
from refreg.optim import cosine
from refreg.pathprox import (
    SPHERE_EPS,
    Group,
    Groups,
    PathProxState,
    active_units,
    balance_layers,
    balance_units,
    check_groups,
    group_soft_threshold,
    pair_groups,
    path_norm,
    pathprox,
    project_unit_sphere,
    prox_norm_product,
    sgd_weight_decay,
    unit_norms,
    weight_decay_objective,
    weight_decay_penalty,
)
from refreg.testing import numerical_grad, relative_error

widths = st.lists(st.integers(1, 6), min_size=3, max_size=6)
seeds = st.integers(0, 2**32 - 1)


def make_net(sizes, seed, bias=True):
    net = MLP(sizes, bias=bias)
    return net, net.init(rng=seed), pair_groups(net)


def inputs(net, seed, n=7):
    return np.random.default_rng(seed + 1).standard_normal((n, net.sizes[0]))


def rel_out(net, a, b, x):
    out_a, out_b = net.predict(a, x), net.predict(b, x)
    return relative_error(out_a, out_b, floor=1e-300)


# --------------------------------------------------------------------------------------------------- groups
def test_pair_groups_even_and_odd():
    g = pair_groups(MLP([3, 4, 5, 6, 2]))
    assert [(p.w, p.v) for p in g.pairs] == [
        ("layers.0.weight", "layers.1.weight"),
        ("layers.2.weight", "layers.3.weight"),
    ]
    assert g.other == ()
    g = pair_groups(MLP([3, 4, 5, 2]))
    assert len(g.pairs) == 1 and g.other == ("layers.2.weight",)
    assert g.other_biases == ("layers.2.bias",)
    g = pair_groups(MLP([3, 4, 2], bias=False))
    assert g.pairs[0].w_bias is None and g.pairs[0].v_bias is None


def test_pair_groups_bad_input():
    with pytest.raises(ValueError, match="at least 2 layers"):
        pair_groups(MLP([3, 2]))
    with pytest.raises(ValueError, match=r"activation.*'tanh'"):
        pair_groups(MLP([3, 4, 2], activation="tanh"))
    with pytest.raises(TypeError, match=r"net must be a refreg\.nn\.MLP"):
        pair_groups("mlp")


def test_groups_must_match_params():
    _net, params, _groups = make_net([3, 4, 5, 2], 0)
    with pytest.raises(ValueError, match="not a key of params"):
        check_groups(params, Groups((Group("nope", "layers.1.weight"),)))
    with pytest.raises(ValueError, match="twice"):
        check_groups(
            params, Groups((Group("layers.0.weight", "layers.1.weight"),), ("layers.0.weight",))
        )
    with pytest.raises(ValueError, match=r"same N, got \(4, 3\) and \(2, 5\)"):
        check_groups(params, Groups((Group("layers.0.weight", "layers.2.weight"),)))
    with pytest.raises(ValueError, match=r"w_bias='layers.1.bias' must have shape \(4,\)"):
        check_groups(
            params, Groups((Group("layers.0.weight", "layers.1.weight", "layers.1.bias"),))
        )
    with pytest.raises(TypeError, match="Groups"):
        check_groups(params, [("layers.0.weight", "layers.1.weight")])
    with pytest.raises(ValueError, match="pairs\\[0\\]"):
        path_norm(params, Groups((Group("layers.0.weight", "layers.2.weight"),)))
    with pytest.raises(ValueError, match="consecutive"):
        _net4, p4, g4 = make_net([3, 4, 5, 6, 2], 0)
        balance_layers(p4, Groups(g4.pairs[::-1]))


# ------------------------------------------------------------------------------------------------ penalties
@given(widths, seeds, st.booleans())
def test_penalty_gradients_match_finite_differences(sizes, seed, regularize_bias):
    _net, params, groups = make_net(sizes, seed)
    for fn in (weight_decay_penalty, path_norm):
        value, grads = fn(params, groups, regularize_bias=regularize_bias)
        assert set(grads) == set(params)

        def f(p, fn=fn):
            return float(fn(p, groups, regularize_bias=regularize_bias)[0])

        assert float(value) == pytest.approx(f(params), rel=1e-14)
        numeric = numerical_grad(f, params)
        for key in params:
            assert relative_error(grads[key], numeric[key]) < 1e-7, (fn.__name__, key)


def test_path_norm_hand_example():
    # one unit: w = (3, 4) (norm 5), v = (1, 0, 0) scaled by 2 (norm 2) -> PN = 10, WD = (25 + 4) / 2
    params = {"w": np.array([[3.0, 4.0]]), "v": np.array([[2.0], [0.0], [0.0]])}
    groups = Groups((Group("w", "v"),))
    assert float(path_norm(params, groups)[0]) == 10.0
    assert float(weight_decay_penalty(params, groups)[0]) == 14.5
    _, g = path_norm(params, groups)
    np.testing.assert_allclose(g["w"], [[2 * 3 / 5, 2 * 4 / 5]])
    np.testing.assert_allclose(g["v"], [[5.0], [0.0], [0.0]])
    # a dead unit has the zero subgradient and is not active
    params["v"] = np.zeros((3, 1))
    assert float(path_norm(params, groups)[0]) == 0.0
    assert np.all(path_norm(params, groups)[1]["w"] == 0.0)
    assert active_units(params, groups) == 0.0


def test_active_units_and_objective():
    _net, params, groups = make_net([3, 4, 5, 6, 2], 0)
    params = dict(params)
    params["layers.1.weight"] = params["layers.1.weight"] * np.array([0.0, 1, 1, 1])  # kill unit 0
    params["layers.2.weight"] = params["layers.2.weight"] * np.array([[0.0]] * 2 + [[1.0]] * 4)
    assert active_units(params, groups) == pytest.approx(100 * 7 / 10)
    pn = float(path_norm(params, groups)[0])
    assert float(weight_decay_objective(0.25, params, groups, 0.1)) == pytest.approx(
        0.25 + 0.1 * pn
    )
    _net3, p3, g3 = make_net([3, 4, 5, 2], 1)
    other = 0.5 * float(np.sum(p3["layers.2.weight"] ** 2))
    pn3 = float(path_norm(p3, g3)[0])
    assert float(weight_decay_objective(0.0, p3, g3, 0.1)) == pytest.approx(0.1 * (pn3 + other))
    with pytest.raises(ValueError, match="lam must be >= 0"):
        weight_decay_objective(0.0, p3, g3, -1.0)


# ------------------------------------------------------------------------------------------------ rescaling
@given(widths, seeds, st.data())
def test_positive_per_unit_rescaling_keeps_function(sizes, seed, data):
    net, params, groups = make_net(sizes, seed)
    x = inputs(net, seed)
    scaled = dict(params)
    for pair in groups.pairs:
        n = params[pair.w].shape[0]
        a = 10.0 ** np.array(data.draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n)))
        scaled[pair.w] = params[pair.w] * a[:, None]
        scaled[pair.w_bias] = params[pair.w_bias] * a
        scaled[pair.v] = params[pair.v] / a[None, :]
    assert rel_out(net, params, scaled, x) <= 1e-10
    assert float(path_norm(scaled, groups)[0]) == pytest.approx(
        float(path_norm(params, groups)[0]), rel=1e-12
    )


@given(widths, seeds, st.floats(-3, 3))
def test_balance_units(sizes, seed, log_scale):
    net, params, groups = make_net(sizes, seed)
    params = {k: v * 10.0**log_scale if k == "layers.0.weight" else v for k, v in params.items()}
    x = inputs(net, seed)
    balanced = balance_units(params, groups)
    assert rel_out(net, params, balanced, x) <= 1e-10
    for nw, nv in unit_norms(balanced, groups):
        np.testing.assert_allclose(nw, nv, rtol=1e-12)
    wd, pn = float(weight_decay_penalty(params, groups)[0]), float(path_norm(params, groups)[0])
    assert wd >= pn
    wd_b, pn_b = (
        float(weight_decay_penalty(balanced, groups)[0]),
        float(path_norm(balanced, groups)[0]),
    )
    assert pn_b == pytest.approx(pn, rel=1e-12)
    assert wd_b == pytest.approx(pn_b, rel=1e-12)
    # the bias variant balances [w, b]
    balanced_b = balance_units(params, groups, regularize_bias=True)
    for nw, nv in unit_norms(balanced_b, groups, regularize_bias=True):
        np.testing.assert_allclose(nw, nv, rtol=1e-12)
    assert rel_out(net, params, balanced_b, x) <= 1e-10


def test_balance_units_leaves_dead_units():
    _net, params, groups = make_net([3, 4, 2], 0)
    params = dict(params)
    params["layers.1.weight"] = params["layers.1.weight"] * np.array([0.0, 1, 1, 1])
    out = balance_units(params, groups)
    np.testing.assert_array_equal(out["layers.0.weight"][0], params["layers.0.weight"][0])
    assert np.all(out["layers.1.weight"][:, 0] == 0.0)


@given(st.lists(st.integers(1, 5), min_size=4, max_size=8), seeds, st.floats(-2, 2))
def test_balance_layers(sizes, seed, log_scale):
    net, params, groups = make_net(sizes, seed)
    params = {k: v * 10.0**log_scale if k == "layers.1.weight" else v for k, v in params.items()}
    x = inputs(net, seed)
    P = [float(np.sum(nw * nv)) for nw, nv in unit_norms(params, groups)]
    assume(min(P) > 1e-3)
    out = balance_layers(params, groups)
    assert rel_out(net, params, out, x) <= 1e-10
    Q = [float(np.sum(nw * nv)) for nw, nv in unit_norms(out, groups)]
    geo = math.exp(np.mean(np.log(P)))
    np.testing.assert_allclose(Q, geo, rtol=1e-10)
    assert sum(Q) <= sum(P) * (1 + 1e-12)  # AM-GM over layer-wise rescalings
    assert math.prod(Q) == pytest.approx(math.prod(P), rel=1e-10)
    for pair in groups.pairs:  # W weights untouched
        np.testing.assert_array_equal(out[pair.w], params[pair.w])


# ---------------------------------------------------------------------------------------- proximal operators
vectors = st.integers(1, 5)


@given(seeds, vectors, st.floats(0.0, 3.0))
def test_group_soft_threshold_is_the_prox(seed, n, tau):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 4)) * rng.uniform(0.1, 3.0, size=4)
    out = group_soft_threshold(z, tau, axis=0)
    norms = np.linalg.norm(z, axis=0)
    for k in range(4):
        if norms[k] <= tau:
            assert np.all(out[:, k] == 0.0)
        else:
            np.testing.assert_allclose(np.linalg.norm(out[:, k]), norms[k] - tau, rtol=1e-12)
            np.testing.assert_allclose(out[:, k] / np.linalg.norm(out[:, k]), z[:, k] / norms[k])
            # optimality: z - x = tau x / ||x||
            np.testing.assert_allclose(
                z[:, k] - out[:, k], tau * out[:, k] / np.linalg.norm(out[:, k]), atol=1e-14
            )

        def objective(x, k=k):
            return 0.5 * np.sum((x - z[:, k]) ** 2) + tau * np.linalg.norm(x)

        best = minimize(objective, z[:, k], method="Powell", options={"xtol": 1e-10, "ftol": 1e-14})
        assert objective(out[:, k]) <= best.fun + 1e-9
        # no random perturbation does better
        trials = out[:, k] + 1e-3 * rng.standard_normal((100, n))
        assert objective(out[:, k]) <= min(objective(t) for t in trials)
    # Moreau: z = prox_{tau||.||}(z) + projection of z onto the tau-ball
    proj = z * np.minimum(1.0, tau / np.maximum(norms, 1e-300))
    np.testing.assert_allclose(out + proj, z, atol=1e-12)
    # non-expansive
    z2 = z + rng.standard_normal(z.shape)
    out2 = group_soft_threshold(z2, tau, axis=0)
    for k in range(4):
        assert np.linalg.norm(out[:, k] - out2[:, k]) <= np.linalg.norm(z[:, k] - z2[:, k]) + 1e-12


def test_group_soft_threshold_boundary_and_axis():
    z = np.array([[3.0, 0.3], [4.0, 0.4]])  # column norms 5 and 0.5
    np.testing.assert_array_equal(
        group_soft_threshold(z, 0.5, axis=0)[:, 1], [0.0, 0.0]
    )  # <= is zero
    np.testing.assert_allclose(group_soft_threshold(z, 0.5, axis=0)[:, 0], [2.7, 3.6])
    np.testing.assert_allclose(
        group_soft_threshold(z.T, 0.5, axis=1), group_soft_threshold(z, 0.5, axis=0).T
    )
    np.testing.assert_array_equal(group_soft_threshold(z, 0.0, axis=0), z)


@given(seeds, st.integers(1, 4), st.floats(-8, 1))
def test_project_unit_sphere(seed, n_in, log_norm):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((5, n_in))
    W = (
        W
        / np.linalg.norm(W, axis=1, keepdims=True)
        * 10.0 ** (log_norm + rng.uniform(0, 1, (5, 1)))
    )
    b = rng.standard_normal(5)
    Wp, bp = project_unit_sphere(W, b)
    norms = np.linalg.norm(W, axis=1)
    on_sphere = norms >= SPHERE_EPS
    np.testing.assert_allclose(np.linalg.norm(Wp[on_sphere], axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(Wp[~on_sphere], W[~on_sphere] / SPHERE_EPS, rtol=1e-12)
    np.testing.assert_allclose(bp * np.maximum(norms, SPHERE_EPS), b, rtol=1e-12)
    # the nearest point of the sphere: no random unit vector is closer
    u = rng.standard_normal((200, n_in))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    for k in np.flatnonzero(on_sphere):
        assert np.linalg.norm(Wp[k] - W[k]) <= np.min(np.linalg.norm(u - W[k], axis=1)) + 1e-12
    Wj, bj = project_unit_sphere(W, b, include_bias=True)
    nj = np.sqrt(np.sum(Wj**2, axis=1) + bj**2)
    np.testing.assert_allclose(nj[np.sqrt(norms**2 + b**2) >= SPHERE_EPS], 1.0, rtol=1e-12)
    assert project_unit_sphere(W)[1] is None
    np.testing.assert_array_equal(project_unit_sphere(np.zeros((2, 3)))[0], 0.0)


def norm_product_objective(x, y, a, c, tau):
    return (
        0.5 * np.sum((x - a) ** 2)
        + 0.5 * np.sum((y - c) ** 2)
        + tau * np.linalg.norm(x) * np.linalg.norm(y)
    )


@given(seeds, st.floats(0.0, 2.5), st.integers(1, 3), st.integers(1, 3))
def test_prox_norm_product_against_grid_and_scipy(seed, tau, n_in, n_out):
    rng = np.random.default_rng(seed)
    N = 3
    W = rng.standard_normal((N, n_in)) * rng.uniform(0.05, 3, (N, 1))
    V = rng.standard_normal((n_out, N)) * rng.uniform(0.05, 3, (1, N))
    Wp, Vp = prox_norm_product(W, V, tau)
    r_grid = np.linspace(0, 1, 401)
    for k in range(N):
        a, c = W[k], V[:, k]
        alpha, beta = np.linalg.norm(a), np.linalg.norm(c)
        x, y = Wp[k], Vp[:, k]
        value = norm_product_objective(x, y, a, c, tau)
        # x, y keep the directions of a, c
        assert np.linalg.norm(x - np.linalg.norm(x) * a / alpha) <= 1e-12 * (1 + alpha)
        assert np.linalg.norm(y - np.linalg.norm(y) * c / beta) <= 1e-12 * (1 + beta)
        R, S = np.meshgrid(r_grid * alpha * 1.2, r_grid * beta * 1.2, indexing="ij")
        grid = 0.5 * (R - alpha) ** 2 + 0.5 * (S - beta) ** 2 + tau * R * S
        assert value <= grid.min() + 1e-12
        for start in ((a, c), (0.5 * a, 0.5 * c)):
            res = minimize(
                lambda z, a=a, c=c: norm_product_objective(z[:n_in], z[n_in:], a, c, tau),
                np.concatenate(start),
                method="Powell",
                options={"xtol": 1e-10, "ftol": 1e-14},
            )
            assert value <= res.fun + 1e-9
        # optimality conditions
        nx, ny = np.linalg.norm(x), np.linalg.norm(y)
        if nx > 0 and ny > 0:
            np.testing.assert_allclose(x - a + tau * ny * x / nx, 0.0, atol=1e-12 * (1 + alpha))
            np.testing.assert_allclose(y - c + tau * nx * y / ny, 0.0, atol=1e-12 * (1 + beta))
            assert tau < 1
        elif nx == 0:
            np.testing.assert_array_equal(y, c)
            assert alpha <= tau * beta * (1 + 1e-12)
        else:
            np.testing.assert_array_equal(x, a)
            assert beta <= tau * alpha * (1 + 1e-12)


def test_prox_norm_product_against_grid_sweep():
    """600 seeded cases over tau in [0, 2]: the closed form never loses to a 401 x 401 grid in (r, s)."""
    rng = np.random.default_rng(0)
    r_grid = np.linspace(0, 1.2, 401)
    for tau in np.linspace(0.0, 2.0, 21):
        W = rng.standard_normal((30, 3)) * rng.uniform(0.05, 3, (30, 1))
        V = rng.standard_normal((2, 30)) * rng.uniform(0.05, 3, (1, 30))
        Wp, Vp = prox_norm_product(W, V, tau)
        alpha, beta = np.linalg.norm(W, axis=1), np.linalg.norm(V, axis=0)
        r, s = np.linalg.norm(Wp, axis=1), np.linalg.norm(Vp, axis=0)
        value = 0.5 * (r - alpha) ** 2 + 0.5 * (s - beta) ** 2 + tau * r * s
        R = r_grid[None, :, None] * alpha[:, None, None]
        S = r_grid[None, None, :] * beta[:, None, None]
        grid = (
            0.5 * (R - alpha[:, None, None]) ** 2
            + 0.5 * (S - beta[:, None, None]) ** 2
            + tau * R * S
        )
        assert np.all(value <= grid.min(axis=(1, 2)) + 1e-12), tau


def test_prox_norm_product_cases():
    a = np.array([[3.0, 0.0]])  # alpha = 3
    for tau, beta, expect_r, expect_s in [
        (
            0.5,
            1.0,
            (3 - 0.5) / 0.75,
            (1 - 1.5) / 0.75,
        ),  # beta <= tau alpha: s would be < 0 -> v = 0
        (0.5, 4.0, (3 - 2) / 0.75, (4 - 1.5) / 0.75),  # interior
        (0.5, 7.0, 0.0, 7.0),  # alpha <= tau beta -> w = 0
        (2.0, 2.0, 3.0, 0.0),  # nonconvex: keep the longer (w)
        (2.0, 5.0, 0.0, 5.0),  # nonconvex: keep the longer (v)
        (1.0, 3.0, 3.0, 0.0),  # tie: w kept by convention
    ]:
        c = np.array([[beta], [0.0]])
        x, y = prox_norm_product(a, c, tau)
        r = max(expect_r, 0.0) if expect_s > 0 else 3.0
        s = max(expect_s, 0.0)
        assert np.linalg.norm(x) == pytest.approx(r, abs=1e-14), (tau, beta)
        assert np.linalg.norm(y) == pytest.approx(s, abs=1e-14), (tau, beta)
    # never zeroes both (unless both are zero); tau = 0 is the identity
    x, y = prox_norm_product(np.ones((3, 2)), np.ones((2, 3)), 0.0)
    np.testing.assert_array_equal(x, 1.0)
    x, y = prox_norm_product(np.zeros((1, 2)), np.zeros((2, 1)), 0.3)
    assert np.all(x == 0) and np.all(y == 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: group_soft_threshold(np.ones(3), -0.1),
        lambda: prox_norm_product(np.ones((2, 2)), np.ones((2, 2)), -1.0),
    ],
)
def test_negative_tau(call):
    with pytest.raises(ValueError, match="tau must be >= 0"):
        call()


def test_prox_bad_input():
    with pytest.raises(FloatingPointError, match="z holds 1 non-finite"):
        group_soft_threshold(np.array([1.0, np.nan]), 0.1)
    with pytest.raises(FloatingPointError, match="W holds"):
        project_unit_sphere(np.array([[np.inf, 1.0]]))
    with pytest.raises(ValueError, match=r"V must have shape \(n_out, 2\)"):
        prox_norm_product(np.ones((2, 3)), np.ones((3, 3)), 0.1)
    with pytest.raises(ValueError, match="W must be 2-d"):
        prox_norm_product(np.ones(3), np.ones((3, 3)), 0.1)
    with pytest.raises(ValueError, match=r"b must have shape \(2,\)"):
        project_unit_sphere(np.ones((2, 3)), np.ones(3))
    with pytest.raises(TypeError, match="must have dtype float32 or float64"):
        group_soft_threshold(np.ones(3, dtype=np.int64), 0.1)
    with pytest.raises(ValueError, match="axis must be in"):
        group_soft_threshold(np.ones((2, 2)), 0.1, axis=2)


# ---------------------------------------------------------------------------------------------- optimizer
def run_steps(opt, net, params, state, x, y, steps):
    for _ in range(steps):
        _, grads = net.value_and_grad(params, x, y)
        params, state = opt.update(grads, state, params)
    return params, state


def data_for(net, seed, n=12):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, net.sizes[0])), rng.integers(0, net.sizes[-1], n)


@pytest.mark.parametrize("prox", ["sphere", "joint"])
@pytest.mark.parametrize("regularize_bias", [False, True])
def test_pathprox_update_is_step_balance_prox(prox, regularize_bias):
    net, params, groups = make_net([4, 6, 5, 6, 5, 3], 3)  # 2 pairs + an "other" layer
    x, y = data_for(net, 0)
    lr, lam = 0.2, 0.3
    opt = pathprox(lr, lam, groups=groups, prox=prox, regularize_bias=regularize_bias)
    state = opt.init(params)
    _, grads = net.value_and_grad(params, x, y)
    new, new_state = opt.update(grads, state, params)
    assert new_state.step == 1
    # the reference: the composition of the public pieces
    ref = {k: params[k] - lr * grads[k] for k in params}
    ref["layers.4.weight"] = ref["layers.4.weight"] - lr * lam * params["layers.4.weight"]
    if (
        regularize_bias
    ):  # the other layer's bias and every pair's V bias (the authors' collect_other_norm)
        for key in ("layers.4.bias", "layers.1.bias", "layers.3.bias"):
            ref[key] = ref[key] - lr * lam * params[key]
    else:
        ref = balance_layers(ref, groups)
    tau = lam * lr
    for pair in groups.pairs:
        W, b, V = ref[pair.w], ref[pair.w_bias], ref[pair.v]
        if prox == "sphere":
            W, b = project_unit_sphere(W, b, include_bias=regularize_bias)
            V = group_soft_threshold(V, tau, axis=0)
        elif regularize_bias:
            Wb, V = prox_norm_product(np.concatenate([W, b[:, None]], axis=1), V, tau)
            W, b = Wb[:, :-1], Wb[:, -1]
        else:
            W, V = prox_norm_product(W, V, tau)
        ref[pair.w], ref[pair.w_bias], ref[pair.v] = W, b, V
    for key in params:
        assert relative_error(new[key], ref[key]) < 1e-13, key


def test_pathprox_prunes_and_sgd_weight_decay_does_not():
    net, params, groups = make_net([4, 16, 3], 0)
    x, y = data_for(net, 1, n=30)
    lam = 0.5
    prox = pathprox(0.1, lam, groups=groups)
    p_prox, _ = run_steps(prox, net, params, prox.init(params), x, y, 200)
    wd = sgd_weight_decay(0.1, lam, groups=groups)
    p_wd, _ = run_steps(wd, net, params, wd.init(params), x, y, 200)
    assert active_units(p_prox, groups) < 100.0
    assert active_units(p_wd, groups) == 100.0
    np.testing.assert_allclose(np.linalg.norm(p_prox["layers.0.weight"], axis=1), 1.0, rtol=1e-12)


def test_sgd_weight_decay_is_sgd_with_decay_on_weights():
    net, params, groups = make_net([4, 5, 6, 3], 2)
    x, y = data_for(net, 2)
    opt = sgd_weight_decay(0.1, 0.05, groups=groups, momentum=0.9)
    state = opt.init(params)
    _, grads = net.value_and_grad(params, x, y)
    new, state = opt.update(grads, state, params)
    for key in params:
        decay = 0.05 * params[key] if key.endswith("weight") else 0.0
        np.testing.assert_allclose(new[key], params[key] - 0.1 * (grads[key] + decay), rtol=1e-14)
    new2, _ = opt.update(grads, state, new)
    for key in params:
        d = grads[key] + (0.05 * new[key] if key.endswith("weight") else 0.0)
        buf = 0.9 * state.momentum_buffer[key] + d
        np.testing.assert_allclose(new2[key], new[key] - 0.1 * buf, rtol=1e-14)


@given(st.floats(0.05, 2.0), st.floats(1e-3, 0.05), seeds)
def test_zero_gradient_dynamics(v_scale, lr_lam, seed):
    """Loss gradient 0: weight decay shrinks geometrically and never hits 0; PathProx kills a unit in
    exactly ceil(||v_0|| / (lr·lam)) steps."""
    _net, params, groups = make_net([3, 5, 2], seed)
    params = dict(params)
    params["layers.1.weight"] = params["layers.1.weight"] * v_scale
    lr, lam = 0.5, 2 * lr_lam
    tau = lr * lam
    v0 = np.linalg.norm(params["layers.1.weight"], axis=0)
    ratios = v0 / tau
    assume(np.all(np.abs(ratios - np.round(ratios)) > 1e-6))
    expected = np.ceil(ratios).astype(int)
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    opt = pathprox(lr, lam, groups=groups)
    state, p = opt.init(params), params
    death = np.full(5, -1)
    for t in range(1, int(expected.max()) + 1):
        p, state = opt.update(zero, state, p)
        dead = np.all(p["layers.1.weight"] == 0.0, axis=0)
        death[(death < 0) & dead] = t
    np.testing.assert_array_equal(death, expected)
    wd = sgd_weight_decay(lr, lam, groups=groups)
    state, p = wd.init(params), params
    steps = int(expected.max()) + 50
    for _ in range(steps):
        p, state = wd.update(zero, state, p)
    assert np.all(p["layers.1.weight"] != 0.0) and np.all(p["layers.0.weight"] != 0.0)
    np.testing.assert_allclose(
        p["layers.1.weight"], params["layers.1.weight"] * (1 - tau) ** steps, rtol=1e-10
    )


def test_lr_schedule_sets_tau():
    _net, params, groups = make_net([3, 4, 2], 0)
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    schedule = cosine(0.4, total_steps=10)
    opt = pathprox(schedule, 0.1, groups=groups, layer_balance=False)
    p, state = opt.update(zero, opt.init(params), params)
    p, state = opt.update(zero, state, p)  # the second step uses lr = schedule(1)
    p1, _ = opt.update(zero, opt.init(params), params)
    expect = group_soft_threshold(p1["layers.1.weight"], 0.1 * schedule(1), axis=0)
    np.testing.assert_allclose(p["layers.1.weight"], expect, rtol=1e-14)


def test_optimizer_bad_input_changes_nothing():
    net, params, groups = make_net([3, 4, 5, 2], 0)
    x, y = data_for(net, 0)
    opt = pathprox(0.1, 0.01, groups=groups, momentum=0.5)
    state = opt.init(params)
    _, grads = net.value_and_grad(params, x, y)
    params, state = opt.update(grads, state, params)
    before = {k: v.copy() for k, v in params.items()}
    buffers = {k: v.copy() for k, v in state.momentum_buffer.items()}
    bad = dict(grads)
    bad["layers.1.weight"] = bad["layers.1.weight"].copy()
    bad["layers.1.weight"][0, 0] = np.nan
    with pytest.raises(FloatingPointError, match=r"layers\.1\.weight"):
        opt.update(bad, state, params)
    bad_params = dict(params)
    bad_params["layers.0.bias"] = np.full(4, np.inf)
    with pytest.raises(FloatingPointError, match=r"layers\.0\.bias"):
        opt.update(grads, state, bad_params)
    with pytest.raises(ValueError, match="not a key of params"):
        pathprox(0.1, 0.01, groups=Groups((Group("x", "y"),))).update(grads, state, params)
    with pytest.raises(TypeError, match="PathProxState"):
        opt.update(grads, (0, {}), params)
    for key in params:
        np.testing.assert_array_equal(params[key], before[key])
        np.testing.assert_array_equal(state.momentum_buffer[key], buffers[key])
    assert state.step == 1
    with pytest.raises(ValueError, match="lam must be >= 0"):
        pathprox(0.1, -1e-4, groups=groups)
    with pytest.raises(ValueError, match="lr must be > 0"):
        sgd_weight_decay(0.0, 1e-4, groups=groups)
    with pytest.raises(ValueError, match="prox must be one of 'sphere', 'joint'"):
        pathprox(0.1, 1e-4, groups=groups, prox="none")
    with pytest.raises(ValueError, match="momentum must be in"):
        pathprox(0.1, 1e-4, groups=groups, momentum=1.0)
    with pytest.raises(TypeError, match="groups must be"):
        pathprox(0.1, 1e-4, groups={"pairs": []})


@pytest.mark.parametrize("make", ["sphere", "joint", "wd"])
def test_state_round_trips_and_resume_is_bitwise(tmp_path, make):
    net, params, groups = make_net([4, 6, 5, 3], 5)
    x, y = data_for(net, 5)
    if make == "wd":
        opt = sgd_weight_decay(0.2, 0.05, groups=groups, momentum=0.9)
    else:
        opt = pathprox(0.2, 0.05, groups=groups, momentum=0.9, prox=make)
    state = opt.init(params)
    full_p, full_s = run_steps(opt, net, params, state, x, y, 6)
    half_p, half_s = run_steps(opt, net, params, state, x, y, 3)
    io.save(tmp_path / "ckpt.npz", half_p, half_s)
    loaded_p, loaded_s = io.load(tmp_path / "ckpt.npz")
    assert isinstance(loaded_s, PathProxState) and loaded_s.step == 3
    res_p, res_s = run_steps(opt, net, loaded_p, loaded_s, x, y, 3)
    for key in params:
        np.testing.assert_array_equal(res_p[key], full_p[key])
        np.testing.assert_array_equal(res_s.momentum_buffer[key], full_s.momentum_buffer[key])


# ----------------------------------------------------------------------------------------------- backends
def test_backends(xp):
    net, params_np, groups = make_net([4, 6, 5, 6, 3], 7)
    x_np, y_np = data_for(net, 7)
    for dtype in ("float64", "float32"):
        tol = 1e-12 if dtype == "float64" else 2e-5
        params = {k: xp.asarray(v.astype(dtype)) for k, v in params_np.items()}
        ref = {k: v.astype(dtype).astype(np.float64) for k, v in params_np.items()}
        W, V = params["layers.0.weight"], params["layers.1.weight"]
        out = group_soft_threshold(V, 0.2, axis=0)
        assert out.dtype == V.dtype
        np.testing.assert_allclose(
            asnumpy(out), group_soft_threshold(ref["layers.1.weight"], 0.2, 0), atol=tol
        )
        Wp, bp = project_unit_sphere(W, params["layers.0.bias"])
        assert Wp.dtype == W.dtype and bp.dtype == W.dtype
        np.testing.assert_allclose(
            asnumpy(Wp), project_unit_sphere(ref["layers.0.weight"])[0], rtol=tol
        )
        for tau in (0.3, 1.5):
            x_, y_ = prox_norm_product(W, V, tau)
            xr, yr = prox_norm_product(ref["layers.0.weight"], ref["layers.1.weight"], tau)
            assert x_.dtype == W.dtype
            np.testing.assert_allclose(asnumpy(x_), xr, atol=tol)
            np.testing.assert_allclose(asnumpy(y_), yr, atol=tol)
        for fn in (path_norm, weight_decay_penalty):
            value, _grads = fn(params, groups)
            assert value.dtype == W.dtype
            assert float(value) == pytest.approx(float(fn(ref, groups)[0]), rel=tol)
        for fn in (balance_layers, balance_units):
            got = fn(params, groups)
            want = fn(ref, groups)
            for k in params:
                assert got[k].dtype == W.dtype
                np.testing.assert_allclose(asnumpy(got[k]), want[k], rtol=10 * tol, atol=10 * tol)
        assert active_units(params, groups) == 100.0
        x, y = xp.asarray(x_np.astype(dtype)), xp.asarray(y_np)
        for opt in (
            pathprox(0.1, 0.05, groups=groups, momentum=0.9),
            pathprox(0.1, 0.05, groups=groups, prox="joint"),
            sgd_weight_decay(0.1, 0.05, groups=groups),
        ):
            p, _ = run_steps(opt, net, params, opt.init(params), x, y, 2)
            p_ref, _ = run_steps(opt, net, ref, opt.init(ref), x_np, y_np, 2)
            for k in params:
                assert p[k].dtype == W.dtype
                np.testing.assert_allclose(asnumpy(p[k]), p_ref[k], rtol=100 * tol, atol=100 * tol)


# ------------------------------------------------------------------------- weights beyond sqrt(float max)
@pytest.mark.parametrize("c", [2.0**664, 2.0**-664, 1e200, 1e-200])
@pytest.mark.parametrize("tau", [0.3, 1.5])
def test_prox_norm_product_is_scale_free_at_extreme_scales(c, tau):
    """prox(cW, cV) = c·prox(W, V): exact for powers of two; Σw² overflowed at 1e200 and gave NaN."""
    rng = np.random.default_rng(3)
    W, V = rng.standard_normal((5, 4)), rng.standard_normal((3, 5))
    W[1] *= 0.2  # some units zeroed, some kept
    fw, fv = prox_norm_product(W, V, tau)
    gw, gv = prox_norm_product(W * c, V * c, tau)
    assert np.isfinite(gw).all() and np.isfinite(gv).all()
    if math.log2(c).is_integer():
        np.testing.assert_array_equal(gw, fw * c)
        np.testing.assert_array_equal(gv, fv * c)
    else:
        np.testing.assert_allclose(gw / c, fw, rtol=1e-14, atol=0)
        np.testing.assert_allclose(gv / c, fv, rtol=1e-14, atol=0)


@pytest.mark.parametrize("c", [2.0**70, 2.0**100, 2.0**-70, 2.0**-100])
@pytest.mark.parametrize("tau", [0.3, 1.5])
def test_prox_norm_product_is_scale_free_in_float32(c, tau):
    """float32 squares overflow at 2^64 and go subnormal below 2^-63: W = 2^70 gave NaN with float64 bounds."""
    rng = np.random.default_rng(4)
    W, V = (
        rng.standard_normal((5, 4)).astype(np.float32),
        rng.standard_normal((3, 5)).astype(np.float32),
    )
    W[1] *= 0.2
    fw, fv = prox_norm_product(W, V, tau)
    gw, gv = prox_norm_product(W * np.float32(c), V * np.float32(c), tau)
    np.testing.assert_array_equal(gw, fw * np.float32(c))
    np.testing.assert_array_equal(gv, fv * np.float32(c))


@pytest.mark.parametrize("c", [2.0**70, 2.0**-80, 2.0**-120])
@pytest.mark.parametrize("axis", [0, 1])
def test_group_soft_threshold_in_float32_beyond_the_squares_range(c, axis):
    """Σz² overflows above 2^64 and underflows below 2^-75 in float32: the prox is still the float64 one."""
    z = (np.arange(1.0, 7.0).reshape(3, 2) * c).astype(np.float32)
    z64 = z.astype(np.float64)
    norms = np.linalg.vector_norm(z64, axis=axis, keepdims=True)
    # τ = 0, 1e-3·min norm, 0.9·min norm, 1.1·max norm (all zeroed), 1.0
    for tau in (
        0.0,
        1e-3 * float(norms.min()),
        0.9 * float(norms.min()),
        1.1 * float(norms.max()),
        1.0,
    ):
        with np.errstate(all="raise"):
            got = group_soft_threshold(z, tau, axis=axis)
        want = group_soft_threshold(z64, tau, axis=axis)  # float64 squares are safe at these scales
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6, atol=0)


@pytest.mark.parametrize("prox", ["sphere", "joint"])
@pytest.mark.parametrize("layer_balance", [True, False])
def test_float32_reference_update_with_weights_of_2_to_70(prox, layer_balance):
    """The reference update (balance, then the public prox) stays finite where float32 squares overflow."""
    net = MLP([6, 5, 4, 3])
    base = {k: v.astype(np.float32) for k, v in net.init(rng=0).items()}
    big = {k: v * np.float32(2.0**70) for k, v in base.items()}
    grads = {k: np.ones_like(v) for k, v in big.items()}
    opt = pathprox(0.1, 1e-3, groups=pair_groups(net), prox=prox, layer_balance=layer_balance)
    out, _ = opt.reference_update(grads, opt.init(big), big)
    for k in out:
        assert out[k].dtype == np.float32 and np.isfinite(out[k]).all(), k


@pytest.mark.parametrize("prox", ["sphere", "joint"])
def test_pathprox_update_with_weights_of_1e200(prox):
    """The unit norms are computed without overflow: finite, and homogeneous for the joint prox."""
    net = MLP([3, 4, 4, 2])
    base = net.init(rng=0)
    grads = {k: np.ones_like(v) for k, v in base.items()}
    opt = pathprox(0.1, 1e-3, groups=pair_groups(net), prox=prox)
    ref, _ = opt.update(grads, opt.init(base), base)
    big = {k: v * 2.0**664 for k, v in base.items()}
    out, _ = opt.update({k: g * 2.0**664 for k, g in grads.items()}, opt.init(big), big)
    for k in out:
        assert np.isfinite(out[k]).all(), k
        if prox == "joint":
            np.testing.assert_allclose(out[k] / 2.0**664, ref[k], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("prox", ["sphere", "joint"])
@pytest.mark.parametrize("scale", [2.0**-520, 2.0**-300, 2.0**-70, 1.0, 2.0**600])
def test_fused_update_norms_at_extreme_scales_and_zero_units(prox, scale):
    """The fused update's sums of squares fall back to the plain norms wherever the squares would overflow
    or underflow (refreg.pathprox.fused), so it stays within rounding of the reference at any scale."""
    net = MLP([5, 6, 4, 3])
    params = {k: v * scale for k, v in net.init(rng=1).items()}
    params["layers.0.weight"][2] = 0.0  # an all-zero unit: its zero sum of squares is exact
    params["layers.1.weight"][1, 0] = 1e-300 * scale  # one square underflows on its own
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    opt = pathprox(0.1, 1e-3, groups=pair_groups(net), prox=prox)
    out, _ = opt.update(grads, opt.init(params), params)
    ref, _ = opt.reference_update(grads, opt.init(params), params)
    for k in out:
        assert np.isfinite(out[k]).all(), k
        np.testing.assert_allclose(out[k], ref[k], rtol=1e-12, atol=0)


@pytest.mark.parametrize("regularize_bias", [False, True])
def test_weight_decay_objective_is_half_the_squared_norm_at_the_balanced_point(regularize_bias):
    """At the per-unit balanced point the objective equals loss + λ/2·||θ||² over every decayed array: all
    weights, and with ``regularize_bias`` every bias, the pairs' V biases included (they were left out, so the
    objective missed λ/2·Σ||b_V||²; the authors' collect_other_norm counts them)."""
    from refreg.pathprox import weight_decay_objective

    _, params, groups = make_net([4, 6, 5, 6, 5, 3], 4)  # 2 pairs + an "other" layer
    lam = 0.3
    balanced = balance_units(params, groups, regularize_bias=regularize_bias)
    value = float(
        weight_decay_objective(0.0, balanced, groups, lam, regularize_bias=regularize_bias)
    )
    keys = [k for k in balanced if k.endswith("weight") or regularize_bias]
    expected = 0.5 * lam * sum(float(np.sum(balanced[k] ** 2)) for k in keys)
    assert value == pytest.approx(expected, rel=1e-13)
