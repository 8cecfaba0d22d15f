"""The benchmarks: each a function ``(quick: bool) -> Comparison``.

Everything runs float32 on the threads the process has (NumPy's BLAS and PyTorch use the same count).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

import refreg
from bench.harness import Comparison, compare
from refreg import MLP, training

# a realistic list of tensors, 10.5M float32 parameters: two transformer-style blocks (attention projections,
# MLP in/out) plus vectors
BIG_SHAPES = {
    **{f"block{b}.attn_qkv.weight": (3072, 1024) for b in range(2)},
    **{f"block{b}.attn_out.weight": (1024, 1024) for b in range(2)},
    **{f"block{b}.mlp_in.weight": (1024, 1024) for b in range(2)},
    **{f"block{b}.mlp_in.bias": (1024,) for b in range(2)},
    **{f"block{b}.norm.weight": (1024,) for b in range(2)},
}


def has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def _batch(rng, n, sizes):
    x = rng.standard_normal((n, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=n)
    return x, y


def mlp_training_step(sizes=(784, 300, 100, 10), batch=128, quick=False) -> Comparison:
    """Forward + backward + AdamW on an MLP: refreg (NumPy) beside PyTorch CPU."""
    rng = np.random.default_rng(0)
    net = MLP(list(sizes))
    params = net.init(rng=0, dtype="float32")
    opt = refreg.adamw(1e-3)
    holder = {"params": params, "state": opt.init(params)}
    x, y = _batch(rng, batch, sizes)

    def refreg_step():
        p, s, _ = training.train_step(net, opt, holder["params"], holder["state"], x, y)
        holder["params"], holder["state"] = p, s

    variants = {"refreg-numpy": refreg_step}
    baseline = "refreg-numpy"
    if has_torch():
        import torch

        layers = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        topt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def torch_step():
            topt.zero_grad()
            torch.nn.functional.cross_entropy(model(tx), ty).backward()
            topt.step()

        variants = {"torch-cpu": torch_step, "refreg-numpy": refreg_step}
        baseline = "torch-cpu"
    name = f"MLP step {'-'.join(map(str, sizes))}, batch {batch}"
    target = "refreg/torch <= 1.0" if batch == 128 and sizes == (784, 300, 100, 10) else ""
    return compare(name, variants, baseline, repeats=10 if quick else 30, target=target)


def big_params(dtype=np.float32) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(0)
    params = {k: (0.02 * rng.standard_normal(s)).astype(dtype) for k, s in BIG_SHAPES.items()}
    grads = {k: (0.01 * rng.standard_normal(s)).astype(dtype) for k, s in BIG_SHAPES.items()}
    return params, grads


def copy_time(params: dict[str, Any], repeats: int) -> float:
    """Median time to copy every tensor once (read + write each byte): the memory-bandwidth yardstick."""
    out = {k: np.empty_like(v) for k, v in params.items()}

    def copy():
        for k, v in params.items():
            np.copyto(out[k], v)

    return compare("copy", {"copy": copy}, "copy", repeats=repeats).medians["copy"]


def optimizer_steps(extra_variants: dict[str, Any] | None = None, quick=False) -> Comparison:
    """One optimizer step on 10.5M float32 parameters; roofline = time / (bytes moved / copy bandwidth).

    Bytes each step must move at the least (read + write, 4 bytes each): SGD reads θ, g and writes θ (3 passes);
    Adam reads θ, g, m, v and writes θ, m, v (7 passes). A copy moves 2 passes.
    """
    params, grads = big_params()
    n_params = sum(v.size for v in params.values())
    repeats = 5 if quick else 15
    optimizers = {"sgd": (refreg.sgd(1e-2), 3), "adam": (refreg.adam(1e-3), 7)}
    for key, value in (extra_variants or {}).items():
        optimizers[key] = value
    variants, minimum_passes = {}, {}
    for key, (opt, passes) in optimizers.items():
        holder = {"state": opt.init(params)}

        def step(opt=opt, holder=holder):
            # the same params every time: the cost of one step, not a trajectory
            _, holder["state"] = opt.update(grads, holder["state"], params)

        variants[key] = step
        minimum_passes[key] = passes
    result = compare(
        f"optimizer step, {n_params / 1e6:.1f}M float32 params", variants, "adam", repeats=repeats
    )
    t_copy = copy_time(params, repeats)
    for key, passes in minimum_passes.items():
        roofline = t_copy * passes / 2
        result.extra[f"{key} / roofline ({passes} passes)"] = (
            f"{result.medians[key] / roofline:.2f}x"
        )
    result.extra["copy bandwidth"] = f"{2 * 4 * n_params / t_copy / 1e9:.1f} GB/s"
    result.target = "<= 3x roofline"
    return result


def cases(quick: bool):
    """(name, thunk) for every benchmark; method benchmarks are added as their modules land."""
    out = [
        ("mlp_step_128", lambda: mlp_training_step(quick=quick)),
        ("optimizer_steps", lambda: optimizer_steps(quick=quick)),
    ]
    if not quick:
        out += [
            ("mlp_step_1024", lambda: mlp_training_step(batch=1024, quick=quick)),
            ("mlp_step_wide", lambda: mlp_training_step(sizes=(784, 4096, 4096, 10), quick=quick)),
        ]
    return out
