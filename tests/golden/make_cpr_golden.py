"""Write golden CPR trajectories from the official release: ``python tests/golden/make_cpr_golden.py``.

Needs the ``oracle`` extra (torch 2.13.0 CPU, pytorch-cpr 0.3.1); the test suite reads the ``.npz`` files
without torch. Each case trains a float64 ``nn.Sequential(Linear(4, 8), Tanh, Linear(8, 3))`` from fixed
initial weights on fixed batches with MSE loss, passing the **Module** to ``AdamCPR`` (that is what puts the
weights into a regularized group), and records after every step every parameter (in refreg's key layout
``layers.{0,1}.{weight,bias}``) and λ, κ of both weight matrices.

Per case the file ``cpr_<case>.npz`` holds: ``x`` (n_batches, batch, 4), ``y`` (n_batches, batch, 3), the initial
parameters ``init/<key>``, the trajectory ``traj/<key>`` (steps, *shape), ``lam/<key>`` and ``kappa/<key>``
(steps,) as float32 (the release's dtype), ``options`` (a JSON string: lr and the AdamCPR keywords) and
``metadata`` (a JSON string that makes the file self-describing: model, loss, data, initialization, batch
order, optimizer call, recorded arrays and the versions of torch, pytorch-cpr, NumPy and Python that wrote it;
read it with ``json.loads(str(np.load(path)["metadata"]))``). Batch ``i % n_batches`` is used at step ``i``.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
import pytorch_cpr
import torch
from golden_io import save, versions
from torch import nn

HERE = Path(__file__).resolve().parent
N_BATCHES, BATCH = 10, 8
KEYS = {
    "0.weight": "layers.0.weight",
    "0.bias": "layers.0.bias",
    "2.weight": "layers.1.weight",
    "2.bias": "layers.1.bias",
}

CASES = {
    # Kappa-K: one absolute bound for both weight matrices, between their initial sums of squares (9.3 and 4.0 here)
    "uniform": dict(steps=25, foreach=False, kappa_init_method="uniform", kappa_init_param=6.0),
    "dependent": dict(steps=25, foreach=False, kappa_init_method="dependent", kappa_init_param=0.9),
    "warm_start": dict(steps=25, foreach=False, kappa_init_method="warm_start", kappa_init_param=5),
    # Kappa-IP only works on the foreach path (the single-tensor path never sets kappa)
    "inflection_point": dict(
        steps=60,
        foreach=True,
        kappa_init_method="inflection_point",
        reg_step_size=3,
        reg_ema_decay=0.5,
    ),
    "l1": dict(
        steps=25,
        foreach=False,
        kappa_init_method="dependent",
        kappa_init_param=0.9,
        reg_function="l1",
    ),
    "std": dict(
        steps=25,
        foreach=False,
        kappa_init_method="dependent",
        kappa_init_param=0.9,
        reg_function="std",
    ),
    "huber": dict(
        steps=25,
        foreach=False,
        kappa_init_method="dependent",
        kappa_init_param=0.9,
        reg_function="huber",
    ),
    "reg_by_lr": dict(
        steps=25, foreach=False, kappa_init_method="dependent", kappa_init_param=0.8, reg_by_lr=True
    ),
}
LR = 0.05


def metadata(name: str, options: dict) -> dict:
    """What a reader needs to reproduce or port this golden without reading this script."""
    return {
        "description": f"pytorch-cpr AdamCPR trajectory, case {name!r}: every parameter, and lambda, kappa of "
        "both weight matrices, after every step (closed loop: gradients from the model on the batches)",
        "generator": "tests/golden/make_cpr_golden.py",
        "model": "float64 torch.nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)); refreg: "
        "MLP([4, 8, 3], activation='tanh'); keys 0.weight/0.bias/2.weight/2.bias stored as "
        "layers.0.weight/layers.0.bias/layers.1.weight/layers.1.bias, PyTorch layout (out, in)",
        "loss": "torch.nn.functional.mse_loss(model(x), y), reduction 'mean' over all batch x output elements",
        "data": f"rng = numpy.random.default_rng(1234); x = rng.standard_normal(({N_BATCHES}, {BATCH}, 4)); "
        f"y = tanh(x @ rng.standard_normal((4, 3))) + 0.1 * rng.standard_normal(({N_BATCHES}, {BATCH}, 3))",
        "initialization": "then, from the same rng, in model.named_parameters() order (0.weight, 0.bias, "
        "2.weight, 2.bias): rng.uniform(-1/sqrt(fan_in), 1/sqrt(fan_in), shape), weights multiplied by 2; "
        "stored as init/<key>",
        "batch_order": f"step i (0-based) uses batch i % {N_BATCHES}: x[i % {N_BATCHES}], y[i % {N_BATCHES}]",
        "optimizer": f"pytorch_cpr.AdamCPR(model, lr={LR}, **options) with the nn.Module passed (this puts the "
        "two weights in a regularized group and the biases in a plain-Adam group); zero_grad, backward, step",
        "options": {"lr": LR, **options},
        "recorded": "traj/<key>: (steps, *shape) float64 after each step; lam/<key>, kappa/<key>: (steps,) "
        "float32, the release's state['lagmul'] and state['kappa'] of the two weights",
        "versions": versions(),
    }


def make_case(name: str, options: dict) -> dict[str, np.ndarray]:
    options = dict(options)
    steps = options.pop("steps")
    rng = np.random.default_rng(1234)
    x = rng.standard_normal((N_BATCHES, BATCH, 4))
    y = np.tanh(x @ rng.standard_normal((4, 3))) + 0.1 * rng.standard_normal((N_BATCHES, BATCH, 3))
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    init = {}
    with torch.no_grad():
        for key, p in model.named_parameters():
            bound = 1.0 / np.sqrt(p.shape[-1] if p.ndim == 2 else {"0.bias": 4, "2.bias": 8}[key])
            value = rng.uniform(-bound, bound, size=tuple(p.shape)) * (2.0 if p.ndim == 2 else 1.0)
            p.copy_(torch.from_numpy(value))
            init[KEYS[key]] = value
    opt = pytorch_cpr.AdamCPR(model, lr=LR, **options)
    weights = [k for k in KEYS if k.endswith("weight")]
    traj = {KEYS[k]: [] for k in KEYS}
    lam = {KEYS[k]: [] for k in weights}
    kappa = {KEYS[k]: [] for k in weights}
    named = dict(model.named_parameters())
    for step in range(steps):
        opt.zero_grad()
        xb, yb = torch.from_numpy(x[step % N_BATCHES]), torch.from_numpy(y[step % N_BATCHES])
        nn.functional.mse_loss(model(xb), yb).backward()
        opt.step()
        for k in KEYS:
            traj[KEYS[k]].append(named[k].detach().numpy().copy())
        for k in weights:
            st = opt.state[named[k]]
            assert st["lagmul"].dtype == torch.float32 and st["kappa"].dtype == torch.float32
            lam[KEYS[k]].append(st["lagmul"].item())
            kappa[KEYS[k]].append(st["kappa"].item())
    lam_arr = {k: np.asarray(v, dtype=np.float32) for k, v in lam.items()}
    kappa_arr = {k: np.asarray(v, dtype=np.float32) for k, v in kappa.items()}
    # each golden must exercise the constraint: some lambda > 0 (and for Kappa-IP a kappa actually set)
    assert any(np.any(v > 0) for v in lam_arr.values()), f"{name}: lambda stayed 0"
    if options["kappa_init_method"] == "inflection_point":
        for k, v in kappa_arr.items():
            assert np.any(v != 1e6), f"{name}: kappa of {k} never set"
    out = {"x": x, "y": y, "options": np.array(json.dumps({"lr": LR, "steps": steps, **options}))}
    out |= {f"init/{k}": v for k, v in init.items()}
    out |= {f"traj/{k}": np.stack(v) for k, v in traj.items()}
    out |= {f"lam/{k}": v for k, v in lam_arr.items()}
    out |= {f"kappa/{k}": v for k, v in kappa_arr.items()}
    return out


def main(metadata_only: bool = False) -> None:
    torch.manual_seed(0)
    assert torch.__version__.startswith("2.13.0"), torch.__version__
    assert importlib.metadata.version("pytorch-cpr") == "0.3.1"
    for name, options in CASES.items():
        arrays = make_case(name, options)
        path = HERE / f"cpr_{name}.npz"
        save(path, arrays, metadata(name, CASES[name]), metadata_only)
        lam = {k[4:]: arrays[k] for k in arrays if k.startswith("lam/")}
        kappa = {k[6:]: arrays[k] for k in arrays if k.startswith("kappa/")}
        first = {k: int(np.argmax(v > 0)) + 1 if np.any(v > 0) else None for k, v in lam.items()}
        print(
            f"{path.name}: {path.stat().st_size} bytes; first step with lambda > 0: {first}; "
            f"final kappa {[float(v[-1]) for v in kappa.values()]}"
        )


if __name__ == "__main__":
    main(metadata_only="--metadata-only" in sys.argv[1:])
