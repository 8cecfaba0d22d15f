"""Hostile and degenerate input to the optimizers, CPR and the metrics (findings of the session-5 audit).

Each test fails on the code before its fix: 0-d parameters, donated arrays aliasing across keys, NaN turned
into a number (CPR's multiplier, accuracy, nonzero counts, masked gradients), CPR refusing its own state,
integers beyond float range in a checkpointed state, Adam's eps = 0, schedules returning bools, and a
malformed Dask address on the command line.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refreg import io
from refreg._validation import check_finite_array
from refreg.cpr import cpr
from refreg.nn import MLP
from refreg.nn.losses import accuracy
from refreg.optim import adam, adamw, decoupled_weight_decay, sgd
from refreg.sparse import count_nonzero, masked
from refreg.training import evaluate

OPTIMIZERS = {
    "sgd": lambda: sgd(0.1),
    "sgd_momentum": lambda: sgd(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: adam(1e-2),
    "adamw": lambda: adamw(1e-2, weight_decay=0.1),
}


def _copy(tree):
    return {k: v.copy() for k, v in tree.items()}


# -- 0-d parameters (a learnable temperature) -----------------------------------------------------------


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("donate", [False, True])
def test_zero_d_parameters_stay_arrays_over_steps(name, dtype, donate):
    opt = OPTIMIZERS[name]()
    scalar = {"t": np.array(2.0, dtype=dtype)}
    vector = {"t": np.array([2.0], dtype=dtype)}  # the same number as a 1-element array: the oracle
    s0, s1 = opt.init(scalar), opt.init(vector)
    for step in range(4):
        g = 0.5 - 0.25 * step
        scalar, s0 = opt.update({"t": np.array(g, dtype=dtype)}, s0, scalar, donate=donate)
        vector, s1 = opt.update({"t": np.array([g], dtype=dtype)}, s1, vector)
        assert type(scalar["t"]) is np.ndarray and scalar["t"].shape == ()
        assert scalar["t"].dtype == np.dtype(dtype)
        assert scalar["t"].tobytes() == vector["t"].tobytes()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pathprox_zero_d_parameter_outside_the_groups_stays_an_array(momentum, dtype):
    from refreg.pathprox import pair_groups, pathprox

    net = MLP([3, 4, 2])
    opt = pathprox(0.1, 1e-3, groups=pair_groups(net), momentum=momentum)
    scalar = net.init(rng=0, dtype=dtype)
    vector = {k: v.copy() for k, v in scalar.items()}
    scalar["temperature"] = np.array(1.5, dtype=dtype)
    vector["temperature"] = np.array([1.5], dtype=dtype)
    s0, s1 = opt.init(scalar), opt.init(vector)
    for step in range(3):
        g0 = {k: np.full(v.shape, 0.5 - 0.2 * step, dtype=dtype) for k, v in scalar.items()}
        g1 = {k: np.full(v.shape, 0.5 - 0.2 * step, dtype=dtype) for k, v in vector.items()}
        scalar, s0 = opt.update(g0, s0, scalar)
        vector, s1 = opt.update(g1, s1, vector)
        t = scalar["temperature"]
        assert type(t) is np.ndarray and t.shape == () and t.dtype == np.dtype(dtype)
        assert t.tobytes() == vector["temperature"].tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_decoupled_weight_decay_keeps_zero_d_parameters_arrays(dtype):
    opt = decoupled_weight_decay(sgd(0.1, momentum=0.9), 0.1, decay=lambda k, p: True)
    scalar, vector = {"t": np.array(2.0, dtype=dtype)}, {"t": np.array([2.0], dtype=dtype)}
    s0, s1 = opt.init(scalar), opt.init(vector)
    for step in range(3):
        g = 0.5 - 0.25 * step
        scalar, s0 = opt.update({"t": np.array(g, dtype=dtype)}, s0, scalar)
        vector, s1 = opt.update({"t": np.array([g], dtype=dtype)}, s1, vector)
        assert type(scalar["t"]) is np.ndarray and scalar["t"].shape == ()
        assert scalar["t"].tobytes() == vector["t"].tobytes()


# -- donate=True: aliasing across keys --------------------------------------------------------------------


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_donated_gradient_that_is_another_parameter_is_refused(name):
    opt = OPTIMIZERS[name]()
    a = np.ones(4)
    params = {"a": a, "c": np.full(4, 2.0)}
    grads = {"a": np.full(4, 3.0), "c": a}
    state = opt.init(params)
    before = _copy(params)
    with pytest.raises(ValueError, match=r"grads\['c'\].*params\['a'\]"):
        opt.update(grads, state, params, donate=True)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_overlapping_donated_parameters_are_refused(name):
    opt = OPTIMIZERS[name]()
    base = np.arange(8.0)
    params = {"a": base[:5], "c": base[3:]}
    grads = {"a": np.ones(5), "c": np.ones(5)}
    state = opt.init(params)
    with pytest.raises(ValueError, match=r"share memory"):
        opt.update(grads, state, params, donate=True)
    np.testing.assert_array_equal(base, np.arange(8.0))


def test_gradient_view_of_another_keys_state_buffer_is_refused():
    opt = adam(1e-2)
    params = {"a": np.ones(4), "c": np.ones(4)}
    state = opt.init(params)
    state.exp_avg["a"][:] = 0.0
    grads = {"a": np.ones(4), "c": state.exp_avg["a"][::-1]}  # a view of a's first moment
    with pytest.raises(ValueError, match=r"state.exp_avg\['a'\]"):
        opt.update(grads, state, params, donate=True)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 7), min_size=2, max_size=4),
    name=st.sampled_from(sorted(OPTIMIZERS)),
)
def test_disjoint_views_of_one_buffer_are_donated_like_separate_arrays(sizes, name):
    # no false positive: parameters kept as disjoint slices of one flat buffer are legitimate
    opt = OPTIMIZERS[name]()
    flat = np.linspace(-1.0, 1.0, sum(sizes))
    bounds = np.cumsum([0, *sizes])
    keys = [f"p{i}" for i in range(len(sizes))]
    params = {k: flat[bounds[i] : bounds[i + 1]] for i, k in enumerate(keys)}
    grads = {k: np.full(v.shape, 0.1 * (i + 1)) for i, (k, v) in enumerate(params.items())}
    pure, _ = opt.update(grads, opt.init(params), _copy(params))
    donated, _ = opt.update(grads, opt.init(params), params, donate=True)
    for k in keys:
        assert donated[k].tobytes() == pure[k].tobytes()
        assert np.shares_memory(donated[k], flat)  # written in place


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_interleaved_views_are_donated_and_overlapping_ones_refused(name):
    opt = OPTIMIZERS[name]()
    flat = np.linspace(-1.0, 1.0, 12)
    params = {"even": flat[0::2], "odd": flat[1::2]}  # byte ranges intersect, no element is shared
    grads = {k: np.full(6, 0.5) for k in params}
    pure, _ = opt.update(grads, opt.init(params), _copy(params))
    donated, _ = opt.update(grads, opt.init(params), params, donate=True)
    for k in params:
        assert donated[k].tobytes() == pure[k].tobytes()
    clash = {"a": flat[0:12:2], "b": flat[4:12:2]}  # flat[4], flat[6], ... are in both
    before = flat.copy()
    with pytest.raises(ValueError, match=r"share memory"):
        opt.update(
            {k: np.ones(v.shape) for k, v in clash.items()}, opt.init(clash), clash, donate=True
        )
    np.testing.assert_array_equal(flat, before)


def test_foreign_memory_is_checked_across_holder_objects():
    # two frombuffer views of one bytearray: their base objects differ, their memory does not
    buf = bytearray(np.arange(10.0).tobytes())
    a = np.frombuffer(memoryview(buf), dtype=np.float64)[:6]
    c = np.frombuffer(memoryview(buf), dtype=np.float64)[4:]
    opt = sgd(0.1)
    with pytest.raises(ValueError, match=r"share memory"):
        opt.update({"a": np.ones(6), "c": np.ones(6)}, opt.init({"a": a, "c": c}), {"a": a, "c": c},
                   donate=True)  # fmt: skip


@pytest.mark.parametrize(
    "view",
    [
        lambda o: np.lib.stride_tricks.as_strided(o[:3], shape=(3,), strides=(o.itemsize,)),
        lambda o: np.asarray(memoryview(o))[:3],
        lambda o: np.from_dlpack(o)[:3],
    ],
    ids=["as_strided", "memoryview", "from_dlpack"],
)
def test_gradient_reaching_a_parameter_through_another_object_is_refused(view):
    # the gradient's .base chain ends in a non-ndarray object, the parameter's in the parameter itself
    opt = sgd(0.1)
    params = {"w": np.ones(5), "b": np.ones(3)}
    grads = {"w": np.ones(5), "b": view(params["w"])}
    with pytest.raises(ValueError, match=r"share memory"):
        opt.update(grads, opt.init(params), params, donate=True)
    np.testing.assert_array_equal(params["w"], np.ones(5))


# -- CPR: never a number from NaN; its own states always accepted ------------------------------------------


def _cpr_run(steps=4):
    opt = cpr(adam(1e-2), kappa_init="uniform", kappa_init_param=1.0)
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((4, 5)), "b": np.zeros(4)}
    grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    state = opt.init(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(steps):
            params, state = opt.update(grads, state, params)
    return opt, params, grads, state


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_cpr_non_finite_parameters_raise_and_leave_everything_untouched(bad):
    opt, params, grads, state = _cpr_run()
    assert state.lam["w"] > 0.0  # an active constraint: max(0, λ + NaN) used to reset it to 0
    params = _copy(params)
    params["w"][0, 0] = bad
    before, lam = _copy(params), dict(state.lam)
    with pytest.raises(FloatingPointError, match=r"R\(params\['w'\]\)"):
        opt.update(grads, state, params)
    assert state.lam == lam
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_cpr_float32_overflowing_measure_raises():
    opt = cpr(adam(1e-2), kappa_init="uniform", kappa_init_param=1.0)
    params = {"w": np.full((4, 5), 1e20, np.float32), "b": np.zeros(4, np.float32)}
    zeros = {k: np.zeros_like(v) for k, v in params.items()}
    with np.errstate(over="ignore"), pytest.raises(FloatingPointError, match=r"overflows"):
        opt.update(zeros, opt.init(params), params)


def test_cpr_donated_non_finite_measure_raises_before_any_constraint_step():
    opt = cpr(adam(1e-3), kappa_init="uniform", kappa_init_param=1e-3)
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal((4, 4)).astype(np.float32) for k in ("a", "b")}
    grads = {k: np.full((4, 4), 0.1, np.float32) for k in params}
    params, state = opt.update(grads, opt.init(params), params)
    assert state.lam["a"] > 0.0  # the constraint on "a" is active: its step would change "a"
    params = _copy(params)
    params["b"][:] = 2e19  # R(b) = Σθ² overflows float32
    base_only, _ = opt.base.update(grads, state.base, _copy(params))
    with np.errstate(over="ignore"), pytest.raises(FloatingPointError, match=r"overflows"):
        opt.update(grads, state, params, donate=True)
    assert (
        params["a"].tobytes() == base_only["a"].tobytes()
    )  # the base step only, no constraint step


def test_cpr_accepts_its_own_undefined_growth_and_round_trips_it(tmp_path):
    # Kappa-IP with a tensor whose norm stays 0: the detector's relative growth is 0/0 = NaN (as in the release)
    opt = cpr(sgd(0.1), kappa_init="inflection_point", reg_step_size=1)
    params = {"w": np.zeros((3, 3)), "v": np.ones((2, 3))}
    grads = {"w": np.zeros((3, 3)), "v": np.full((2, 3), 0.01)}
    state = opt.init(params)
    for _ in range(6):
        params, state = opt.update(grads, state, params)
    assert math.isnan(state.prev_growth["w"])
    path = io.save(tmp_path / "ckpt.npz", params, state)
    params2, state2 = io.load(path)
    a, sa = opt.update(grads, state, params)
    b, sb = opt.update(grads, state2, params2)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes()
    assert sa.lam == sb.lam


def test_cpr_state_constraining_an_unselected_tensor_is_refused():
    opt = cpr(adam(1e-3), kappa_init="uniform", kappa_init_param=0.0)
    params = {"w": np.ones((2, 2)), "b": np.ones(2)}
    state = opt.init(params)
    both = {"w": 0.0, "b": 0.0}
    crafted = state._replace(
        lam=both,
        kappa=dict(both),
        kappa_set={"w": True, "b": True},
        norm_ema=dict(both),
        prev_norm_ema=dict(both),
        prev_growth=dict(both),
    )
    with pytest.raises(ValueError, match=r"regularizes, \['w'\]"):
        opt.update({k: np.zeros_like(v) for k, v in params.items()}, crafted, params)


@pytest.mark.parametrize("field", ["lam", "kappa"])
def test_cpr_state_int_beyond_float_range_is_a_value_error(field):
    opt, params, grads, state = _cpr_run(steps=1)
    bad = state._replace(**{field: {"w": 10**400}})
    with pytest.raises(ValueError, match=rf"state.{field}\['w'\]"):
        opt.update(grads, bad, params)


def test_adam_step_beyond_2_53_is_a_value_error():
    opt = adam()
    params = {"w": np.ones(3)}
    with pytest.raises(ValueError, match=r"state.step"):
        opt.update({"w": np.ones(3)}, opt.init(params)._replace(step=10**400), params)


# -- metrics never turn NaN into a number -------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 6),
    c=st.integers(2, 5),
    where=st.integers(0, 29),
    bad=st.sampled_from([math.nan, -math.nan]),
)
def test_accuracy_of_nan_logits_is_nan(n, c, where, bad):
    logits = np.zeros((n, c))
    logits.flat[where % logits.size] = bad
    assert math.isnan(accuracy(logits, np.zeros(n, dtype=np.int64)))


def test_accuracy_with_infinite_but_ordered_logits_is_a_number():
    logits = np.array([[np.inf, 0.0], [-np.inf, 1.0]])
    assert accuracy(logits, np.array([0, 1])) == 1.0


def test_evaluate_of_a_diverged_network_is_nan():
    net = MLP([4, 3])
    params = net.init(rng=0)
    params["layers.0.weight"][:] = np.nan
    loss, acc = evaluate(net, params, np.zeros((10, 4)), np.array([0] * 3 + [1] * 7))
    assert math.isnan(loss) and math.isnan(acc)


def test_count_nonzero_refuses_nan_weights():
    with pytest.raises(FloatingPointError, match=r"params\['w'\]"):
        count_nonzero({"w": np.full((1, 2), np.nan)})
    assert count_nonzero({"w": np.array([[0.0, -0.0, 2.0]])}) == 1


def test_masked_sees_nan_gradients_at_pruned_positions():
    params = {"w": np.ones((2, 2))}
    opt = masked(adam(1e-3), {"w": np.array([[True, False], [True, True]])})
    grads = {"w": np.array([[1.0, np.nan], [1.0, 1.0]])}
    with pytest.raises(FloatingPointError, match=r"grads\['w'\]"):
        opt.update(grads, opt.init(params), params)


# -- arguments --------------------------------------------------------------------------------------------


def test_adam_eps_zero_is_refused():
    with pytest.raises(ValueError, match=r"eps must be > 0"):
        adam(1e-3, eps=0.0)


def test_schedule_returning_a_bool_is_refused():
    params = {"w": np.ones(2)}
    opt = sgd(lambda t: True)
    with pytest.raises(TypeError, match=r"lr schedule must return a number"):
        opt.update({"w": np.ones(2)}, opt.init(params), params)


def test_check_finite_array_names_a_non_array():
    with pytest.raises(TypeError, match=r"x must be an array, got list"):
        check_finite_array("x", [[0.0, 1.0]])


def test_value_and_grad_names_a_list_input():
    net = MLP([3, 4, 2])
    params = net.init(rng=0)
    with pytest.raises(TypeError, match=r"^x must be an array"):
        net.value_and_grad(params, [[0.0, 0.0, 0.0]], np.array([0]))
    bad = {**params, "layers.0.weight": [[0.0] * 3] * 4}
    with pytest.raises(TypeError, match=r"params\['layers.0.weight'\] must be an array"):
        net.value_and_grad(bad, np.zeros((1, 3)), np.array([0]))


def test_cli_malformed_dask_address_is_one_line_and_status_2(capsys):
    pytest.importorskip("distributed")
    from theory import cli

    assert (
        cli.main(["figures", "--executor", "dask", "--scheduler", "not a url", "equivalence"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--scheduler 'not a url'" in err[0]


def test_cli_failure_leaves_the_callers_own_child_processes_alone(tmp_path, capsys):
    import multiprocessing
    import time

    from theory import cli

    bystander = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))
    bystander.start()
    try:
        blocked = tmp_path / "file"
        blocked.write_text("not a folder")
        argv = ["figures", "equivalence", "--preset", "tiny", "--no-progress"]
        for workers in ("1", "2"):
            assert cli.main([*argv, "--workers", workers, "--out", str(blocked / "x")]) == 2
            assert bystander.is_alive()
    finally:
        bystander.terminate()
        bystander.join()


def test_gradients_and_masks_of_another_array_library_are_named_type_errors():
    """A NumPy gradient for an array_api_strict parameter used to read as a dtype mismatch ("float64" against
    "array_api_strict.float64"), and a mask of the other library was accepted (audit finding)."""
    xs = pytest.importorskip("array_api_strict")
    import refreg
    from refreg import sparse

    params = {"w": xs.asarray(np.ones((2, 3)))}
    grads = {"w": np.ones((2, 3))}
    for opt in (refreg.sgd(0.1), refreg.adam(1e-3)):
        with pytest.raises(
            TypeError,
            match=r"grads\['w'\] is an array of numpy .* params\['w'\] of array_api_strict",
        ):
            opt.update(grads, opt.init(params), params)
    with pytest.raises(
        TypeError, match=r"masks\['w'\] is an array of numpy .* params\['w'\] of array_api_strict"
    ):
        sparse.apply_mask(params, {"w": np.ones((2, 3), dtype=bool)})
    with pytest.raises(TypeError, match=r"masks\['w'\] is an array of array_api_strict"):
        sparse.apply_mask({"w": np.ones((2, 3))}, {"w": xs.ones((2, 3), dtype=xs.bool)})
