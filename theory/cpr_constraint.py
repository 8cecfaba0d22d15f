"""CPR's per-tensor constraint at work: R(θ_j), κ_j and λ_j over training, AdamW beside AdamCPR.

Claim (CPR paper, problem statement and Algorithm 1): each parameter matrix j gets its own bound κ_j on R(θ_j) = Σθ²,
enforced by its own multiplier λ_j >= 0 that grows only while the constraint is violated, so the regularization
strength adapts per tensor and over time; weight decay shrinks every tensor with one fixed coefficient.

Protocol: scikit-learn digits (embedded), MLP 64-128-64-10 (ReLU), minibatch 64, lr 1e-3, float64. Methods:
Adam (no regularization), AdamW (weight decay on weight matrices only), AdamCPR with ``warm_start`` (κ = R(θ_s)),
``inflection_point`` (release detector, S = reg_step_size) and ``dependent`` (κ = k·R(θ₀)). Recorded every
``record_every`` steps: R(θ_j), κ_j, λ_j per weight matrix, and test accuracy. Measured: the largest relative
violation (R − κ)/κ once the bound is set, and the final test accuracy.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from refreg import MLP, data
from refreg.cpr import KAPPA_UNSET, adam_cpr
from refreg.nn import accuracy, softmax_cross_entropy
from refreg.optim import adam
from theory._common import run_sequential, write_outputs

NAME = "cpr_constraint"
DESCRIPTION = (
    "Per-matrix R(theta), kappa and lambda of AdamCPR (warm start, inflection point, dependent) over training "
    "on digits, beside AdamW and Adam"
)
QUICK_SECONDS = 25  # core-seconds of the quick preset, measured

_COMMON = {
    "hidden": [128, 64],
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 0.1,
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
    "tiny": {**_COMMON, "hidden": [16], "epochs": 2, "seeds": 1, "record_every": 5},
    "quick": {**_COMMON, "epochs": 40, "seeds": 2},
    "full": {**_COMMON, "epochs": 200, "seeds": 5},
}
PRESETS["tiny"]["methods"] = {
    "adamw": {},
    "cpr_warm_start": {"kappa_init": "warm_start", "kappa_init_param": 20},
    "cpr_inflection_point": {"kappa_init": "inflection_point", "reg_step_size": 5},
}


def configs(preset: dict, seeds: int | None = None) -> list[dict]:
    """One config per (seed, method)."""
    n_seeds = preset["seeds"] if seeds is None else seeds
    keys = ("hidden", "batch_size", "lr", "weight_decay", "record_every", "epochs")
    return [
        {**{k: preset[k] for k in keys}, "seed": seed, "method": m, "cpr": dict(o)}
        for seed in range(n_seeds)
        for m, o in preset["methods"].items()
    ]


def _warm_start(config: dict) -> int | None:
    return (
        config["cpr"].get("kappa_init_param")
        if config["cpr"].get("kappa_init") == "warm_start"
        else None
    )


def run(config: dict) -> dict:
    """Train one method; per weight matrix the curves of R, κ, λ; test accuracy."""
    start = time.process_time()
    seed = config["seed"]
    ds = data.digits(rng=seed)
    net = MLP([64, *config["hidden"], 10])
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
    acc_curve: dict[str, list] = {"step": [], "test_acc": []}
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
        "max_relative_violation": violation,
        "kappa_set_step": first_set,
        "steps": step,
        "seconds": time.process_time() - start,
    }


def report(preset: dict, results: list, outdir: Path) -> dict:
    """Grid figure (rows: R with κ, λ; columns: weight matrices), CSV of summary numbers, JSON of curves."""
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
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
        for j, k in enumerate(weights):
            axes[0][j].plot(cv["step"], cv[f"R/{k}"], color=colors[m], label=m)
            kap = [np.nan if v is None else v for v in cv[f"kappa/{k}"]]
            if not all(np.isnan(kap)):
                axes[0][j].plot(cv["step"], kap, color=colors[m], ls="--", lw=0.9)
            lam = cv[f"lam/{k}"]
            if lam and lam[0] is not None:
                axes[1][j].plot(cv["step"], lam, color=colors[m], label=m)
        axes[0][-1].plot(r["acc"]["step"], r["acc"]["test_acc"], color=colors[m], label=m)
    for j, k in enumerate(weights):
        axes[0][j].set(title=f"{k}: R = Σθ² (solid), κ (dashed)", xlabel="step", yscale="log")
        axes[1][j].set(title=f"{k}: λ", xlabel="step")
        axes[1][j].legend(fontsize=7)
    axes[0][0].legend(fontsize=7)
    axes[0][-1].set(title="test accuracy", xlabel="step")
    axes[0][-1].legend(fontsize=7)
    axes[1][-1].axis("off")
    fig.suptitle(
        f"{NAME}: digits, MLP 64-{'-'.join(map(str, preset['hidden']))}-10, seed {seed0}",
        fontsize=10,
    )
    fig.tight_layout()
    rows = []
    for r in results:
        c = r["config"]
        row = {
            "method": c["method"],
            "seed": c["seed"],
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
    files = write_outputs(fig, outdir, NAME, rows, {"runs": rows, "curves": curves})
    return {"files": files, "rows": _summary_rows(rows, methods, weights)}


def _summary_rows(rows: list[dict], methods: list[str], weights: list[str]) -> list[dict]:
    parts = []
    for m in methods:
        sel = [row for row in rows if row["method"] == m]
        acc = np.mean([row["test_acc"] for row in sel])
        text = f"{m}: test acc {100 * acc:.2f}%"
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
