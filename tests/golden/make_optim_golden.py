"""Write golden trajectories of torch.optim for tests/test_optim.py (needs the ``oracle`` extra).

    python -m pip install -e ".[oracle]" && python tests/golden/make_optim_golden.py

A float64 ``nn.Sequential(Linear(5, 7), Tanh(), Linear(7, 3))`` starts from weights drawn with NumPy (seed 0),
trains with MSE on 12 fixed batches, and after every step the parameters are recorded. Also recorded: the
gradients at the initial weights on the first batch, and torch's CosineAnnealingLR / LambdaLR learning rates.
The test suite compares refreg against these files without importing torch. The member ``metadata`` (a JSON
string) describes the file without this script: ``json.loads(str(np.load(path)["metadata"]))``.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import torch
from golden_io import save, versions

HERE = Path(__file__).parent
SIZES = (5, 7, 3)
N_STEPS = 12
BATCH = 8

OPTIMIZERS = {
    "sgd": ("SGD", {"lr": 0.1}),
    "sgd_momentum": ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    "sgd_nesterov": ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.001}),
    "adam": ("Adam", {"lr": 0.01}),
    "adam_l2": ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    "adamw": ("AdamW", {"lr": 0.01, "weight_decay": 0.5}),
    "adamw_cosine": ("AdamW", {"lr": 0.02, "betas": (0.9, 0.98), "weight_decay": 1.0}),
}


def initial_state():
    rng = np.random.default_rng(0)
    weights = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(SIZES)):
        bound = 1 / np.sqrt(n_in)
        weights[f"layers.{i}.weight"] = rng.uniform(-bound, bound, (n_out, n_in))
        weights[f"layers.{i}.bias"] = rng.uniform(-bound, bound, (n_out,))
    xs = rng.standard_normal((N_STEPS, BATCH, SIZES[0]))
    ys = rng.standard_normal((N_STEPS, BATCH, SIZES[-1]))
    return weights, xs, ys


def build_model(weights):
    model = torch.nn.Sequential(
        torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.Tanh(), torch.nn.Linear(SIZES[1], SIZES[2])
    ).double()
    with torch.no_grad():
        for i, layer in enumerate([model[0], model[2]]):
            layer.weight.copy_(torch.from_numpy(weights[f"layers.{i}.weight"]))
            layer.bias.copy_(torch.from_numpy(weights[f"layers.{i}.bias"]))
    return model


def named(model):
    out = {}
    for i, layer in enumerate([model[0], model[2]]):
        out[f"layers.{i}.weight"] = layer.weight.detach().numpy().copy()
        out[f"layers.{i}.bias"] = layer.bias.detach().numpy().copy()
    return out


def scheduled_lrs(make_scheduler, base_lr: float = 0.3, steps: int = 30) -> np.ndarray:
    """The learning rate torch uses at each of ``steps`` updates under ``make_scheduler(optimizer)``."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(lrs)


def metadata() -> dict:
    """What a reader needs to reproduce or port this golden without reading this script."""
    return {
        "description": "torch.optim trajectories (closed loop) of SGD, Adam, AdamW, initial gradients, and "
        "the learning rates of two schedulers",
        "generator": "tests/golden/make_optim_golden.py",
        "model": f"float64 torch.nn.Sequential(nn.Linear({SIZES[0]}, {SIZES[1]}), nn.Tanh(), "
        f"nn.Linear({SIZES[1]}, {SIZES[2]})); refreg: MLP({list(SIZES)}, activation='tanh'); keys "
        "layers.{0,1}.{weight,bias}, PyTorch layout (out, in)",
        "loss": "torch.nn.functional.mse_loss(model(x), y), reduction 'mean'",
        "data": f"rng = numpy.random.default_rng(0); per layer in order: weight = rng.uniform(-1/sqrt(n_in), "
        f"1/sqrt(n_in), (n_out, n_in)), bias = rng.uniform(same bound, (n_out,)); then xs = "
        f"rng.standard_normal(({N_STEPS}, {BATCH}, {SIZES[0]})), ys = rng.standard_normal(({N_STEPS}, "
        f"{BATCH}, {SIZES[-1]}))",
        "batch_order": "step t (0-based) uses xs[t], ys[t]; every optimizer restarts from init/<key>",
        "optimizers": {k: {"class": f"torch.optim.{c}", **kw} for k, (c, kw) in OPTIMIZERS.items()},
        "schedules": "adamw_cosine: CosineAnnealingLR(T_max=12, eta_min=0.001), stepped after every "
        "update; schedule/cosine: CosineAnnealingLR(T_max=30, eta_min=0.01) and schedule/linear_warmup: "
        "LambdaLR(lambda t: min(1, (t + 1) / 7)) at base lr 0.3, the lr used by each of 30 updates",
        "recorded": "<optimizer>/<t>/<key>: params after update t; grad/<key> and loss0: gradient and loss at "
        "init on batch 0",
        "versions": versions(),
    }


def main(metadata_only: bool = False) -> None:
    torch.set_default_dtype(torch.float64)
    weights, xs, ys = initial_state()
    record = {"xs": xs, "ys": ys}
    for k, v in weights.items():
        record[f"init/{k}"] = v
    # gradients at the initial point, first batch
    model = build_model(weights)
    loss = torch.nn.functional.mse_loss(model(torch.from_numpy(xs[0])), torch.from_numpy(ys[0]))
    loss.backward()
    for i, layer in enumerate([model[0], model[2]]):
        record[f"grad/layers.{i}.weight"] = layer.weight.grad.numpy().copy()
        record[f"grad/layers.{i}.bias"] = layer.bias.grad.numpy().copy()
    record["loss0"] = np.array(loss.item())
    for name, (cls, kwargs) in OPTIMIZERS.items():
        model = build_model(weights)
        opt = getattr(torch.optim, cls)(model.parameters(), **kwargs)
        sched = None
        if name == "adamw_cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=N_STEPS, eta_min=0.001)
        for t in range(N_STEPS):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(
                model(torch.from_numpy(xs[t])), torch.from_numpy(ys[t])
            )
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            for k, v in named(model).items():
                record[f"{name}/{t}/{k}"] = v
    # schedules alone: lr used by update t (0-based), 30 updates
    record["schedule/cosine"] = scheduled_lrs(
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30, eta_min=0.01)
    )
    record["schedule/linear_warmup"] = scheduled_lrs(
        lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min(1.0, (t + 1) / 7))
    )
    record["torch_version"] = np.array(torch.__version__)
    save(HERE / "optim_golden.npz", record, metadata(), metadata_only)
    print(
        f"wrote {HERE / 'optim_golden.npz'} with {len(record)} arrays (torch {torch.__version__})"
    )


if __name__ == "__main__":
    main(metadata_only="--metadata-only" in sys.argv[1:])
