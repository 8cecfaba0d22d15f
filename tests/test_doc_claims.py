"""Statements of README.md, PORTING.md and docstrings that a port relies on, checked against the code.

Each test fails if the code and the sentence it checks part ways: the sphere projection's reciprocal, the exact
layer-balance formula (floor in both factors), the joint prox's convexity and tie rule, MLP.init's random
draws, the naming of ``refreg.cpr``, the measured gaps between CPR's scalar policies and the release, and the
citations.
"""

from __future__ import annotations

import inspect
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import refreg
from refreg import pathprox
from refreg.nn import MLP

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------- project_unit_sphere
def test_sphere_projection_multiplies_by_the_reciprocal():
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((400, 30)), rng.standard_normal(400)
    W[0] = 0.0
    W[1] = 1e-8
    Wp, bp = pathprox.project_unit_sphere(W, b)
    inv = 1.0 / np.maximum(np.sqrt(np.sum(W * W, axis=1)), 1e-6)
    assert Wp.tobytes() == (W * inv[:, None]).tobytes() and bp.tobytes() == (b * inv).tobytes()
    divided = W / np.maximum(np.linalg.norm(W, axis=1), 1e-6)[:, None]
    assert 0.15 < np.mean(Wp != divided) < 0.35
    # PORTING.md's number: 25.4 % for 1,000 rows of 30 draws of default_rng(0)
    W = np.random.default_rng(0).standard_normal((1000, 30))
    Wp, _ = pathprox.project_unit_sphere(W, np.zeros(1000))
    divided = W / np.maximum(np.linalg.norm(W, axis=1), 1e-6)[:, None]
    assert round(100 * float(np.mean(Wp != divided)), 1) == 25.4


# ------------------------------------------------------------------------------------ balance_layers
def _layer_balance_as_documented(params, groups):
    """balance_layers' docstring, literally: log_j = log max(P_j, 1e-6), a_g = exp((g+1)·mean(log) − Σ_{j≤g} log_j)."""
    P = [
        np.sum(np.linalg.norm(params[g.w], axis=1) * np.linalg.norm(params[g.v], axis=0))
        for g in groups.pairs
    ]
    logs = [np.log(max(p, 1e-6)) for p in P]
    mean = sum(logs) / len(logs)
    s, cum = [], 0.0
    for g in range(len(P) - 1):
        cum = cum + logs[g]
        s.append(np.exp((g + 1) * mean - cum))
    s.append(1.0)
    out, prev = dict(params), 1.0
    for g, pair in enumerate(groups.pairs):
        out[pair.v] = params[pair.v] * (s[g] / prev)
        if pair.v_bias is not None:
            out[pair.v_bias] = params[pair.v_bias] * s[g]
        if g + 1 < len(groups.pairs) and groups.pairs[g + 1].w_bias is not None:
            out[groups.pairs[g + 1].w_bias] = params[groups.pairs[g + 1].w_bias] * s[g]
        prev = s[g]
    return out, P


@pytest.mark.parametrize("dead", [False, True])
def test_balance_layers_is_the_documented_formula(dead):
    net = MLP([3, 5, 4, 6, 4, 3, 2])
    groups = pathprox.pair_groups(net)
    params = net.init(rng=1)
    if dead:
        params["layers.3.weight"][:] = 0.0  # P_1 = 0: the floor decides
    ours = pathprox.balance_layers(params, groups)
    documented, P = _layer_balance_as_documented(params, groups)
    for k in params:
        assert ours[k].tobytes() == documented[k].tobytes(), k
    if dead:
        assert P[1] == 0.0
        # a port with the floor in G only divides by Π P_j = 0
        G = math.prod(max(p, 1e-6) for p in P) ** (1 / len(P))
        with np.errstate(divide="ignore"):
            assert not np.isfinite(np.float64(G) ** 2 / np.float64(P[0] * P[1]))


# --------------------------------------------------------------------------------- prox_norm_product
def _objective(x, y, a, c, tau):
    return (
        0.5 * np.sum((x - a) ** 2)
        + 0.5 * np.sum((y - c) ** 2)
        + tau * np.linalg.norm(x) * np.linalg.norm(y)
    )


def test_joint_prox_tau_one_is_convex_with_a_segment_of_minimizers_on_ties():
    a, c = np.array([0.6, 0.8]), np.array([0.8, 0.6])  # ||a|| = ||c|| = 1 in floating point
    W, V = pathprox.prox_norm_product(a[None, :], c[:, None], 1.0)
    x, y = W[0], V[:, 0]
    assert np.array_equal(x, a) and np.all(y == 0)  # the documented choice (a, 0)
    best = _objective(x, y, a, c, 1.0)
    for r in np.linspace(0.0, 1.0, 11):  # every split r + s = ||a|| = 1 has the same value
        assert abs(_objective(r * a, (1 - r) * c, a, c, 1.0) - best) < 1e-15


@pytest.mark.parametrize("tau", [0.3, 1.0])
def test_joint_prox_problem_is_convex_for_tau_at_most_one(tau):
    rng = np.random.default_rng(2)
    a, c = rng.standard_normal(3), rng.standard_normal(4)
    for _ in range(2000):
        p = (rng.standard_normal(3), rng.standard_normal(4))
        q = (rng.standard_normal(3), rng.standard_normal(4))
        mid = ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2)
        lhs = _objective(*mid, a, c, tau)
        rhs = (_objective(*p, a, c, tau) + _objective(*q, a, c, tau)) / 2
        assert lhs <= rhs + 1e-12


def test_joint_prox_problem_is_nonconvex_above_one():
    a, c = np.zeros(1), np.zeros(1)
    p, q = (np.array([1.0]), np.array([0.0])), (np.array([0.0]), np.array([1.0]))
    mid = (np.array([0.5]), np.array([0.5]))
    assert _objective(*mid, a, c, 1.5) > (_objective(*p, a, c, 1.5) + _objective(*q, a, c, 1.5)) / 2


def test_joint_prox_ties_follow_the_computed_norms():
    a, c = (
        np.array([0.1, 0.2, 0.2]),
        np.array([0.3]),
    )  # exact norms tie; computed 0.30000000000000004 vs 0.3
    assert np.linalg.norm(a) > np.linalg.norm(c)
    W, V = pathprox.prox_norm_product(a[None, :], c[:, None], 2.0)
    assert np.array_equal(W[0], a) and V[0, 0] == 0.0  # ||a|| >= ||c|| as computed: keep w
    W, V = pathprox.prox_norm_product(c[None, :], a[:, None], 2.0)
    assert W[0, 0] == 0.0 and np.array_equal(V[:, 0], a)


# ------------------------------------------------------------------------------------------- MLP.init
@pytest.mark.parametrize("bias", [True, False])
def test_mlp_init_draws_as_documented(bias):
    sizes, scale = [5, 4, 3], 2.5
    params = MLP(sizes, bias=bias).init(rng=7, scale=scale)
    gen = np.random.default_rng(7)
    for i in range(len(sizes) - 1):
        bound = 1.0 / math.sqrt(sizes[i])
        W = gen.uniform(-bound, bound, size=(sizes[i + 1], sizes[i])) * scale
        assert params[f"layers.{i}.weight"].tobytes() == W.tobytes()
        if bias:
            b = gen.uniform(-bound, bound, size=(sizes[i + 1],))
            assert params[f"layers.{i}.bias"].tobytes() == b.tobytes()


# ------------------------------------------------------------------------------------------------ names
def test_method_names_are_modules_with_factories_of_the_same_name():
    """``refreg.cpr``/``pathprox``/``sparse`` are subpackages; the optimizers are functions (refreg docstring)."""
    for name in ("cpr", "pathprox", "sparse"):
        assert isinstance(getattr(refreg, name), types.ModuleType)
    assert callable(refreg.cpr.cpr) and callable(refreg.pathprox.pathprox)
    assert refreg.adam_cpr is refreg.cpr.adam_cpr
    for name in ("sgd", "adam", "adamw", "adam_cpr"):
        assert inspect.isfunction(getattr(refreg, name))
    assert "refreg.cpr.cpr(" in refreg.__doc__ and "refreg.adam_cpr(" in refreg.__doc__


# ---------------------------------------------------------------------------------- CPR scalar policies
def _golden():
    """tests/test_cpr_golden.py as a module: the golden pytorch-cpr runs and their replay by refreg."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import test_cpr_golden
    finally:
        sys.path.pop(0)
    return test_cpr_golden


def test_readme_cpr_policy_numbers():
    """README: float32 scalars within 6.2e-16 of the release; the default float64 scalars 5.2e-9 to 1.7e-7."""
    golden = _golden()
    CASES, max_param_error, replay = golden.CASES, golden.max_param_error, golden.replay
    f32 = [max_param_error(*replay(n, "float32")[:2]) for n in CASES]
    f64 = [max_param_error(*replay(n, "float64")[:2]) for n in CASES]
    assert max(f32) <= 6.2e-16
    assert 5.1e-9 <= min(f64) and max(f64) <= 1.7e-7
    readme = (ROOT / "README.md").read_text()
    assert "within 6.2e-16" in readme and "5.2e-9 to 1.7e-7" in readme


# ------------------------------------------------------------------------------------------- citations
def test_citations_name_the_papers_authors():
    assert "Yang, J. Zhang, J. Shenouda, D. Papailiopoulos, K. Lee, R. D. Nowak" in " ".join(
        refreg.pathprox.__doc__.split()
    )
    assert "Gunasekar" not in refreg.pathprox.__doc__
    assert "Franke, M. Hefenbrock, G. Koehler, F. Hutter" in refreg.cpr.__doc__


def test_porting_md_float64_policy_kappa_number():
    """PORTING.md: under the default float64 scalars κ differs from the release by up to 6.3e-8 relative."""
    golden = _golden()
    worst = 0.0
    for name in golden.CASES:
        g, _, _, kappa = golden.replay(name, "float64")
        for t, step in enumerate(kappa):
            for k, value in step.items():
                ref = float(g[f"kappa/{k}"][t])
                if ref:
                    worst = max(worst, abs(value - ref) / abs(ref))
    assert 6.2e-8 <= worst <= 6.3e-8
    assert "κ by up to 6.3e-8" in (ROOT / "PORTING.md").read_text()
