"""CPR's speed path (R without a temporary, the constraint step in place, ``donate=True``) against the plain step.

Bitwise: every parameter, λ and κ after several steps, for both scalar policies and both float dtypes; the
paths that keep the plain code (reg_by_lr, other measures) must agree as well.
"""

from __future__ import annotations

import numpy as np
import pytest

from refreg import MLP, _backend, _numba
from refreg.cpr import adam_cpr, cpr
from refreg.optim import sgd

CASES = {
    "adam_l2": lambda: adam_cpr(1e-2, kappa_init="dependent", kappa_init_param=0.9),
    "adam_l2_f32_scalars": lambda: adam_cpr(
        1e-2, kappa_init="dependent", kappa_init_param=0.8, scalar_dtype="float32"
    ),
    "adam_l2_reg_by_lr": lambda: adam_cpr(
        1e-2, kappa_init="dependent", kappa_init_param=0.9, reg_by_lr=True
    ),
    "adam_l1": lambda: adam_cpr(1e-2, kappa_init="dependent", kappa_init_param=0.5, measure="l1"),
    "sgd_l2_momentum": lambda: cpr(
        sgd(0.05, momentum=0.9), kappa_init="dependent", kappa_init_param=0.9
    ),
    "adam_l2_warm_start": lambda: adam_cpr(1e-2, kappa_init="warm_start", kappa_init_param=2),
}


def _bits(a):
    a = np.asarray(a)
    return a.view(f"u{a.dtype.itemsize}").tobytes()


def _copy_tree(x):
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, dict):
        return {k: _copy_tree(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(_copy_tree(v) for v in x))
    return x


@pytest.mark.parametrize("block", [128, 10**9])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_cpr_speed_paths_are_bitwise_the_plain_step(name, dtype, block, monkeypatch):
    monkeypatch.setattr(_backend, "FUSED_BLOCK", block)
    if block == 128:  # NumPy's blocks, which the numba kernels (when installed) would bypass
        monkeypatch.setitem(_numba._STATE, "enabled", False)
    net = MLP([23, 17, 5])
    params = net.init(rng=0, dtype=dtype)
    rng = np.random.default_rng(1)
    grads = [
        {k: (0.3 * rng.standard_normal(v.shape)).astype(dtype) for k, v in params.items()}
        for _ in range(5)
    ]
    opt = CASES[name]()
    # reference: the plain step with refreg's speed paths bypassed (base seen as an unknown optimizer)
    plain_p, plain_s = params, opt.init(params)
    fast_p, fast_s = params, opt.init(params)
    don_p, don_s = _copy_tree(params), _copy_tree(opt.init(params))
    with monkeypatch.context() as m:
        m.setattr("refreg.cpr.constraint.square_sum", lambda t: np.sum(t * t))
        m.setattr("refreg.cpr.optimizer.writable_numpy", lambda t: False)
        plain_trace = []
        for g in grads:
            plain_p, plain_s = opt.update(g, plain_s, plain_p)
            plain_trace.append((plain_p, plain_s))
    for t, g in enumerate(grads):
        given = fast_p
        snapshot = {k: v.copy() for k, v in given.items()}
        fast_p, fast_s = opt.update(g, fast_s, fast_p)
        for (
            key,
            value,
        ) in snapshot.items():  # the pure update never writes into the arrays it was given
            assert _bits(given[key]) == _bits(value)
        don_p, don_s = opt.update(g, don_s, don_p, donate=True)
        ref_p, ref_s = plain_trace[t]
        for key in params:
            assert _bits(fast_p[key]) == _bits(ref_p[key]), (t, key)
            assert _bits(don_p[key]) == _bits(ref_p[key]), (t, key)
        for k in ref_s.lam:
            assert fast_s.lam[k] == ref_s.lam[k] == don_s.lam[k]
            assert fast_s.kappa[k] == ref_s.kappa[k] == don_s.kappa[k]
    assert any(v > 0 for v in plain_s.lam.values())  # the constraint step did run
