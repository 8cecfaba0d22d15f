"""refreg.cpr: measures, the constraint step's mathematics, κ initializations, validation, backends, checkpoints.

The comparison with the official release is in ``test_cpr_golden.py``; the KKT test is in ``test_cpr_kkt.py``.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from conftest import asnumpy
from hypothesis import assume, given

from refreg import io
from refreg.cpr import KAPPA_UNSET, CPRState, adam_cpr, cpr, measure_grad, measure_value
from refreg.nn import MLP
from refreg.optim import adam, sgd
from refreg.testing import numerical_grad, relative_error

WEIGHTS = ("layers.0.weight", "layers.1.weight")


def small_problem(dtype="float64", xp=None, scale=1.0, seed=0):
    net = MLP([5, 7, 3], activation="tanh")
    params = net.init(rng=seed, dtype=dtype, xp=xp, scale=scale)
    gen = np.random.default_rng(seed + 100)
    xs = [gen.standard_normal((6, 5)) for _ in range(4)]
    ys = [gen.standard_normal((6, 3)) for _ in range(4)]
    return net, params, xs, ys


def train(net, opt, params, xs, ys, steps, xp=None, state=None):
    """``steps`` updates on cycled batches; returns (params, state, list of states)."""
    xp = xp or np
    dtype = params[WEIGHTS[0]].dtype
    state = opt.init(params) if state is None else state
    history = []
    for t in range(steps):
        x = xp.asarray(xs[t % len(xs)], dtype=dtype)
        y = xp.asarray(ys[t % len(ys)], dtype=dtype)
        _, grads = net.value_and_grad(params, x, y, loss="mse")
        params, state = opt.update(grads, state, params)
        history.append(state)
    return params, state, history


# ---- measures --------------------------------------------------------------------------------------------------

finite_arrays = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=1, max_dims=2, min_side=2, max_side=5),
    elements=st.floats(-3, 3, allow_nan=False),
)
# magnitudes away from the kinks of |θ| (0) and of the Huber loss (|θ| = 1), where central differences straddle them
away_from_kinks = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=1, max_dims=2, min_side=2, max_side=5),
    elements=st.one_of(
        st.floats(0.01, 0.99), st.floats(1.01, 3.0), st.floats(-0.99, -0.01), st.floats(-3.0, -1.01)
    ),
    unique=True,
)


@pytest.mark.parametrize("measure", ["l2", "std", "l1", "huber"])
@given(theta=away_from_kinks)
def test_measure_grad_matches_central_differences(measure, theta):
    if measure == "std":
        assume(np.std(theta) > 1e-2)
    numeric = numerical_grad(lambda p: measure_value(p["t"], measure), {"t": theta}, eps=1e-6)["t"]
    analytic = measure_grad(theta, measure)
    assert relative_error(analytic, numeric) < 1e-7


@given(theta=finite_arrays)
def test_measure_values_closed_forms(theta):
    assert math.isclose(float(measure_value(theta, "l2")), float(np.sum(theta**2)), rel_tol=1e-12)
    assert math.isclose(
        float(measure_value(theta, "l1")), float(np.sum(np.abs(theta))), rel_tol=1e-12
    )
    huber = np.where(np.abs(theta) <= 1, theta**2 / 2, np.abs(theta) - 0.5)  # continuous at |θ| = 1
    assert math.isclose(
        float(measure_value(theta, "huber")), float(np.sum(huber)), rel_tol=1e-12, abs_tol=1e-15
    )
    assert math.isclose(
        float(measure_value(theta, "std")),
        float(np.std(theta, ddof=1)),
        rel_tol=1e-10,
        abs_tol=1e-15,
    )


def test_measure_bad_input():
    with pytest.raises(ValueError, match="measure must be one of"):
        measure_value(np.ones(3), "l3")
    with pytest.raises(ValueError, match="std' needs a tensor with >= 2 elements"):
        measure_value(np.ones(1), "std")
    with pytest.raises(TypeError, match="must have dtype float32 or float64"):
        measure_grad(np.ones(3, dtype=np.int64), "l2")


# ---- the update ---------------------------------------------------------------------------------------------


@given(
    k=st.floats(0.3, 1.5),
    mu=st.floats(0.1, 10.0),
    measure=st.sampled_from(["l2", "std", "l1", "huber"]),
)
def test_lambda_never_negative_and_zero_while_feasible(k, mu, measure):
    net, params, xs, ys = small_problem()
    opt = adam_cpr(lr=0.05, mu=mu, kappa_init="dependent", kappa_init_param=k, measure=measure)
    _, _, history = train(net, opt, params, xs, ys, 15)
    for s in history:
        assert all(v >= 0.0 for v in s.lam.values())
    # first step: λ > 0 exactly for the tensors whose post-Adam R exceeds κ
    _, grads = net.value_and_grad(params, xs[0], ys[0], loss="mse")
    after_adam, _ = adam(0.05).update(grads, adam(0.05).init(params), params)
    for name in WEIGHTS:
        exceeds = float(measure_value(after_adam[name], measure)) > opt.init(params).kappa[name]
        assert (history[0].lam[name] > 0.0) == exceeds


@pytest.mark.parametrize("scalar_dtype", ["float64", "float32"])
def test_inactive_constraint_is_exactly_the_base_optimizer(scalar_dtype):
    """While R < κ and λ = 0 the update is bit for bit the base optimizer's."""
    net, params, xs, ys = small_problem()
    base = adam(0.05)
    opt = cpr(base, kappa_init="uniform", kappa_init_param=1e3, scalar_dtype=scalar_dtype)
    ours, state, history = train(net, opt, params, xs, ys, 12)
    theirs, _, _ = train(net, base, params, xs, ys, 12)
    for k in params:
        assert np.array_equal(ours[k], theirs[k])
    assert all(v == 0.0 for s in history for v in s.lam.values())
    assert state.step == dict.fromkeys(params, 12)


@pytest.mark.filterwarnings("ignore:CPR l2 constraint step overshoots")
def test_active_constraint_step_formula():
    """One step with SGD (lr=0): λ = (μ/n)(R − κ), θ ← θ − 2λθ (l2), by hand."""
    theta = {"w": np.arange(1.0, 7.0).reshape(2, 3)}
    opt = cpr(sgd(1e-9), kappa_init="uniform", kappa_init_param=50.0, mu=2.0)
    state = opt.init(theta)
    new, state = opt.update({"w": np.zeros((2, 3))}, state, theta)
    lam = 2.0 / 6 * (91.0 - 50.0)  # Σθ² = 91
    assert state.lam["w"] == pytest.approx(lam, rel=1e-15)
    np.testing.assert_allclose(new["w"], theta["w"] * (1 - 2 * lam), rtol=1e-14)


def test_overshoot_warns_and_keeps_the_release_update():
    net, params, xs, ys = small_problem(scale=3.0)
    opt = adam_cpr(lr=1e-3, kappa_init="uniform", kappa_init_param=0.0)
    state = opt.init(params)
    _, grads = net.value_and_grad(params, xs[0], ys[0], loss="mse")
    with pytest.warns(RuntimeWarning, match=r"overshoots at step 1: .*'layers.0.weight'") as record:
        new, state = opt.update(grads, state, params)
    assert len(record) == 1
    lam = state.lam["layers.0.weight"]
    assert 2 * lam >= 1  # λ = mean θ² − 0 after Adam's step
    base_new, _ = adam(1e-3).update(grads, adam(1e-3).init(params), params)
    np.testing.assert_allclose(
        new["layers.0.weight"], base_new["layers.0.weight"] * (1 - 2 * lam), rtol=1e-15
    )
    assert np.all(np.sign(new["layers.0.weight"]) == -np.sign(base_new["layers.0.weight"]))


def test_no_warning_without_overshoot():
    net, params, xs, ys = small_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(
            net, adam_cpr(lr=0.05, kappa_init="dependent", kappa_init_param=0.8), params, xs, ys, 5
        )


# ---- κ initializations --------------------------------------------------------------------------------------


def test_dependent_kappa_is_k_times_initial_measure():
    _, params, _, _ = small_problem()
    for measure in ["l2", "std", "l1", "huber"]:
        state = adam_cpr(kappa_init="dependent", kappa_init_param=0.7, measure=measure).init(params)
        for k in WEIGHTS:
            assert state.kappa[k] == pytest.approx(
                0.7 * float(measure_value(params[k], measure)), rel=1e-15
            )
        assert set(state.kappa) == set(WEIGHTS)  # biases are not regularized by default


def test_warm_start_sets_kappa_after_step_s_and_constrains_from_s_plus_1():
    net, params, xs, ys = small_problem()
    opt = adam_cpr(lr=0.05, kappa_init="warm_start", kappa_init_param=4)
    state = opt.init(params)
    for t in range(1, 8):
        x, y = xs[t % 4], ys[t % 4]
        _, grads = net.value_and_grad(params, x, y, loss="mse")
        params, state = opt.update(grads, state, params)
        if t < 4:
            assert all(v == 0.0 for v in state.kappa.values())
        if t == 4:
            for k in WEIGHTS:
                assert state.kappa[k] == float(measure_value(params[k], "l2"))
        if t <= 4:
            assert all(v == 0.0 for v in state.lam.values())


class _ScaleState(NamedTuple):
    step: int


class _ScaleBy:
    """A stand-in base optimizer: θ_t = f_t·θ₀ direction, so ‖θ_t‖ follows a prescribed sequence."""

    def __init__(self, norms):
        self.norms = norms

    def init(self, params):
        return _ScaleState(0)

    def update(self, grads, state, params):
        t = state.step
        ratio = self.norms[t + 1] / self.norms[t]
        return {k: v * ratio for k, v in params.items()}, _ScaleState(t + 1)


def _expected_ip_step(norms, S):
    """The release's foreach detector with d = 0 (EMA = ‖θ‖), written out directly: first bound step or None."""
    prev_e = prev_g = 0.0
    for t in range(1, len(norms)):
        if t > S and t % S == 0:
            g = (norms[t] - prev_e) / norms[t]
            prev_e = norms[t]
            if t > 3 * S and prev_g > g > 0.01:
                return t
            if t > 2 * S:
                prev_g = g
    return None


@pytest.mark.parametrize(
    "rates",
    [
        [
            *np.linspace(0.01, 0.06, 20),
            *np.linspace(0.05, 0.02, 30),
        ],  # growth speeds up, then slows down
        list(
            np.linspace(0.05, 0.005, 50)
        ),  # slows down from the start: bound at the earliest sample 4S
        list(np.linspace(0.003, 0.001, 50)),  # below 1% per S steps: never bounded
    ],
)
def test_inflection_point_detector(rates):
    """κ is set at the first sample where the relative growth falls but stays above 1% (release foreach path)."""
    norms = [1.0]
    for r in rates:
        norms.append(norms[-1] * (1 + r))
    theta = {"w": np.full((2, 2), 0.5)}  # ‖θ₀‖ = 1
    S = 3
    opt = cpr(_ScaleBy(norms), kappa_init="inflection_point", reg_step_size=S, reg_ema_decay=0.0)
    state = opt.init(theta)
    assert state.kappa["w"] == KAPPA_UNSET
    expected = _expected_ip_step(norms, S)
    found = None
    for _ in range(len(rates)):
        theta, state = opt.update({"w": np.zeros((2, 2))}, state, theta)
        if found is None and state.kappa["w"] != KAPPA_UNSET:
            found = state.step["w"]
            assert state.kappa["w"] == pytest.approx(float(np.sum(theta["w"] ** 2)), rel=1e-15)
    assert found == expected
    if rates[0] == 0.003:
        assert found is None  # growth below 1% per interval: never bounded (as in the release)
    else:
        assert found is not None


@pytest.mark.filterwarnings("ignore:CPR l2 constraint step overshoots")
def test_kappa_adapt_tightens_the_bound_when_lambda_returns_to_zero():
    """AdaCPR (Appendix D): κ ← R(θ) at the step where λ drops from > 0 back to 0."""
    theta = {"w": np.arange(1.0, 7.0).reshape(2, 3)}
    zeros = {"w": np.zeros((2, 3))}
    for adapt in (False, True):
        opt = cpr(sgd(1e-9), kappa_init="uniform", kappa_init_param=80.0, mu=0.5, kappa_adapt=adapt)
        state, p = opt.init(theta), theta
        lams, kappas, values = [], [], []
        for _ in range(30):
            p, state = opt.update(zeros, state, p)
            lams.append(state.lam["w"])
            kappas.append(state.kappa["w"])
            values.append(float(np.sum(p["w"] ** 2)))
        drop = next(i for i in range(1, 30) if lams[i] == 0.0 and lams[i - 1] > 0.0)
        if adapt:
            assert kappas[drop] == pytest.approx(values[drop], rel=1e-15) and kappas[drop] < 80.0
            assert kappas[drop - 1] == 80.0
        else:
            assert all(k == 80.0 for k in kappas)


# ---- selection and validation -------------------------------------------------------------------------------


def test_regularize_predicate_and_set():
    _, params, _, _ = small_problem()
    s1 = cpr(
        adam(), kappa_init="uniform", kappa_init_param=1.0, regularize={"layers.1.weight"}
    ).init(params)
    assert set(s1.lam) == {"layers.1.weight"}
    s2 = cpr(
        adam(),
        kappa_init="uniform",
        kappa_init_param=1.0,
        regularize=lambda n, p: n.endswith("bias"),
    ).init(params)
    assert set(s2.lam) == {"layers.0.bias", "layers.1.bias"}
    assert set(s2.step) == set(params)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mu": 0.0}, ValueError, "mu must be > 0"),
        ({"mu": -1.0}, ValueError, "mu must be > 0"),
        ({"measure": "l3"}, ValueError, "measure must be one of"),
        ({"kappa_init": "random"}, ValueError, "kappa_init must be one of"),
        (
            {"kappa_init": "warm_start", "kappa_init_param": 2.5},
            ValueError,
            "integer >= 1, got 2.5",
        ),
        ({"kappa_init": "warm_start", "kappa_init_param": -3}, ValueError, "integer >= 1, got -3"),
        ({"kappa_init": "uniform", "kappa_init_param": -1.0}, ValueError, "must be >= 0, got -1.0"),
        ({"kappa_init": "dependent", "kappa_init_param": 0.0}, ValueError, "must be > 0, got 0.0"),
        ({"kappa_init_param": float("nan")}, TypeError, "finite real number"),
        ({"reg_step_size": 0}, ValueError, "reg_step_size must be an int >= 1"),
        ({"reg_ema_decay": 1.0}, ValueError, "reg_ema_decay must be in"),
        ({"scalar_dtype": "float16"}, ValueError, "scalar_dtype must be one of"),
        ({"kappa_adapt": 1}, TypeError, "kappa_adapt must be a bool"),
        ({"regularize": "layers.0.weight"}, TypeError, "regularize must be None, a predicate"),
    ],
)
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        cpr(adam(), **kwargs)


def test_bad_base_and_selection():
    _, params, _, _ = small_problem()
    with pytest.raises(TypeError, match="base must be a refreg optimizer"):
        cpr(object())
    with pytest.raises(ValueError, match="regularize selects no parameter"):
        cpr(adam(), regularize=lambda n, p: False).init(params)
    with pytest.raises(ValueError, match="regularize selects no parameter"):
        cpr(adam(), regularize=set()).init(params)
    with pytest.raises(ValueError, match=r"not in params: \['nope'\]"):
        cpr(adam(), regularize={"nope"}).init(params)
    with pytest.raises(TypeError, match="must return a bool"):
        cpr(adam(), regularize=lambda n, p: 1).init(params)
    with pytest.raises(ValueError, match="measure 'std' needs >= 2 elements"):
        cpr(adam(), measure="std", regularize=lambda n, p: True).init(
            {"w": np.ones((2, 2)), "b": np.ones(1)}
        )


def test_bad_update_leaves_everything_untouched():
    net, params, xs, ys = small_problem()
    opt = adam_cpr(lr=0.05, kappa_init="dependent", kappa_init_param=0.8)
    params, state, _ = train(net, opt, params, xs, ys, 3)
    snapshot = {k: v.copy() for k, v in params.items()}
    _, grads = net.value_and_grad(params, xs[0], ys[0], loss="mse")
    bad = dict(grads)
    bad["layers.1.weight"] = bad["layers.1.weight"].copy()
    bad["layers.1.weight"][0, 0] = np.nan
    lam_before = dict(state.lam)
    with pytest.raises(FloatingPointError, match=r"layers\.1\.weight"):
        opt.update(bad, state, params)
    with pytest.raises(TypeError, match="state must be a CPRState"):
        opt.update(grads, state.base, params)
    with pytest.raises(ValueError, match=r"state\.step must have the keys of params"):
        opt.update(grads, state._replace(step={}), params)
    for k in params:
        assert np.array_equal(params[k], snapshot[k])
    assert state.lam == lam_before


# ---- backends, dtypes, checkpoints --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"kappa_init": "dependent", "kappa_init_param": 0.8, "measure": "l2"},
        {"kappa_init": "dependent", "kappa_init_param": 0.9, "measure": "std"},
        {"kappa_init": "uniform", "kappa_init_param": 2.0, "measure": "l1"},
        {"kappa_init": "warm_start", "kappa_init_param": 2, "measure": "huber"},
        {"kappa_init": "inflection_point", "reg_step_size": 1, "reg_ema_decay": 0.5},
    ],
)
def test_backends_agree_with_numpy(xp, options):
    net, params_np, xs, ys = small_problem()
    opt = adam_cpr(lr=0.05, **options)
    ref, ref_state, _ = train(net, opt, params_np, xs, ys, 8)
    params = {k: xp.asarray(v) for k, v in params_np.items()}
    ours, state, _ = train(net, opt, params, xs, ys, 8, xp=xp)
    for k in ref:
        assert type(ours[k]) is type(params[k])
        np.testing.assert_allclose(asnumpy(ours[k]), ref[k], rtol=1e-13, atol=1e-15)
    for k in ref_state.lam:
        assert state.lam[k] == pytest.approx(ref_state.lam[k], rel=1e-12, abs=1e-300)
        assert state.kappa[k] == pytest.approx(ref_state.kappa[k], rel=1e-12)


@pytest.mark.parametrize("scalar_dtype", ["float64", "float32"])
def test_float32_parameters_keep_their_dtype(xp, scalar_dtype):
    net, params_np, xs, ys = small_problem(dtype="float32")
    params = {k: xp.asarray(v) for k, v in params_np.items()}
    opt = adam_cpr(lr=0.05, kappa_init="dependent", kappa_init_param=0.8, scalar_dtype=scalar_dtype)
    ours, state, _ = train(net, opt, params, xs, ys, 6, xp=xp)
    assert all(ours[k].dtype == xp.float32 for k in ours)
    assert any(v > 0 for v in state.lam.values())
    ref, _, _ = train(net, opt, {k: v.astype(np.float64) for k, v in params_np.items()}, xs, ys, 6)
    for k in ref:
        np.testing.assert_allclose(asnumpy(ours[k]), ref[k], rtol=1e-4, atol=1e-5)
    if scalar_dtype == "float32":
        assert all(float(np.float32(v)) == v for v in state.lam.values())


@pytest.mark.parametrize(
    "options",
    [
        {
            "kappa_init": "inflection_point",
            "reg_step_size": 2,
            "reg_ema_decay": 0.5,
            "scalar_dtype": "float32",
        },
        {"kappa_init": "warm_start", "kappa_init_param": 3, "kappa_adapt": True},
    ],
)
def test_checkpoint_resume_is_bitwise_identical(tmp_path, options):
    net, params, xs, ys = small_problem()
    opt = adam_cpr(lr=0.05, **options)
    full, full_state, _ = train(net, opt, params, xs, ys, 14)
    half, half_state, _ = train(net, opt, params, xs, ys, 7)
    path = io.save(tmp_path / "cpr.npz", half, half_state)
    loaded, loaded_state = io.load(path)
    assert isinstance(loaded_state, CPRState)
    assert loaded_state.lam == half_state.lam and loaded_state.prev_growth == half_state.prev_growth
    # continue on the same batches as the uninterrupted run (steps 7..13)
    rolled_x, rolled_y = xs[7 % 4 :] + xs[: 7 % 4], ys[7 % 4 :] + ys[: 7 % 4]
    resumed, resumed_state, _ = train(net, opt, loaded, rolled_x, rolled_y, 7, state=loaded_state)
    for k in full:
        assert np.array_equal(resumed[k], full[k])
    assert resumed_state.lam == full_state.lam and resumed_state.kappa == full_state.kappa
    assert resumed_state.norm_ema == full_state.norm_ema and resumed_state.step == full_state.step


@pytest.mark.filterwarnings("ignore:CPR l2 constraint step overshoots")
def test_reg_by_lr_uses_the_scheduled_learning_rate():
    theta = {"w": np.arange(1.0, 7.0).reshape(2, 3)}
    zeros = {"w": np.zeros((2, 3))}
    schedule = lambda t: 0.1 * (t + 1)  # noqa: E731
    opt = cpr(sgd(schedule), kappa_init="uniform", kappa_init_param=50.0, reg_by_lr=True)
    state = opt.init(theta)
    p, state = opt.update(zeros, state, theta)
    p, state = opt.update(zeros, state, p)  # second update: lr = 0.2
    lam = state.lam["w"]
    expected_prev = theta["w"] * (1 - 2 * 0.1 * (91.0 - 50.0) / 6)
    np.testing.assert_allclose(p["w"], expected_prev * (1 - 2 * 0.2 * lam), rtol=1e-14)


def test_std_measure_on_a_constant_tensor_gives_zero_not_nan():
    """std is not differentiable at a constant tensor; refreg takes the zero subgradient (the release: 0/0)."""
    theta = np.full(
        (3, 4), 0.5
    )  # the mean is exact: std = 0 exactly (0.7 gives std 1e-16 and a finite grad)
    assert float(measure_value(theta, "std")) == 0.0
    np.testing.assert_array_equal(measure_grad(theta, "std"), np.zeros((3, 4)))
    assert np.isfinite(measure_grad(np.full((3, 4), 0.7), "std")).all()
    opt = cpr(sgd(0.1), measure="std", kappa_init="uniform", kappa_init_param=0.1)
    params = {"w": theta}
    state = opt.init(params)
    new, state = opt.update({"w": np.zeros((3, 4))}, state, params)
    assert np.isfinite(new["w"]).all() and all(np.isfinite(v) for v in state.lam.values())
