"""Nonzero weights at equal test accuracy: the scale-invariant entropy regularizers against Lp/Hoyer baselines.

Claim (Bayandorian 2023, arXiv 2301.07285, abstract): about one order of magnitude fewer nonzero parameters
at the same test accuracy than Lp-norm regularizers (LeNet-300-100 on MNIST). refreg's ``spatial_entropy`` is a
*reconstruction* of that regularizer (the formula is not published in anything at hand), so this figure
measures the claim for the reconstruction.

Protocol (DeepHoyer's LeNet-300-100 setup): per regularizer and alpha, train loss + alpha·ΣR(W_l) (biases
free), prune |w| < t (absolute) or |w| < t·max|W| (relative, per tensor), fine-tune the survivors with the
mask fixed and no regularizer; a dense net (alpha = 0) is the reference. Open questions answered by the
grid: Adam vs SGD with momentum, per-layer vs network-wide normalisation, absolute vs relative thresholds.
Embedded data: scikit-learn digits with a 64-300-100-10 MLP; ``preset["mnist"] = folder`` switches to
784-300-100-10 on local MNIST IDX files.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from refreg import MLP, adam, data, sgd, sparse, training
from theory._common import run_sequential, write_outputs

NAME = "sparse_tradeoff"
DESCRIPTION = (
    "Pareto fronts of (nonzero weights, test accuracy) after prune + masked fine-tune: spatial/element "
    "entropy vs L1, Hoyer-Square and others; Adam vs SGD, per-layer vs network-wide, abs vs rel threshold"
)
QUICK_SECONDS = 250  # core-seconds of the quick preset (150 runs), measured

ENTROPIES = ("spatial_entropy", "element_entropy")
# regularizers whose value pools sums over the matrices (so the network-wide scope differs from per-layer)
POOLED = ("spatial_entropy", "element_entropy", "hoyer", "hoyer_square", "group_hoyer_square")

# alpha grids per optimizer (log-spaced); chosen so that each method spans dense -> heavily pruned
ALPHAS = {
    "adam": {
        "spatial_entropy": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0],
        "element_entropy": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0],
        "l1": [3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
        "l2": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
        "group_lasso": [3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
        "hoyer": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
        "hoyer_square": [3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3],
        "group_hoyer_square": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3],
    },
    "sgd": {
        "spatial_entropy": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0],
        "element_entropy": [0.1, 0.3, 1.0, 3.0, 10.0, 30.0],
        "l1": [3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
        "l2": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
        "group_lasso": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
        "hoyer": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
        "hoyer_square": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3],
        "group_hoyer_square": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
    },
}
"""Alpha grids per optimizer: the quick preset takes indices 1-4. The entropy, L1 and Hoyer-Square grids were
placed by a 1-seed scan on digits (15 epochs) to span dense -> accuracy collapse; the others (full preset
only) are scaled from them by the size of each penalty's gradient and are not scanned."""

_COMMON = {
    "batch_size": 100,
    "lr": {"adam": 1e-3, "sgd": 0.05},
    "finetune_lr": {"adam": 1e-4, "sgd": 0.005},
    "momentum": 0.9,
    "prune_abs": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
    "prune_rel": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
    "mnist": None,
    "per_class": None,
}

PRESETS = {
    "tiny": {
        **_COMMON,
        "hidden": [16],
        "epochs": 2,
        "finetune_epochs": 1,
        "methods": ["spatial_entropy", "l1"],
        "scopes": ["layer"],
        "network_methods": [],
        "optimizers": ["adam"],
        "alpha_index": [2],
        "finetune_abs": [1e-2],
        "finetune_rel": [1e-1],
        "seeds": 1,
    },
    "quick": {
        **_COMMON,
        "hidden": [300, 100],
        "epochs": 15,
        "finetune_epochs": 3,
        "methods": ["spatial_entropy", "element_entropy", "l1", "hoyer_square"],
        "scopes": ["layer", "network"],
        "network_methods": list(ENTROPIES),
        "optimizers": ["adam", "sgd"],
        "alpha_index": [1, 2, 3, 4],
        "finetune_abs": [1e-2],
        "finetune_rel": [1e-1],
        "seeds": 3,
    },
    "full": {
        **_COMMON,
        "hidden": [300, 100],
        "epochs": 150,
        "finetune_epochs": 40,
        "methods": list(sparse.REGULARIZERS),
        "scopes": ["layer", "network"],
        "network_methods": list(POOLED),
        "optimizers": ["adam", "sgd"],
        "alpha_index": [0, 1, 2, 3, 4, 5],
        "finetune_abs": [1e-3, 1e-2],
        "finetune_rel": [1e-2, 1e-1],
        "seeds": 3,
    },
}

TARGET_DROPS = (0.5, 1.0)  # accuracy targets: dense − 0.5 pp and dense − 1 pp


def configs(preset: dict, seeds: int | None = None) -> list[dict]:
    """One config per (seed, optimizer, method, scope, alpha), plus a dense run per (seed, optimizer).

    Scope-free methods (L1, L2, group lasso: additive over layers) run once, with ``scope="layer"``.
    """
    n_seeds = preset["seeds"] if seeds is None else seeds
    base = {
        k: preset[k]
        for k in (
            "hidden",
            "epochs",
            "finetune_epochs",
            "batch_size",
            "momentum",
            "prune_abs",
            "prune_rel",
            "finetune_abs",
            "finetune_rel",
            "mnist",
            "per_class",
        )
    }
    out = []
    for seed in range(n_seeds):
        for opt in preset["optimizers"]:
            common = {
                **base,
                "seed": seed,
                "optimizer": opt,
                "lr": preset["lr"][opt],
                "finetune_lr": preset["finetune_lr"][opt],
            }
            out.append({**common, "method": "dense", "scope": "layer", "alpha": 0.0})
            for method in preset["methods"]:
                scopes = [
                    s
                    for s in preset["scopes"]
                    if s == "layer" or method in preset["network_methods"]
                ]
                for scope in scopes:
                    for i in preset["alpha_index"]:
                        alpha = ALPHAS[opt][method][i]
                        out.append({**common, "method": method, "scope": scope, "alpha": alpha})
    return out


def _dataset(config: dict) -> data.Dataset:
    if config.get("mnist"):
        ds = data.mnist(config["mnist"])
        if config.get("per_class"):
            x, y = data.subset(ds.x_train, ds.y_train, config["per_class"], rng=0)
            ds = data.Dataset(x, y, ds.x_test, ds.y_test)
        return ds
    return data.digits(rng=0)  # one fixed split: the seed varies init and batch order


def _optimizer(config: dict, lr: float):
    if config["optimizer"] == "adam":
        return adam(lr)
    return sgd(lr, momentum=config["momentum"])


def _structure(params: dict, n_layers: int) -> dict:
    """Nonzeros per layer, dead hidden units (zero incoming row or zero outgoing column) and dead inputs."""
    ws = [np.asarray(params[f"layers.{i}.weight"]) for i in range(n_layers)]
    dead_units = 0
    for i in range(n_layers - 1):
        dead_in = ~np.any(ws[i] != 0, axis=1)
        dead_out = ~np.any(ws[i + 1] != 0, axis=0)
        dead_units += int(np.sum(dead_in | dead_out))
    return {
        "nnz_layers": [int(np.count_nonzero(w)) for w in ws],
        "dead_units": dead_units,
        "dead_inputs": int(np.sum(~np.any(ws[0] != 0, axis=0))),
    }


def _train(net, optimizer, params, ds, epochs, batch_size, gen, penalty=None):
    state = optimizer.init(params)
    for _ in range(epochs):
        params, state, _ = training.train_epoch(
            net, optimizer, params, state, ds.x_train, ds.y_train, batch_size, gen, penalty=penalty
        )
    return params


def run(config: dict) -> dict:
    """Train with the regularizer, record the prune curve, fine-tune at the chosen thresholds."""
    t0 = time.process_time()
    ds = _dataset(config)
    sizes = [ds.x_train.shape[1], *config["hidden"], 10]
    net = MLP(sizes)
    gen = np.random.default_rng(config["seed"])
    params = net.init(rng=gen)
    weights = [net.weight_name(i) for i in range(net.n_layers)]
    penalty = None
    if config["method"] != "dense":

        def penalty(p):
            return sparse.penalty(p, config["method"], config["alpha"], weights, config["scope"])

    params = _train(
        net,
        _optimizer(config, config["lr"]),
        params,
        ds,
        config["epochs"],
        config["batch_size"],
        gen,
        penalty,
    )
    _, acc = training.evaluate(net, params, ds.x_test, ds.y_test)
    result = {
        "acc_trained": acc,
        "nnz_trained": sparse.count_nonzero(params, weights),
        "n_weights": sum(int(np.prod(np.shape(params[w]))) for w in weights),
        "curve": [],
        "finetuned": [],
    }
    # prune curve without fine-tuning (evaluation only, cheap)
    for kind, thresholds in (("abs", config["prune_abs"]), ("rel", config["prune_rel"])):
        for t in thresholds:
            masks = sparse.magnitude_mask(params, t, relative=kind == "rel", names=weights)
            pruned = sparse.apply_mask(params, masks)
            _, acc_p = training.evaluate(net, pruned, ds.x_test, ds.y_test)
            result["curve"].append(
                {
                    "kind": kind,
                    "threshold": t,
                    "nnz": sparse.count_nonzero(pruned, weights),
                    "acc": acc_p,
                }
            )
    # masked fine-tuning with the mask fixed, no regularizer
    for kind, thresholds in (("abs", config["finetune_abs"]), ("rel", config["finetune_rel"])):
        for t in thresholds:
            masks = sparse.magnitude_mask(params, t, relative=kind == "rel", names=weights)
            pruned = sparse.apply_mask(params, masks)
            opt = sparse.masked(_optimizer(config, config["finetune_lr"]), masks)
            tuned = _train(
                net, opt, pruned, ds, config["finetune_epochs"], config["batch_size"], gen
            )
            _, acc_f = training.evaluate(net, tuned, ds.x_test, ds.y_test)
            result["finetuned"].append(
                {
                    "kind": kind,
                    "threshold": t,
                    "nnz": sparse.count_nonzero(tuned, weights),
                    "acc": acc_f,
                    **_structure(tuned, net.n_layers),
                }
            )
    result["seconds"] = time.process_time() - t0
    result["config"] = config
    return result


# ------------------------------------------------------------------------------------------------ report
def _points(preset: dict, results: list[tuple[dict, dict]]) -> list[dict]:
    """Seed-averaged points: one per (optimizer, method, scope, alpha, stage, kind, threshold)."""
    groups: dict[tuple, list] = {}
    for cfg, res in results:
        key0 = (cfg["optimizer"], cfg["method"], cfg["scope"], cfg["alpha"])
        groups.setdefault((*key0, "trained", "none", 0.0), []).append(
            (res["nnz_trained"], res["acc_trained"], 0, 0)
        )
        for stage in ("curve", "finetuned"):
            for p in res[stage]:
                groups.setdefault((*key0, stage, p["kind"], p["threshold"]), []).append(
                    (p["nnz"], p["acc"], p.get("dead_units", 0), p.get("dead_inputs", 0))
                )
    rows = []
    for (opt, method, scope, alpha, stage, kind, t), vals in sorted(groups.items(), key=str):
        v = np.asarray(vals, dtype=float)
        rows.append(
            {
                "optimizer": opt,
                "method": method,
                "scope": scope,
                "alpha": alpha,
                "stage": stage,
                "kind": kind,
                "threshold": t,
                "nnz": float(v[:, 0].mean()),
                "acc": float(v[:, 1].mean()),
                "acc_std": float(v[:, 1].std()),
                "dead_units": float(v[:, 2].mean()),
                "dead_inputs": float(v[:, 3].mean()),
                "seeds": len(vals),
            }
        )
    return rows


def _pareto(points: list[dict]) -> list[dict]:
    """Points not dominated in (fewer nonzeros, higher accuracy), sorted by nonzeros."""
    front, best = [], -math.inf
    for p in sorted(points, key=lambda p: (p["nnz"], -p["acc"])):
        if p["acc"] > best:
            front.append(p)
            best = p["acc"]
    return front


def _needed(points: list[dict], target: float) -> dict | None:
    """The point with the fewest nonzeros whose seed-mean accuracy reaches ``target``."""
    ok = [p for p in points if p["acc"] >= target - 1e-12]
    return min(ok, key=lambda p: p["nnz"]) if ok else None


def _method_points(preset, rows, opt, method, scope, kinds=("abs", "rel")):
    """Every pruned model of a method: the prune curve (no fine-tuning) and the fine-tuned ones.

    Methods not run network-wide (scope-free L1/L2/group lasso, dense pruning, and in the quick preset
    Hoyer-Square) contribute their per-layer runs to both scopes.
    """
    s = scope if method in preset["network_methods"] else "layer"
    return [
        r
        for r in rows
        if r["optimizer"] == opt
        and r["method"] == method
        and r["scope"] == s
        and r["stage"] in ("curve", "finetuned")
        and r["kind"] in kinds
    ]


def report(preset: dict, results: list, outdir: Path) -> dict:
    """Pareto plot, CSV of every point, JSON of nonzeros needed and ratios, summary rows."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    outdir = Path(outdir)
    pairs = [(r["config"], r) for r in results]  # each result carries its config (seeds may differ)
    rows = _points(preset, pairs)
    methods = [*preset["methods"], "dense"]  # "dense": magnitude pruning of the unregularized net
    opts, scopes = list(preset["optimizers"]), list(preset["scopes"])
    dense = {
        opt: next(
            r
            for r in rows
            if r["optimizer"] == opt and r["method"] == "dense" and r["stage"] == "trained"
        )
        for opt in opts
    }
    ratios = []
    for opt in opts:
        for scope in scopes:
            for kinds in (("abs",), ("rel",), ("abs", "rel")):
                for drop in TARGET_DROPS:
                    target = dense[opt]["acc"] - drop / 100.0
                    need = {
                        m: _needed(_method_points(preset, rows, opt, m, scope, kinds), target)
                        for m in methods
                    }
                    for ent in [m for m in methods if m in ENTROPIES]:
                        for base in [m for m in methods if m not in ENTROPIES]:
                            e, b = need[ent], need[base]
                            ratios.append(
                                {
                                    "optimizer": opt,
                                    "scope": scope,
                                    "threshold_kind": "+".join(kinds),
                                    "target_drop_pp": drop,
                                    "target_acc": target,
                                    "entropy": ent,
                                    "baseline": base,
                                    "entropy_nnz": e and e["nnz"],
                                    "entropy_acc": e and e["acc"],
                                    "baseline_nnz": b and b["nnz"],
                                    "baseline_acc": b and b["acc"],
                                    "entropy_point": e and _describe(e),
                                    "baseline_point": b and _describe(b),
                                    "entropy_dead_units": e and e["dead_units"],
                                    "baseline_dead_units": b and b["dead_units"],
                                    "ratio_baseline_over_entropy": (
                                        b["nnz"] / e["nnz"] if (e and b and e["nnz"] > 0) else None
                                    ),
                                }
                            )
    # figure: one panel per (optimizer, scope), fine-tuned Pareto fronts
    fig, axes = plt.subplots(
        len(opts), len(scopes), figsize=(5.2 * len(scopes), 3.8 * len(opts)), squeeze=False
    )
    colors = dict(
        zip(
            list(sparse.REGULARIZERS),
            plt.rcParams["axes.prop_cycle"].by_key()["color"],
            strict=False,
        )
    )
    colors["dense"] = "0.5"
    for i, opt in enumerate(opts):
        for j, scope in enumerate(scopes):
            ax = axes[i][j]
            for m in methods:
                pts = _method_points(preset, rows, opt, m, scope)
                if not pts:
                    continue
                label = "dense + pruning" if m == "dense" else m
                ax.scatter(
                    [p["nnz"] for p in pts],
                    [100 * p["acc"] for p in pts],
                    s=8,
                    alpha=0.35,
                    color=colors[m],
                )
                front = _pareto(pts)
                ls = "-" if m in ENTROPIES else "--"
                ax.plot(
                    [p["nnz"] for p in front],
                    [100 * p["acc"] for p in front],
                    ls,
                    marker="o",
                    ms=3,
                    color=colors[m],
                    label=label,
                )
            d = dense[opt]
            ax.axhline(
                100 * d["acc"],
                color="k",
                lw=0.8,
                label=f"dense {100 * d['acc']:.1f}% ({d['nnz']:.0f} w)",
            )
            ax.axhline(100 * d["acc"] - 1, color="k", lw=0.6, ls=":")
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # minor log labels overlap
            ax.set_ylim(max(0, 100 * d["acc"] - 15), 100 * d["acc"] + 2)
            ax.set_title(f"{opt}, {scope} scope (pruned abs/rel, +/- fine-tune)", fontsize=9)
            ax.set_xlabel("nonzero weights")
            ax.set_ylabel("test accuracy (%)")
            ax.legend(fontsize=6, loc="lower right")
    data_name = (
        "MNIST 784-300-100-10"
        if preset.get("mnist")
        else f"digits 64-{'-'.join(map(str, preset['hidden']))}-10"
    )
    fig.suptitle(
        f"{NAME}: {data_name}, {len({c['seed'] for c, _ in pairs})} seeds (means)", fontsize=10
    )
    fig.tight_layout()
    data = {"dense": dense, "ratios": ratios, "seconds": sum(r["seconds"] for _, r in pairs)}
    files = write_outputs(fig, outdir, NAME, rows, data, extra_tables={"ratios": ratios})
    return {"files": files, "rows": _summary_rows(preset, ratios, dense)}


def _describe(point: dict) -> str:
    """Where a point comes from: alpha, threshold and whether it was fine-tuned."""
    stage = "fine-tuned" if point["stage"] == "finetuned" else "pruned only"
    return f"alpha={point['alpha']:g}, {point['kind']} t={point['threshold']:g}, {stage}"


def _fmt(x, spec=".0f"):
    return "n/a" if x is None else format(x, spec)


def _summary_rows(preset, ratios, dense) -> list[dict]:
    out = []
    for opt in preset["optimizers"]:
        for scope in preset["scopes"]:
            for ent in [m for m in preset["methods"] if m in ENTROPIES]:
                sel = [
                    r
                    for r in ratios
                    if r["optimizer"] == opt
                    and r["scope"] == scope
                    and r["entropy"] == ent
                    and r["threshold_kind"] == "abs+rel"
                    and r["target_drop_pp"] == 1.0
                ]
                if not sel:
                    continue
                e = sel[0]
                parts = [
                    f"{r['baseline']} {_fmt(r['baseline_nnz'])} ({_fmt(r['ratio_baseline_over_entropy'], '.2f')}x)"
                    for r in sel
                ]
                out.append(
                    {
                        "figure": NAME,
                        "claim": f"{ent} ({opt}, {scope} scope) needs ~10x fewer nonzeros than baselines at equal accuracy",
                        "paper": "~10x fewer nonzeros than Lp regularizers (LeNet-300-100, MNIST)",
                        "measured": (
                            f"at >= {100 * e['target_acc']:.2f}% (dense {100 * dense[opt]['acc']:.2f}% - 1 pp): "
                            f"{ent} {_fmt(e['entropy_nnz'])} nonzeros "
                            f"({_fmt(e['entropy_dead_units'])} of {sum(preset['hidden'])} hidden units dead); "
                            + "; ".join(parts)
                            + " (ratio = baseline/entropy nonzeros; >1 favours the entropy)"
                        ),
                    }
                )
    for opt in preset["optimizers"]:
        for kind in ("abs", "rel"):
            sel = [
                r
                for r in ratios
                if r["optimizer"] == opt
                and r["scope"] == "layer"
                and r["threshold_kind"] == kind
                and r["target_drop_pp"] == 1.0
                and r["entropy"] == "spatial_entropy"
            ]
            if not sel:
                continue
            out.append(
                {
                    "figure": NAME,
                    "claim": f"the ranking does not hinge on the prune threshold ({opt}, {kind} thresholds only)",
                    "paper": "not addressed (DeepHoyer prunes |w| < 1e-3)",
                    "measured": f"spatial_entropy {_fmt(sel[0]['entropy_nnz'])} nonzeros; "
                    + "; ".join(
                        f"{r['baseline']} {_fmt(r['baseline_nnz'])} ({_fmt(r['ratio_baseline_over_entropy'], '.2f')}x)"
                        for r in sel
                    ),
                }
            )
    return out


def main(outdir: str = "figures", preset: str = "quick", seeds: int | None = None) -> dict:
    """Run the preset sequentially (``refreg figures`` uses the runner instead) and report."""
    return run_sequential(sys.modules[__name__], outdir, preset, seeds)
