"""CPR's per-tensor constraint at work: R(θ_j), κ_j and λ_j over training, AdamW (tuned) beside AdamCPR.

Claim (CPR paper, problem statement and Algorithm 1): each parameter matrix j gets its own bound κ_j on R(θ_j) = Σθ²,
enforced by its own multiplier λ_j >= 0 that grows only while the constraint is violated, so the regularization
strength adapts per tensor and over time; weight decay shrinks every tensor with one fixed coefficient.

Protocol: MNIST-5k (``refreg.mnist.mnist5k``: 5,000 real MNIST images, fixed split 3,500 train / 500 validation /
1,000 test), MLP 784-128-64-10 (ReLU), minibatch 64, lr 1e-3, float64, a fixed number of epochs. Methods: Adam
(no regularization), AdamW (decoupled weight decay on weight matrices only, torch order) at every weight decay of
a grid, the one with the best seed-mean *validation* accuracy reported (ties: the smaller weight decay); AdamCPR with ``warm_start``
(κ = R(θ_s)), ``inflection_point`` (release detector, S = reg_step_size) and ``dependent`` (κ = k·R(θ₀)) at fixed,
untuned settings (so the tuning favours AdamW). Recorded every ``record_every`` steps: R(θ_j), κ_j, λ_j per
weight matrix; every epoch: validation and test accuracy. Measured over >= 5 seeds with 95% t-intervals: test
accuracy, and the largest relative violation (R − κ)/κ once the bound is set.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from refreg import MLP, data, mnist
from refreg.cpr import KAPPA_UNSET, adam_cpr
from refreg.nn import accuracy, softmax_cross_entropy
from refreg.optim import adam
from theory._common import format_ci, mean_ci, run_sequential, write_outputs

NAME = "cpr_constraint"
DESCRIPTION = (
    "Per-matrix R(theta), kappa and lambda of AdamCPR (warm start, inflection point, dependent) over training "
    "on MNIST-5k, beside AdamW (weight decay tuned on validation) and Adam; test accuracy over 5 seeds"
)
QUICK_SECONDS = 53  # seconds of pool time of the quick preset (35 runs), measured on 2 cores

_COMMON = {
    "hidden": [128, 64],
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decays": [0.01, 0.03, 0.1, 0.3, 1.0],
    "record_every": 10,
    "methods": {
        "adam": {},
        "adamw": {},
        "cpr_warm_start": {"kappa_init": "warm_start", "kappa_init_param": 100},
        "cpr_inflection_point": {"kappa_init": "inflection_point", "reg_step_size": 50},
        "cpr_dependent": {"kappa_init": "dependent", "kappa_init_param": 1.0},
    },
}

PRESETS = {
    "tiny": {
        **_COMMON,
        "hidden": [16],
        "epochs": 2,
        "seeds": 2,
        "record_every": 5,
        "n_train": 300,
        "weight_decays": [0.1, 1.0],
    },
    "quick": {
        **_COMMON,
        "epochs": 12,
        "seeds": 5,
        "n_train": 3500,
        "weight_decays": [0.01, 0.1, 1.0],
    },
    "full": {**_COMMON, "epochs": 100, "seeds": 10, "n_train": 3500},
}
PRESETS["tiny"]["methods"] = {
    "adamw": {},
    "cpr_warm_start": {"kappa_init": "warm_start", "kappa_init_param": 5},
    "cpr_inflection_point": {"kappa_init": "inflection_point", "reg_step_size": 5},
}


@dataclass(frozen=True)
class Run:
    """One training run: a method (``cpr`` holds AdamCPR's options), AdamW's weight decay, one seed."""

    method: str
    seed: int
    weight_decay: float = 0.0
    cpr: dict = field(default_factory=dict)
    hidden: tuple[int, ...] = (128, 64)
    batch_size: int = 64
    lr: float = 1e-3
    record_every: int = 10
    epochs: int = 12
    n_train: int = 3500


def configs(preset: dict, seeds: int | None = None) -> list[Run]:
    """One config per (seed, method), AdamW once per weight decay of the grid."""
    n_seeds = preset["seeds"] if seeds is None else seeds
    keys = ("batch_size", "lr", "record_every", "epochs", "n_train")
    common = {k: preset[k] for k in keys} | {"hidden": tuple(preset["hidden"])}
    return [
        Run(method=m, seed=seed, weight_decay=wd, cpr=dict(o), **common)
        for seed in range(n_seeds)
        for m, o in preset["methods"].items()
        for wd in (preset["weight_decays"] if m == "adamw" else [0.0])
    ]


def _warm_start(config: dict) -> int | None:
    return (
        config["cpr"].get("kappa_init_param")
        if config["cpr"].get("kappa_init") == "warm_start"
        else None
    )


def run(config: Run) -> dict:
    """Train one method; per weight matrix the curves of R, κ, λ; test accuracy."""
    start = time.process_time()
    config = asdict(config)
    seed = config["seed"]
    ds = mnist.mnist5k()  # one fixed split; the seed varies the initialisation and the batch order
    ds = ds._replace(
        x_train=ds.x_train[: config["n_train"]], y_train=ds.y_train[: config["n_train"]]
    )
    net = MLP([784, *config["hidden"], 10])
    params = net.init(rng=seed)
    weights = [k for k in params if params[k].ndim >= 2]
    lr = config["lr"]
    if config["method"].startswith("cpr"):
        opt = adam_cpr(lr, **config["cpr"])
        decay = None
    else:
        opt = adam(lr)
        decay = 1.0 - lr * config["weight_decay"] if config["method"] == "adamw" else None
    state = opt.init(params)
    gen = np.random.default_rng(seed)
    curves: dict[str, list] = {"step": []}
    for k in weights:
        curves[f"R/{k}"], curves[f"kappa/{k}"], curves[f"lam/{k}"] = [], [], []
    acc_curve: dict[str, list] = {"step": [], "val_acc": [], "test_acc": []}
    step = 0
    for _ in range(config["epochs"]):
        for idx in data.minibatches(ds.x_train.shape[0], config["batch_size"], gen):
            out, cache = net.forward(params, ds.x_train[idx])
            _, grad_out = softmax_cross_entropy(out, ds.y_train[idx])
            grads, _ = net.backward(params, cache, grad_out)
            if decay is not None:  # AdamW (torch order), weight matrices only
                params = {k: v * decay if k in weights else v for k, v in params.items()}
            params, state = opt.update(grads, state, params)
            step += 1
            if step % config["record_every"] == 0:
                curves["step"].append(step)
                for k in weights:
                    curves[f"R/{k}"].append(float(np.sum(params[k] ** 2)))
                    is_cpr = hasattr(state, "kappa")
                    kappa = state.kappa[k] if is_cpr else None
                    if kappa == KAPPA_UNSET or (_warm_start(config) and step < _warm_start(config)):
                        kappa = None  # not set yet (the release's placeholders: 1e6, or 0 before step s)
                    curves[f"kappa/{k}"].append(kappa)
                    curves[f"lam/{k}"].append(state.lam[k] if is_cpr else None)
        acc_curve["step"].append(step)
        acc_curve["val_acc"].append(accuracy(net.predict(params, ds.x_val), ds.y_val))
        acc_curve["test_acc"].append(accuracy(net.predict(params, ds.x_test), ds.y_test))
    violation = {}
    for k in weights:
        rel = [
            (r - c) / c
            for r, c in zip(curves[f"R/{k}"], curves[f"kappa/{k}"], strict=True)
            if c is not None and c > 0
        ]
        violation[k] = max(rel) if rel else None
    first_set = {
        k: next(
            (s for s, c in zip(curves["step"], curves[f"kappa/{k}"], strict=True) if c is not None),
            None,
        )
        for k in weights
    }
    if config["cpr"].get("kappa_init") in ("uniform", "dependent"):
        first_set = dict.fromkeys(weights, 0)  # set by init, before the first step
    return {
        "config": config,
        "curves": curves,
        "acc": acc_curve,
        "test_acc": acc_curve["test_acc"][-1],
        "val_acc": acc_curve["val_acc"][-1],
        "max_relative_violation": violation,
        "kappa_set_step": first_set,
        "steps": step,
        "seconds": time.process_time() - start,
    }


def report(preset: dict, results: list, outdir: Path) -> dict:
    """Grid figure (rows: R with κ, λ; columns: weight matrices), CSV of summary numbers, JSON of curves."""
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    grid = _adamw_grid(results)
    best_wd = max(grid, key=lambda g: g["val_acc"])["weight_decay"] if grid else None
    for g in grid:
        g["selected"] = g["weight_decay"] == best_wd
    all_results = results
    results = [
        r
        for r in results
        if r["config"]["method"] != "adamw" or r["config"]["weight_decay"] == best_wd
    ]
    weights = sorted(
        {k.split("/", 1)[1] for r in results for k in r["curves"] if k.startswith("R/")}
    )
    methods = list(dict.fromkeys(r["config"]["method"] for r in results))
    colors = dict(zip(methods, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    seed0 = min(r["config"]["seed"] for r in results)
    fig, axes = plt.subplots(
        2, len(weights) + 1, figsize=(4.6 * (len(weights) + 1), 7.2), squeeze=False
    )
    for r in results:
        c = r["config"]
        if c["seed"] != seed0:
            continue
        m, cv = c["method"], r["curves"]
        label = f"adamw (wd {best_wd:g}, chosen on validation)" if m == "adamw" else m
        for j, k in enumerate(weights):
            axes[0][j].plot(cv["step"], cv[f"R/{k}"], color=colors[m], label=label)
            kap = [np.nan if v is None else v for v in cv[f"kappa/{k}"]]
            if not all(np.isnan(kap)):
                axes[0][j].plot(cv["step"], kap, color=colors[m], ls="--", lw=0.9)
            lam = cv[f"lam/{k}"]
            if lam and lam[0] is not None:
                axes[1][j].plot(cv["step"], lam, color=colors[m], label=m)
        axes[0][-1].plot(r["acc"]["step"], r["acc"]["test_acc"], color=colors[m], label=label)
    for j, k in enumerate(weights):
        axes[0][j].set(title=f"{k}: R = Σθ² (solid), κ (dashed)", xlabel="step", yscale="log")
        axes[1][j].set(title=f"{k}: λ", xlabel="step")
        axes[1][j].legend(fontsize=7)
    axes[0][0].legend(fontsize=7)
    axes[0][-1].set(title="test accuracy", xlabel="step")
    axes[0][-1].legend(fontsize=7)
    axes[1][-1].axis("off")
    fig.suptitle(
        f"{NAME}: MNIST-5k, MLP 784-{'-'.join(map(str, preset['hidden']))}-10, {preset['epochs']} epochs, "
        f"seed {seed0} (curves)",
        fontsize=10,
    )
    fig.tight_layout()
    rows = []
    for r in all_results:
        c = r["config"]
        row = {
            "method": c["method"],
            "weight_decay": c["weight_decay"],
            "selected": c["method"] != "adamw" or c["weight_decay"] == best_wd,
            "seed": c["seed"],
            "val_acc": r["val_acc"],
            "test_acc": r["test_acc"],
            "steps": r["steps"],
        }
        for k in weights:
            row[f"final_R/{k}"] = r["curves"][f"R/{k}"][-1]
            row[f"final_kappa/{k}"] = r["curves"][f"kappa/{k}"][-1]
            row[f"final_lam/{k}"] = r["curves"][f"lam/{k}"][-1]
            row[f"kappa_set_step/{k}"] = r["kappa_set_step"][k]
            row[f"max_rel_violation/{k}"] = r["max_relative_violation"][k]
        row["cpu_seconds"] = r["seconds"]
        rows.append(row)
    curves = [
        {"method": r["config"]["method"], "seed": r["config"]["seed"], **r["curves"]}
        for r in results
    ]
    payload = {"runs": rows, "curves": curves, "adamw_grid": grid, "preset": preset}
    files = write_outputs(fig, outdir, NAME, rows, payload, extra_tables={"adamw_grid": grid})
    chosen = [row for row in rows if row["selected"]]
    return {"files": files, "rows": _summary_rows(chosen, methods, weights, best_wd, grid)}


def _adamw_grid(results: list) -> list[dict]:
    """Seed-mean validation and test accuracy of AdamW at every weight decay of the grid."""
    out = []
    wds = sorted({r["config"]["weight_decay"] for r in results if r["config"]["method"] == "adamw"})
    for wd in wds:
        sel = [
            r
            for r in results
            if r["config"]["method"] == "adamw" and r["config"]["weight_decay"] == wd
        ]
        val, val_ci = mean_ci([r["val_acc"] for r in sel])
        test, test_ci = mean_ci([r["test_acc"] for r in sel])
        out.append(
            {"weight_decay": wd, "seeds": len(sel), "val_acc": val, "val_ci": val_ci}
            | {"test_acc": test, "test_ci": test_ci}
        )
    return out


def _summary_rows(rows, methods, weights, best_wd, grid) -> list[dict]:
    parts = []
    for m in methods:
        sel = [row for row in rows if row["method"] == m]
        acc, half = mean_ci([row["test_acc"] for row in sel])
        name = (
            f"adamw (wd {best_wd:g} of {[g['weight_decay'] for g in grid]})" if m == "adamw" else m
        )
        text = f"{name}: test acc {format_ci(acc, half, '.2f', 100)}%"
        if m.startswith("cpr"):
            viol = [row[f"max_rel_violation/{k}"] for row in sel for k in weights]
            viol = [v for v in viol if v is not None]
            steps = [row[f"kappa_set_step/{k}"] for row in sel for k in weights]
            text += f", κ set at steps {sorted(set(steps), key=lambda s: (s is None, s or 0))}" + (
                f", max (R−κ)/κ after κ set {max(viol):.3g}" if viol else ", κ never set"
            )
        parts.append(text)
    return [
        {
            "figure": NAME,
            "claim": "CPR bounds R(θ_j) <= κ_j per matrix with an adaptive λ_j (λ > 0 only while the bound binds)",
            "paper": "Algorithm 1; per-matrix bounds replace one weight-decay coefficient (no numbers)",
            "measured": f"{len({row['seed'] for row in rows})} seeds: " + "; ".join(parts),
        }
    ]


def main(outdir: str = "figures", preset: str = "quick", seeds: int | None = None) -> dict:
    return run_sequential(__import__(__name__, fromlist=["run"]), outdir, preset, seeds)
