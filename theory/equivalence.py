"""Weight decay equals the path norm after rescaling: the three facts behind PathProx, measured.

Claims (docs/derivations.md, "Weight decay and the norm product", from AM-GM; Yang et al. arXiv 2210.03069 build PathProx on them):

1. For one ReLU unit, ``min_{a>0} ½(a²||w||² + ||v||²/a²) = ||w||·||v||``, attained at ``a² = ||v||/||w||``.
2. For every network, the weight-decay penalty ``½Σ(||W||² + ||V||²)`` is at least the path norm
   ``Σ_k ||w_k||·||v_k||``, with equality after :func:`refreg.pathprox.balance_units` (same function).
3. Under gradient descent on ``L + λ/2·||θ||²`` the per-unit imbalance shrinks: for a bias-free ReLU unit
   ``Δ_k = ||w_k||² − ||v_k||²`` obeys ``dΔ_k/dt = −2λΔ_k`` (the loss conserves it, by homogeneity), so
   SGD with step η gives ``Δ_k ≈ (1 − ηλ)^{2t}·Δ_k(0)`` up to O(η²) terms; ``| ||w_k|| − ||v_k|| |`` follows.

Panels: (a) the rescaled penalty of a few units against ``a`` with the minimum at the path norm (checked with
``scipy.optimize.minimize_scalar``); (b) penalty against path norm over many random ReLU nets, before and after
balancing; (c) per-unit imbalance during SGD + weight decay on the digits data from a deliberately imbalanced
(function-preserving) initialization.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy.optimize import minimize_scalar

from refreg import MLP, data
from refreg.pathprox import (
    balance_units,
    pair_groups,
    path_norm,
    sgd_weight_decay,
    unit_norms,
    weight_decay_penalty,
)
from theory._common import run_sequential, write_outputs

NAME = "equivalence"
DESCRIPTION = (
    "Weight decay vs path norm: rescaled penalty vs a (minimum = ||w||·||v||), WD penalty vs path norm "
    "over random ReLU nets (balanced on the diagonal), per-unit imbalance shrinking under SGD + WD"
)
QUICK_SECONDS = 2  # seconds of pool time of the quick preset (3 runs), measured on 2 cores

PRESETS = {
    "tiny": {"n_units": 3, "n_nets": 20, "width": 16, "steps": 60, "log_every": 10, "seeds": 1},
    "quick": {"n_units": 4, "n_nets": 300, "width": 64, "steps": 3000, "log_every": 50, "seeds": 1},
    "full": {
        "n_units": 6,
        "n_nets": 3000,
        "width": 256,
        "steps": 20000,
        "log_every": 100,
        "seeds": 3,
    },
}


@dataclass(frozen=True)
class Rescaling:
    """Panel (a): the rescaled penalty of ``n_units`` units against a, and its scipy minimum."""

    n_units: int
    seed: int
    part: ClassVar[str] = "rescaling"


@dataclass(frozen=True)
class Scatter:
    """Panel (b): weight decay against path norm on ``n_nets`` random ReLU nets, before and after balancing."""

    n_nets: int
    seed: int
    part: ClassVar[str] = "scatter"


@dataclass(frozen=True)
class Training:
    """Panel (c): SGD + weight decay on digits from an imbalanced (function-preserving) initialization."""

    width: int
    steps: int
    log_every: int
    seed: int
    lr: float = 0.1
    lam: float = 5e-3
    batch_size: int = 100
    imbalance: float = 3.0
    part: ClassVar[str] = "training"


def configs(preset: dict, seeds: int | None = None) -> list[Rescaling | Scatter | Training]:
    """Three independent parts per seed: the rescaling curves, the random-net scatter, the training run."""
    n_seeds = seeds if seeds is not None else preset["seeds"]
    out: list[Rescaling | Scatter | Training] = []
    for seed in range(n_seeds):
        out.append(Rescaling(n_units=preset["n_units"], seed=seed))
        out.append(Scatter(n_nets=preset["n_nets"], seed=seed))
        out.append(
            Training(
                width=preset["width"],
                steps=preset["steps"],
                log_every=preset["log_every"],
                seed=seed,
            )
        )
    return out


def _rescaling(config: Rescaling) -> dict:
    net = MLP([5, config.n_units, 3])
    params = net.init(rng=config.seed)
    gen = np.random.default_rng(config.seed)
    params["layers.0.weight"] = params["layers.0.weight"] * 10.0 ** gen.uniform(
        -1, 1, (config.n_units, 1)
    )
    (nw, nv) = unit_norms(params, pair_groups(net))[0]
    a = np.geomspace(0.05, 20.0, 200)
    units = []
    for w, v in zip(np.asarray(nw), np.asarray(nv), strict=True):
        curve = 0.5 * (a**2 * w**2 + v**2 / a**2)
        res = minimize_scalar(
            lambda t, w=w, v=v: 0.5 * (np.exp(2 * t) * w**2 + np.exp(-2 * t) * v**2),
            bracket=(-1.0, 1.0),
            tol=1e-12,
        )
        units.append(
            {
                "norm_w": float(w),
                "norm_v": float(v),
                "path_norm": float(w * v),
                "scipy_min": float(res.fun),
                "scipy_argmin_a": float(np.exp(res.x)),
                "closed_form_a": float(np.sqrt(v / w)),
                "curve": curve.tolist(),
            }
        )
    return {"a": a.tolist(), "units": units}


def _scatter(config: Scatter) -> dict:
    gen = np.random.default_rng(config.seed)
    points = []
    for i in range(config.n_nets):
        depth = int(gen.integers(2, 6))
        sizes = [int(s) for s in gen.integers(1, 9, depth + 1)]
        net = MLP(sizes)
        groups = pair_groups(net)
        params = net.init(rng=gen)
        # spread the units: a random positive rescaling per unit (function unchanged)
        for pair in groups.pairs:
            scale = 10.0 ** gen.uniform(-1.0, 1.0, params[pair.w].shape[0])
            params[pair.w] = params[pair.w] * scale[:, None]
            params[pair.w_bias] = params[pair.w_bias] * scale
            params[pair.v] = params[pair.v] / scale[None, :]
        balanced = balance_units(params, groups)
        x = gen.standard_normal((8, sizes[0]))
        out, out_b = net.predict(params, x), net.predict(balanced, x)
        points.append(
            {
                "net": i,
                "sizes": "-".join(map(str, sizes)),
                "path_norm": float(path_norm(params, groups)[0]),
                "weight_decay": float(weight_decay_penalty(params, groups)[0]),
                "path_norm_balanced": float(path_norm(balanced, groups)[0]),
                "weight_decay_balanced": float(weight_decay_penalty(balanced, groups)[0]),
                "output_change": float(
                    np.max(np.abs(out - out_b)) / max(np.max(np.abs(out)), 1e-300)
                ),
            }
        )
    return {"points": points}


def _training(config: Training) -> dict:
    ds = data.digits(rng=0)
    x, y = ds.x_train, ds.y_train
    net = MLP([x.shape[1], config.width, 10], bias=False)
    groups = pair_groups(net)
    params = net.init(rng=config.seed)
    c = config.imbalance  # w -> c w, v -> v / c: the same function, ||w|| far from ||v||
    params["layers.0.weight"] = params["layers.0.weight"] * c
    params["layers.1.weight"] = params["layers.1.weight"] / c
    optimizer = sgd_weight_decay(config.lr, config.lam, groups=groups)
    state = optimizer.init(params)
    gen = np.random.default_rng(config.seed + 1)
    log = {
        "iteration": [],
        "mean_abs_diff": [],
        "max_abs_diff": [],
        "mean_abs_delta": [],
        "loss": [],
    }

    def record(t, loss):
        nw, nv = (np.asarray(a) for a in unit_norms(params, groups)[0])
        log["iteration"].append(t)
        log["mean_abs_diff"].append(float(np.mean(np.abs(nw - nv))))
        log["max_abs_diff"].append(float(np.max(np.abs(nw - nv))))
        log["mean_abs_delta"].append(float(np.mean(np.abs(nw**2 - nv**2))))
        log["loss"].append(loss)

    t = 0
    record(0, float(net.value_and_grad(params, x, y)[0]))
    while t < config.steps:
        for idx in data.minibatches(x.shape[0], config.batch_size, gen):
            loss, grads = net.value_and_grad(params, x[idx], y[idx])
            params, state = optimizer.update(grads, state, params)
            t += 1
            if t % config.log_every == 0:
                record(t, float(loss))
            if t >= config.steps:
                break
    return log


def run(config: Rescaling | Scatter | Training) -> dict:
    """One part; the result carries the config as a dict (with its ``part``) for :func:`report`."""
    start = time.process_time()
    part = {Rescaling: _rescaling, Scatter: _scatter, Training: _training}[type(config)]
    out = part(config)
    record = {"part": config.part, **asdict(config)}
    return {"config": record, **out, "seconds": time.process_time() - start}


def _measures(results: list[dict]) -> dict:
    rescaling = [u for r in results if r["config"]["part"] == "rescaling" for u in r["units"]]
    points = [p for r in results if r["config"]["part"] == "scatter" for p in r["points"]]
    training = [r for r in results if r["config"]["part"] == "training"]
    m = {
        "rescaling_max_rel_gap": max(
            abs(u["scipy_min"] - u["path_norm"]) / u["path_norm"] for u in rescaling
        ),
        "rescaling_max_rel_argmin_error": max(
            abs(u["scipy_argmin_a"] - u["closed_form_a"]) / u["closed_form_a"] for u in rescaling
        ),
        "n_nets": len(points),
        "min_rel_excess_before": min(
            (p["weight_decay"] - p["path_norm"]) / p["path_norm"] for p in points
        ),
        "median_rel_excess_before": float(
            np.median([(p["weight_decay"] - p["path_norm"]) / p["path_norm"] for p in points])
        ),
        "max_rel_gap_balanced": max(
            abs(p["weight_decay_balanced"] - p["path_norm_balanced"]) / p["path_norm_balanced"]
            for p in points
        ),
        "max_rel_path_norm_change": max(
            abs(p["path_norm_balanced"] - p["path_norm"]) / p["path_norm"] for p in points
        ),
        "max_output_change": max(p["output_change"] for p in points),
    }
    ratios, predicted = [], []
    for r in training:
        c = r["config"]
        ratios.append(r["mean_abs_diff"][-1] / r["mean_abs_diff"][0])
        m.setdefault("delta_ratio", []).append(r["mean_abs_delta"][-1] / r["mean_abs_delta"][0])
        predicted.append((1 - c["lr"] * c["lam"]) ** (2 * r["iteration"][-1]))
    m["imbalance_ratio"] = ratios
    m["delta_ratio_predicted"] = predicted
    return m


def report(preset: dict, results: list, outdir: Path) -> dict:
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    m = _measures(results)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    r0 = next(r for r in results if r["config"]["part"] == "rescaling")
    for k, u in enumerate(r0["units"]):
        line = axes[0].plot(r0["a"], u["curve"], color=f"C{k}")[0]
        axes[0].axhline(u["path_norm"], color=line.get_color(), ls=":", lw=1)
        axes[0].plot(u["closed_form_a"], u["path_norm"], "o", color=line.get_color())
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="a",
        ylabel="½(a²||w||² + ||v||²/a²)",
        title="(a) rescaled penalty; dots: min = ||w||·||v||",
    )
    points = [p for r in results if r["config"]["part"] == "scatter" for p in r["points"]]
    pn = np.array([p["path_norm"] for p in points])
    axes[1].loglog(pn, [p["weight_decay"] for p in points], ".", ms=4, label="random nets")
    axes[1].loglog(
        [p["path_norm_balanced"] for p in points],
        [p["weight_decay_balanced"] for p in points],
        ".",
        ms=4,
        label="after balance_units",
    )
    lims = [pn.min() * 0.8, pn.max() * 1.2]
    axes[1].plot(lims, lims, "k--", lw=1, label="WD = PN")
    axes[1].set(
        xlabel="path norm Σ||w||·||v||",
        ylabel="½Σ(||W||² + ||V||²)",
        title=f"(b) {len(points)} ReLU nets: all on/above the diagonal",
    )
    axes[1].legend()
    for r in results:
        if r["config"]["part"] != "training":
            continue
        c, it = r["config"], np.array(r["iteration"])
        axes[2].semilogy(it, r["mean_abs_diff"], label="mean | ||w_k|| − ||v_k|| |")
        axes[2].semilogy(it, r["max_abs_diff"], label="max | ||w_k|| − ||v_k|| |")
        axes[2].semilogy(it, r["mean_abs_delta"], label="mean | ||w_k||² − ||v_k||² |")
        axes[2].semilogy(
            it,
            r["mean_abs_delta"][0] * (1 - c["lr"] * c["lam"]) ** (2 * it),
            "k--",
            lw=1,
            label=r"$(1-\gamma\lambda)^{2t}$ prediction",
        )
        axes[2].set(
            xlabel="iteration",
            title=f"(c) SGD + WD on digits (η={c['lr']}, λ={c['lam']}, width {c['width']})",
        )
        break
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    training = [
        {k: r[k] for k in ("iteration", "mean_abs_diff", "max_abs_diff", "mean_abs_delta", "loss")}
        for r in results
        if r["config"]["part"] == "training"
    ]
    data = {"preset": preset, "measures": m, "training": training}
    files = write_outputs(fig, outdir, NAME, points, data)
    rows = [
        {
            "figure": NAME,
            "claim": "min over a>0 of ½(a²||w||² + ||v||²/a²) equals ||w||·||v||",
            "paper": "AM-GM (exact)",
            "measured": f"max relative gap {m['rescaling_max_rel_gap']:.1e} (scipy minimize_scalar)",
        },
        {
            "figure": NAME,
            "claim": "weight-decay penalty ≥ path norm, equal after balancing (function unchanged)",
            "paper": "exact (AM-GM, docs/derivations.md §1)",
            "measured": (
                f"{m['n_nets']} nets: min (WD−PN)/PN = {m['min_rel_excess_before']:.2e} before "
                f"(median {m['median_rel_excess_before']:.2f}), max |WD−PN|/PN = "
                f"{m['max_rel_gap_balanced']:.1e} after; output change ≤ {m['max_output_change']:.1e}"
            ),
        },
        {
            "figure": NAME,
            "claim": "per-unit imbalance shrinks under SGD + weight decay",
            "paper": "||w||²−||v||² decays as e^{−2λt} (gradient flow)",
            "measured": (
                f"mean |Δ_k| ratio {m['delta_ratio'][0]:.3f} vs predicted "
                f"{m['delta_ratio_predicted'][0]:.3f}; mean | ||w||−||v|| | ratio "
                f"{m['imbalance_ratio'][0]:.3f}"
            ),
        },
    ]
    return {"files": [str(f) for f in files], "rows": rows}


def main(outdir: str = "figures", preset: str = "quick", seeds: int | None = None) -> dict:
    return run_sequential(__import__(__name__, fromlist=["run"]), outdir, preset, seeds)


if __name__ == "__main__":
    main()
