"""refreg.cpr against golden trajectories of the official release (pytorch-cpr 0.3.1, torch 2.13.0, float64).

The ``.npz`` files are written by ``tests/golden/make_cpr_golden.py`` (needs torch); these tests need only NumPy.
refreg computes the gradients with its own MLP, so the whole closed loop (net, Adam, CPR) is compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from refreg.cpr import adam_cpr
from refreg.nn import MLP

GOLDEN = Path(__file__).parent / "golden"
CASES = [
    "uniform",
    "dependent",
    "warm_start",
    "inflection_point",
    "l1",
    "std",
    "huber",
    "reg_by_lr",
]
WEIGHTS = ["layers.0.weight", "layers.1.weight"]


def load_case(name: str) -> dict:
    with np.load(GOLDEN / f"cpr_{name}.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def optimizer_for(options: dict, scalar_dtype: str):
    """The refreg optimizer with the release's keywords translated."""
    opts = dict(options)
    lr, _ = opts.pop("lr"), opts.pop("steps")
    opts.pop("foreach")
    rename = {"kappa_init_method": "kappa_init", "reg_function": "measure", "kappa_update": "mu"}
    opts = {rename.get(k, k): v for k, v in opts.items()}
    return adam_cpr(lr=lr, scalar_dtype=scalar_dtype, **opts)


def replay(name: str, scalar_dtype: str):
    """Run refreg on the golden's data; return (golden, params per step, lam per step, kappa per step)."""
    g = load_case(name)
    options = json.loads(str(g["options"]))
    opt = optimizer_for(options, scalar_dtype)
    net = MLP([4, 8, 3], activation="tanh")
    params = {k[5:]: g[k] for k in g if k.startswith("init/")}
    params = {k: params[k] for k in net.param_shapes()}
    state = opt.init(params)
    traj, lam, kappa = [], [], []
    for step in range(options["steps"]):
        i = step % g["x"].shape[0]
        _, grads = net.value_and_grad(params, g["x"][i], g["y"][i], loss="mse")
        params, state = opt.update(grads, state, params)
        traj.append(params)
        lam.append(dict(state.lam))
        kappa.append(dict(state.kappa))
    return g, traj, lam, kappa


def max_param_error(g: dict, traj: list) -> float:
    return max(
        float(np.max(np.abs(g[f"traj/{k}"][t] - traj[t][k])))
        for t in range(len(traj))
        for k in traj[t]
    )


@pytest.mark.parametrize("name", CASES)
def test_golden_float32_scalars_bit_for_bit(name):
    """scalar_dtype="float32": parameters within 1e-12, λ and κ identical at every step."""
    g, traj, lam, kappa = replay(name, "float32")
    assert max_param_error(g, traj) < 1e-12
    for k in WEIGHTS:
        ours_lam = np.asarray([s[k] for s in lam], dtype=np.float64)
        ours_kappa = np.asarray([s[k] for s in kappa], dtype=np.float64)
        golden_lam = g[f"lam/{k}"].astype(np.float64)
        golden_kappa = g[f"kappa/{k}"].astype(np.float64)
        bad = np.flatnonzero(ours_lam != golden_lam)
        assert bad.size == 0, (
            f"{k}: lam differs first at step {bad[0] + 1}: {ours_lam[bad[0]]!r} vs {golden_lam[bad[0]]!r}"
        )
        bad = np.flatnonzero(ours_kappa != golden_kappa)
        assert bad.size == 0, f"{k}: kappa differs first at step {bad[0] + 1}"
        # the stored values are float32, so "identical" includes the dtype's rounding
        assert np.all(ours_lam.astype(np.float32) == ours_lam)


@pytest.mark.parametrize("name", CASES)
def test_golden_default_float64_scalars_close(name):
    """The default (float64 scalars, no float32 rounding) stays within 1e-6 of the release."""
    g, traj, lam, kappa = replay(name, "float64")
    assert max_param_error(g, traj) < 1e-6
    for k in WEIGHTS:
        np.testing.assert_allclose([s[k] for s in lam], g[f"lam/{k}"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose([s[k] for s in kappa], g[f"kappa/{k}"], rtol=1e-6)


def test_golden_cases_exercise_the_constraint():
    """Guards the goldens themselves: every case activates λ, and Kappa-IP sets κ (at different steps)."""
    for name in CASES:
        g = load_case(name)
        assert any(np.any(g[f"lam/{k}"] > 0) for k in WEIGHTS), name
    g = load_case("inflection_point")
    first_set = [int(np.argmax(g[f"kappa/{k}"] != 1e6)) for k in WEIGHTS]
    assert all(i > 0 for i in first_set) and first_set[0] != first_set[1]
