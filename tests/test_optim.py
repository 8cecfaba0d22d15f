"""Optimizers against torch.optim golden trajectories, purity, schedules and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import asnumpy

from refreg import MLP, adam, adamw, optim, sgd
from refreg.testing import relative_error

GOLDEN = np.load(Path(__file__).parent / "golden" / "optim_golden.npz")
N_STEPS = GOLDEN["xs"].shape[0]
NET = MLP([5, 7, 3], activation="tanh")

# the same hyperparameters as tests/golden/make_optim_golden.py
REFREG_OPTIMIZERS = {
    "sgd": lambda: sgd(0.1),
    "sgd_momentum": lambda: sgd(0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd_nesterov": lambda: sgd(0.05, momentum=0.8, nesterov=True, weight_decay=0.001),
    "adam": lambda: adam(0.01),
    "adam_l2": lambda: adam(0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    "adamw": lambda: adamw(0.01, weight_decay=0.5),
    "adamw_cosine": lambda: adamw(
        optim.cosine(0.02, total_steps=N_STEPS, final_lr=0.001), betas=(0.9, 0.98), weight_decay=1.0
    ),
}


def initial_params(xp=np):
    return {k[5:]: xp.asarray(GOLDEN[k]) for k in GOLDEN.files if k.startswith("init/")}


def test_backward_matches_torch_autograd():
    params = initial_params()
    value, grads = NET.value_and_grad(params, GOLDEN["xs"][0], GOLDEN["ys"][0], loss="mse")
    assert relative_error(value, GOLDEN["loss0"]) <= 1e-14
    for key, g in grads.items():
        assert relative_error(g, GOLDEN[f"grad/{key}"]) <= 1e-13, key


@pytest.mark.parametrize("name", sorted(REFREG_OPTIMIZERS))
def test_trajectory_matches_torch_optim(name, xp):
    opt = REFREG_OPTIMIZERS[name]()
    params = initial_params(xp)
    state = opt.init(params)
    worst = 0.0
    for t in range(N_STEPS):
        x, y = xp.asarray(GOLDEN["xs"][t]), xp.asarray(GOLDEN["ys"][t])
        _, grads = NET.value_and_grad(params, x, y, loss="mse")
        params, state = opt.update(grads, state, params)
        for key, value in params.items():
            worst = max(worst, relative_error(asnumpy(value), GOLDEN[f"{name}/{t}/{key}"]))
    assert worst <= 1e-12, f"{name}: worst relative error {worst:.3e} over {N_STEPS} steps"
    assert state.step == N_STEPS


def test_schedules_match_torch_schedulers():
    cos = optim.cosine(0.3, total_steps=30, final_lr=0.01)
    warm = optim.linear_warmup(0.3, warmup_steps=7)
    assert relative_error([cos(t) for t in range(30)], GOLDEN["schedule/cosine"]) <= 1e-12
    assert relative_error([warm(t) for t in range(30)], GOLDEN["schedule/linear_warmup"]) <= 1e-15


def test_cosine_with_warmup_is_continuous_and_ends_at_final_lr():
    s = optim.cosine(1.0, total_steps=100, warmup_steps=10, final_lr=0.1)
    assert s(0) == pytest.approx(0.1)
    assert s(9) == pytest.approx(1.0)
    assert s(10) == pytest.approx(1.0)
    assert s(100) == pytest.approx(0.1)
    assert s(55) == pytest.approx(0.55)


@pytest.mark.parametrize("make", [lambda: sgd(0.1, momentum=0.9), lambda: adam(), lambda: adamw()])
def test_update_is_pure_and_keeps_dtype(make, xp):
    net = MLP([3, 4, 2])
    params = net.init(rng=1, dtype="float32", xp=xp)
    before = {k: asnumpy(v).copy() for k, v in params.items()}
    opt = make()
    state = opt.init(params)
    x = xp.asarray(np.random.default_rng(0).standard_normal((5, 3)), dtype=xp.float32)
    y = xp.asarray(np.array([0, 1, 1, 0, 1]))
    _, grads = net.value_and_grad(params, x, y)
    new_params, new_state = opt.update(grads, state, params)
    new_params, _ = opt.update(grads, new_state, new_params)
    for k in params:
        np.testing.assert_array_equal(asnumpy(params[k]), before[k])
        assert new_params[k].dtype == xp.float32
        assert not np.array_equal(asnumpy(new_params[k]), before[k])
    assert state.step == 0


def test_float32_and_float64_agree_to_float32_precision():
    net = MLP([4, 6, 3])
    x = np.random.default_rng(0).standard_normal((8, 4))
    y = np.arange(8) % 3
    out = {}
    for dtype in ("float32", "float64"):
        params = net.init(rng=0, dtype=dtype)
        opt = adamw(1e-2, weight_decay=0.1)
        state = opt.init(params)
        for _ in range(10):
            _, grads = net.value_and_grad(params, x.astype(dtype), y)
            params, state = opt.update(grads, state, params)
        out[dtype] = params
    for k in out["float64"]:
        assert relative_error(out["float32"][k], out["float64"][k]) < 4 * np.sqrt(
            np.finfo(np.float32).eps
        )


def _setup():
    net = MLP([3, 4, 2])
    params = net.init(rng=0)
    x = np.random.default_rng(0).standard_normal((5, 3))
    _, grads = net.value_and_grad(params, x, np.array([0, 1, 1, 0, 1]))
    return params, grads


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: sgd(0.0), "lr must be > 0"),
        (lambda: sgd(-1.0), "lr must be > 0"),
        (lambda: sgd(0.1, momentum=1.0), r"momentum must be in \[0.0, 1.0\)"),
        (lambda: sgd(0.1, nesterov=True), "nesterov=True needs momentum > 0"),
        (lambda: adam(betas=(0.9, 1.0)), r"betas\[1\] must be in \[0.0, 1.0\)"),
        (lambda: adam(betas=(-0.1, 0.9)), r"betas\[0\] must be in"),
        (lambda: adam(betas=(0.9,)), "betas must be a pair"),
        (lambda: adamw(weight_decay=-1.0), "weight_decay must be >= 0"),
        (lambda: adam(lr=float("nan")), "lr must be a number"),
    ],
)
def test_bad_hyperparameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make", [lambda: sgd(0.1, momentum=0.9), lambda: adam(), lambda: adamw()])
def test_bad_grads_raise_and_leave_everything_untouched(make):
    params, grads = _setup()
    opt = make()
    state = opt.init(params)
    params, state = opt.update(grads, state, params)
    snapshot_p = {k: v.copy() for k, v in params.items()}
    snapshot_s = [{k: v.copy() for k, v in buf.items()} for buf in state[1:]]

    bad_nan = dict(grads)
    bad_nan["layers.1.weight"] = grads["layers.1.weight"].copy()
    bad_nan["layers.1.weight"][0, 0] = np.nan
    with pytest.raises(FloatingPointError, match=r"grads\['layers.1.weight'\] holds 1 non-finite"):
        opt.update(bad_nan, state, params)
    missing = {k: v for k, v in grads.items() if k != "layers.0.bias"}
    with pytest.raises(ValueError, match=r"missing \['layers.0.bias'\]"):
        opt.update(missing, state, params)
    wrong_shape = dict(grads, **{"layers.0.weight": np.zeros((3, 4))})
    with pytest.raises(
        ValueError,
        match=r"grads\['layers.0.weight'\] must have the shape of its parameter \(4, 3\)",
    ):
        opt.update(wrong_shape, state, params)
    wrong_dtype = dict(grads, **{"layers.0.bias": grads["layers.0.bias"].astype(np.float32)})
    with pytest.raises(TypeError, match=r"grads\['layers.0.bias'\] must have the dtype"):
        opt.update(wrong_dtype, state, params)
    with pytest.raises(TypeError, match="state must be a"):
        opt.update(grads, "not a state", params)

    for k in params:
        np.testing.assert_array_equal(params[k], snapshot_p[k])
    for buf, snap in zip(state[1:], snapshot_s, strict=True):
        for k in snap:
            np.testing.assert_array_equal(buf[k], snap[k])


def test_integer_params_are_a_type_error():
    opt = adam()
    with pytest.raises(TypeError, match=r"params\['w'\] must have dtype float32 or float64"):
        opt.init({"w": np.zeros((2, 2), dtype=np.int64)})
    with pytest.raises(TypeError, match=r"params\['w'\] must have dtype float32 or float64"):
        opt.init({"w": np.zeros((2, 2), dtype=np.complex128)})


def test_schedule_output_is_checked():
    opt = sgd(lambda t: -1.0)
    params, grads = _setup()
    with pytest.raises(ValueError, match="lr schedule must return a finite value >= 0"):
        opt.update(grads, opt.init(params), params)
    with pytest.raises(ValueError, match="warmup_steps must be < total_steps"):
        optim.cosine(0.1, total_steps=10, warmup_steps=10)


@pytest.mark.parametrize("name", sorted(REFREG_OPTIMIZERS))
def test_block_wise_steps_equal_whole_array_steps_bitwise(name, monkeypatch):
    from refreg import _backend

    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((50, 61)), "b": rng.standard_normal(7)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(3)]
    results = []
    for block in (64, 10**9):
        monkeypatch.setattr(_backend, "CACHE_BLOCK", block)
        opt = REFREG_OPTIMIZERS[name]()
        p, state = params, opt.init(params)
        for g in grads:
            p, state = opt.update(g, state, p)
        results.append((p, state))
    for key in params:
        np.testing.assert_array_equal(results[0][0][key], results[1][0][key])
    for field in results[0][1]._fields[1:]:
        for key, value in getattr(results[0][1], field).items():
            np.testing.assert_array_equal(value, getattr(results[1][1], field)[key])
