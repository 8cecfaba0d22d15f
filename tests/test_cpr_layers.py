"""CPR's named layers: κ strategies vs the release's string API, scalar policies, fast vs plain kernels."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refreg.cpr import (
    Dependent,
    DetectorState,
    Float32ReleaseScalars,
    Float64Scalars,
    InflectionPoint,
    Uniform,
    WarmStart,
    adam_cpr,
    constraint_step,
    cpr,
    fast_measure_value,
    inflection_point_step,
    measure_value,
    plain_constraint_step,
)
from refreg.optim import adam

tensors = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=6),
    elements={"min_value": -3.0, "max_value": 3.0},
)


@pytest.mark.parametrize(
    ("name", "param", "strategy"),
    [
        ("uniform", 2.5, Uniform(2.5)),
        ("dependent", 0.8, Dependent(0.8)),
        ("warm_start", 7, WarmStart(7)),
        ("inflection_point", 1000, InflectionPoint(200, 0.99)),
    ],
)
def test_string_api_maps_onto_the_strategies(name, param, strategy):
    assert cpr(adam(), kappa_init=name, kappa_init_param=param).kappa_init == strategy
    assert cpr(adam(), kappa_init=strategy) == cpr(adam(), kappa_init=name, kappa_init_param=param)


def test_detector_parameters_map_onto_inflection_point():
    opt = cpr(adam(), reg_step_size=5, reg_ema_decay=0.5)
    assert opt.kappa_init == InflectionPoint(interval=5, ema_decay=0.5)


def test_strategy_with_string_parameters_is_refused():
    with pytest.raises(TypeError, match="carries its own parameters"):
        cpr(adam(), kappa_init=Uniform(1.0), kappa_init_param=2.0)
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        WarmStart(0)
    with pytest.raises(ValueError, match="must be > 0"):
        Dependent(0.0)
    with pytest.raises(TypeError, match="kappa_init must be a κ strategy"):
        type(cpr(adam()))(adam(), kappa_init="uniform")


@pytest.mark.parametrize("scalar_dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "strategy", [Uniform(3.0), Dependent(0.5), WarmStart(3), InflectionPoint(2, 0.5)]
)
def test_strategies_and_policy_objects_give_the_string_api_trajectory(strategy, scalar_dtype):
    """A strategy/policy object and its string spelling are the same optimizer, bit for bit."""
    names = {Uniform: "uniform", Dependent: "dependent", WarmStart: "warm_start"}
    params = {"w": np.random.default_rng(0).standard_normal((4, 3)) * 2.0}
    grads = {"w": -params["w"]}  # outward: every strategy sets κ and constrains within 12 steps
    policy = {"float64": Float64Scalars(), "float32": Float32ReleaseScalars()}[scalar_dtype]
    by_object = adam_cpr(lr=0.1, mu=0.01, kappa_init=strategy, scalar_dtype=policy)
    if isinstance(strategy, InflectionPoint):
        by_name = adam_cpr(
            lr=0.1, mu=0.01, reg_step_size=2, reg_ema_decay=0.5, scalar_dtype=scalar_dtype
        )
    else:
        param = next(iter(strategy.__dict__.values()))
        by_name = adam_cpr(
            lr=0.1,
            mu=0.01,
            kappa_init=names[type(strategy)],
            kappa_init_param=param,
            scalar_dtype=scalar_dtype,
        )
    pa, sa = params, by_object.init(params)
    pb, sb = params, by_name.init(params)
    for _ in range(12):
        pa, sa = by_object.update(grads, sa, pa)
        pb, sb = by_name.update(grads, sb, pb)
        assert np.array_equal(pa["w"], pb["w"]) and sa.lam == sb.lam and sa.kappa == sb.kappa
    assert sa.kappa_set == {"w": True} and sa.lam["w"] > 0.0


@given(theta=tensors)
def test_fast_measure_value_equals_the_plain_measure(theta):
    fast = float(fast_measure_value(theta, "l2", np))
    plain = float(measure_value(theta, "l2"))
    assert fast == pytest.approx(plain, rel=1e-14, abs=1e-300)


@pytest.mark.parametrize("measure", ["l2", "l1", "huber", "std"])
@pytest.mark.parametrize("reg_by_lr", [False, True])
@given(theta=tensors, lam=st.floats(0.0, 0.4))
def test_fast_constraint_step_equals_the_plain_step(measure, reg_by_lr, theta, lam):
    """Bitwise, except l2 without reg_by_lr: θ(1 − 2λ) is within one rounding of θ + (−2θ)λ."""
    if measure == "std" and np.all(theta == theta.flat[0]):
        return
    fast = constraint_step(theta, lam, measure, 0.3, reg_by_lr)
    plain = plain_constraint_step(theta, lam, measure, 0.3, reg_by_lr)
    if measure == "l2" and not reg_by_lr:
        np.testing.assert_array_max_ulp(fast, plain, maxulp=2)
    else:
        assert np.array_equal(fast, plain)


def test_float32_policy_rounds_each_operation():
    f32 = Float32ReleaseScalars()
    assert f32.round(0.1) == float(np.float32(0.1))
    assert f32.ema(1.0, 0.99, 2.0) == float(
        np.float32(np.float32(1.0) * np.float32(0.99)) + np.float32(0.01) * np.float32(2.0)
    )
    lam = f32.dual_ascent(0.0, 3.0, 1.0, float(np.float32(0.5)), "float32")
    assert (
        lam == float(np.float32(1.0))
        and Float64Scalars().dual_ascent(0.0, 1.0, 3.0, 1.0, "") == 0.0
    )
    assert math.isnan(f32.relative_growth(0.0, 1.0))


def test_detector_fires_first_at_four_intervals():
    """Growth speeding up until step 9, then 2 % per step: the first sample with g falling is step 10."""
    S, state, fired = 2, DetectorState(0.0, 0.0, 0.0), []
    norm = 1.0
    for t in range(1, 21):
        norm *= 1.0 + 0.01 * t if t <= 9 else 1.02
        state, found = inflection_point_step(
            t, norm, state, interval=S, ema_decay=0.0, scalars=Float64Scalars()
        )
        if found:
            fired.append(t)
    assert fired and fired[0] == 10 and fired[0] > 3 * S
