"""Optimizer state keeps its dtype and owns its memory.

- float32 parameters stay float32 in parameters and every state array for 100 steps of every optimizer,
  including with NumPy-scalar hyperparameters (which NumPy would otherwise promote to float64).
- New state never shares memory with the caller's gradients or parameters (an optimizer that kept a
  reference to a gradient would see the caller's later in-place edits).
"""

from __future__ import annotations

import numpy as np
import pytest
from bad_input import OPTIMIZERS

from refreg import MLP, adam, adamw, cpr, optim, pathprox, sgd, sparse

MORE = {
    **OPTIMIZERS,
    "sgd_nesterov": lambda: sgd(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "sgd_numpy_scalars": lambda: sgd(np.float64(0.05), momentum=np.float64(0.9), weight_decay=np.float64(1e-3)),
    "adam_numpy_scalars": lambda: adam(np.float64(1e-2), betas=(np.float64(0.9), np.float64(0.99)), eps=np.float64(1e-8), weight_decay=np.float64(0.1)),
    "adamw_cosine": lambda: adamw(optim.cosine(np.float64(1e-2), total_steps=100), weight_decay=np.float64(0.1)),
    "adam_cpr": lambda: cpr.adam_cpr(1e-2, kappa_init="dependent", kappa_init_param=0.5, mu=np.float64(0.1)),
    "sgd_cpr_std": lambda: cpr.cpr(sgd(0.05, momentum=0.9), measure="std", kappa_init="uniform", kappa_init_param=0.1),
    "cpr_float32_scalars": lambda: cpr.adam_cpr(1e-2, kappa_init="uniform", kappa_init_param=1.0, scalar_dtype="float32"),
    "decoupled_wd_sgd": lambda: optim.decoupled_weight_decay(sgd(0.05, momentum=0.9), np.float64(0.1), decay={"w"}),
    "masked_adam": lambda: sparse.masked(adam(1e-2), {"w": np.arange(12).reshape(4, 3) % 3 > 0}),
}  # fmt: skip
NET = MLP([3, 5, 4])
PATHPROX = {
    "pathprox_sphere": lambda: pathprox.pathprox(0.05, np.float64(1e-3), groups=pathprox.pair_groups(NET), momentum=0.9),
    "pathprox_joint": lambda: pathprox.pathprox(0.05, 1e-3, groups=pathprox.pair_groups(NET), momentum=np.float64(0.9), prox="joint"),
    "sgd_weight_decay": lambda: pathprox.sgd_weight_decay(0.05, 1e-3, groups=pathprox.pair_groups(NET), momentum=0.9),
}  # fmt: skip
ALL = sorted(MORE) + sorted(PATHPROX)


def make(name, dtype, rng):
    if name in PATHPROX:
        params = {k: v.astype(dtype) for k, v in NET.init(rng=0).items()}
        return PATHPROX[name](), params
    params = {"w": rng.standard_normal((4, 3)).astype(dtype), "b": np.zeros(4, dtype)}
    return MORE[name](), params


def arrays_of(tree):
    if isinstance(tree, dict):
        return [a for v in tree.values() for a in arrays_of(v)]
    if isinstance(tree, (list, tuple)):
        return [a for v in tree for a in arrays_of(v)]
    return [tree] if isinstance(tree, np.ndarray) else []


@pytest.mark.parametrize("name", ALL)
def test_float32_stays_float32_for_100_steps(name):
    rng = np.random.default_rng(0)
    opt, params = make(name, np.float32, rng)
    state = opt.init(params)
    for _ in range(100):
        grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
        params, state = opt.update(grads, state, params)
        for a in arrays_of(params) + arrays_of(state):
            assert a.dtype == np.float32
    steps = state.base.step if hasattr(state, "base") else state.step
    assert steps == 100 and type(steps) is int


@pytest.mark.parametrize("name", ALL)
def test_new_state_never_shares_memory_with_grads_or_params(name):
    rng = np.random.default_rng(1)
    opt, params = make(name, np.float64, rng)
    state = opt.init(params)
    for _ in range(3):  # the first step (buffers initialised from the gradient) and later ones
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        new_params, new_state = opt.update(grads, state, params)
        mine = arrays_of(new_params) + arrays_of(new_state)
        theirs = arrays_of(grads) + arrays_of(params) + arrays_of(state)
        for a in mine:
            for b in theirs:
                assert not np.shares_memory(a, b)
        params, state = new_params, new_state
