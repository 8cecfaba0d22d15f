"""Weight decay and the norm-product (path-norm) objective: AM-GM, rescaling, equal minima (docs/derivations.md, section 1)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize, minimize_scalar

from refreg.nn import MLP
from refreg.pathprox import balance_units, pair_groups, path_norm, unit_norms, weight_decay_penalty

seeds = st.integers(0, 2**32 - 1)


@given(
    st.lists(st.floats(-10, 10), min_size=1, max_size=6),
    st.lists(st.floats(-10, 10), min_size=1, max_size=6),
)
def test_unit_am_gm(w, v):
    w, v = np.array(w), np.array(v)
    nw, nv = np.linalg.norm(w), np.linalg.norm(v)
    gap = 0.5 * (nw**2 + nv**2) - nw * nv
    assert gap >= 0.0
    assert gap == pytest.approx(0.5 * (nw - nv) ** 2, abs=1e-12 * (1 + nw**2 + nv**2))
    # equality exactly at ||w|| = ||v||: rescale w onto ||v||
    if nw > 0:
        ws = w * (nv / nw)
        nws = np.linalg.norm(ws)
        assert 0.5 * (nws**2 + nv**2) == pytest.approx(nws * nv, rel=1e-12, abs=1e-300)


@given(st.lists(st.integers(1, 5), min_size=3, max_size=5), seeds, st.floats(-2, 2))
def test_min_over_rescaling_is_the_path_norm(sizes, seed, log_scale):
    """min_{a>0} ½(a²||w||² + ||v||²/a²) = ||w||·||v||, at a² = ||v||/||w|| (minimize_scalar per unit), and
    the minimum of the network's weight-decay penalty over all per-unit rescalings is its path norm."""
    net = MLP(sizes)
    groups = pair_groups(net)
    params = net.init(rng=seed)
    params["layers.0.weight"] = params["layers.0.weight"] * 10.0**log_scale
    total = 0.0
    for nw, nv in unit_norms(params, groups):
        for a_w, a_v in zip(nw, nv, strict=True):
            res = minimize_scalar(
                lambda t, a_w=a_w, a_v=a_v: (
                    0.5 * (np.exp(2 * t) * a_w**2 + a_v**2 * np.exp(-2 * t))
                ),
                bracket=(-1.0, 1.0),
                tol=1e-12,
            )
            assert res.fun == pytest.approx(a_w * a_v, rel=1e-9)
            assert np.exp(2 * res.x) == pytest.approx(a_v / a_w, rel=1e-5)
            total += res.fun
    pn = float(path_norm(params, groups)[0])
    assert total == pytest.approx(pn, rel=1e-9)
    assert float(weight_decay_penalty(params, groups)[0]) >= pn
    balanced = balance_units(params, groups)
    assert float(weight_decay_penalty(balanced, groups)[0]) == pytest.approx(pn, rel=1e-12)


# ------------------------------------------------------------------------------- equivalence of minimizers
def tiny_problem(seed, n_hidden=3, n=8):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    y = np.abs(x[:, :1]) - 0.5 * x[:, 1:] + 0.1 * rng.standard_normal((n, 1))
    return MLP([2, n_hidden, 1]), x, y


def objectives(net, x, y, lam):
    groups = pair_groups(net)
    shapes = net.param_shapes()
    sizes = [int(np.prod(s)) for s in shapes.values()]

    def unpack(theta):
        out, i = {}, 0
        for (key, shape), size in zip(shapes.items(), sizes, strict=True):
            out[key] = theta[i : i + size].reshape(shape)
            i += size
        return out

    def pack(params):
        return np.concatenate([np.asarray(params[k]).ravel() for k in shapes])

    def make(penalty):
        def f(theta):
            params = unpack(theta)
            value, grads = net.value_and_grad(params, x, y, loss="mse")
            p_value, p_grads = penalty(params, groups)
            return float(value) + lam * float(p_value), pack(
                {k: grads[k] + lam * p_grads[k] for k in shapes}
            )

        return f

    return make(weight_decay_penalty), make(path_norm), pack, unpack, groups


RTOL = 1e-3


def best_of(f, starts):
    results = [minimize(f, t0, jac=True, method="BFGS", options={"gtol": 1e-10}) for t0 in starts]
    return min(results, key=lambda r: r.fun)


def check_equivalence(seed, n_starts, n_hidden, lam=0.05):
    """Both objectives from the same random starts, then each also from the other's best point (balanced
    for weight decay): the best values agree, WD minimizers are balanced, and balancing a norm-product
    minimizer gives a weight-decay minimizer. Exchanging the starts makes the check independent of which
    local basin the random starts happen to find; a wrong penalty, gradient or balance breaks it.
    The tolerance (RTOL = 1e-3) is BFGS's accuracy on the norm-product objective, which is not smooth where
    a unit's norm reaches 0 (measured gaps 1e-16 to 4e-4 over 16 seeded problems)."""
    net, x, y = tiny_problem(seed, n_hidden)
    wd, pn, pack, unpack, groups = objectives(net, x, y, lam)
    rng = np.random.default_rng(seed)
    starts = [pack(net.init(rng=rng)) * rng.uniform(0.5, 2.0) for _ in range(n_starts)]
    best_wd, best_pn = best_of(wd, starts), best_of(pn, starts)
    cross_wd = best_of(wd, [pack(balance_units(unpack(best_pn.x), groups))])
    cross_pn = best_of(pn, [best_wd.x])
    best_wd = min(best_wd, cross_wd, key=lambda r: r.fun)
    best_pn = min(best_pn, cross_pn, key=lambda r: r.fun)
    # same minimum value
    assert best_pn.fun == pytest.approx(best_wd.fun, rel=RTOL), (best_pn.fun, best_wd.fun)
    # a weight-decay minimizer is balanced: WD - PN_obj = lam/2 Σ(||w_k|| - ||v_k||)² vanishes there
    imbalance = sum(
        float(np.sum((nw - nv) ** 2)) for nw, nv in unit_norms(unpack(best_wd.x), groups)
    )
    assert 0.5 * lam * imbalance <= RTOL * best_wd.fun
    # balancing a norm-product minimizer gives a weight-decay minimizer: WD there equals min WD, and
    # no descent from it does better
    balanced = pack(balance_units(unpack(best_pn.x), groups))
    value_balanced = wd(balanced)[0]
    assert value_balanced == pytest.approx(best_pn.fun, rel=1e-10)
    assert value_balanced == pytest.approx(best_wd.fun, rel=RTOL)
    polished = best_of(wd, [balanced])
    assert polished.fun >= value_balanced * (1 - RTOL)
    return best_wd.fun, best_pn.fun


@pytest.mark.parametrize("seed", [0, 1])
def test_weight_decay_and_norm_product_share_minima(seed):
    check_equivalence(seed, n_starts=4, n_hidden=3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 8))
def test_weight_decay_and_norm_product_share_minima_many_starts(seed):
    check_equivalence(seed, n_starts=20, n_hidden=5)
