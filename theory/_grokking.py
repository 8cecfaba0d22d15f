"""What the two grokking studies (``cpr_grokking``, MLP; ``grokking_transformer``) measure and draw alike.

Delay = first step with validation accuracy ≥ 95 % minus first step with train accuracy ≥ 99 %; a threshold not
reached by the cap is censored at the cap (the delay is then a lower bound).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

# the per-run result fields of the delay, in the order of the CSV columns
DELAY_KEYS = (
    "train99_step",
    "train99_censored",
    "val95_step",
    "val95_censored",
    "delay",
    "delay_censored",
)


def censored_delay(train99: int | None, val95: int | None, cap: int) -> dict[str, Any]:
    """The :data:`DELAY_KEYS` fields from the first steps that reached each threshold (None: not by ``cap``)."""
    t99 = cap if train99 is None else train99
    v95 = cap if val95 is None else val95
    return {
        "train99_step": t99,
        "train99_censored": train99 is None,
        "val95_step": v95,
        "val95_censored": val95 is None,
        "delay": v95 - t99,
        "delay_censored": train99 is None or val95 is None,
    }


def delay_text(rows: list[dict], per_seed: bool) -> str:
    """Mean delay over seeds, then each seed's delay (``per_seed``) or their [min–max]; censored runs enter at
    the cap (lower bounds, marked ≥) and are counted."""
    delays = [r["delay"] for r in rows]
    censored = sum(r["delay_censored"] for r in rows)
    spread = ", ".join(str(d) for d in delays) if per_seed else f"{min(delays)}–{max(delays)}"
    text = f"{'≥ ' if censored else ''}{np.mean(delays):.0f} [{spread}]"
    return text + (f", {censored}/{len(rows)} censored" if censored else "")


def variant_groups(rows: list[dict], plt: Any) -> tuple[list, dict, dict, int]:
    """Variants in first-seen order, the rows of each, a colour per variant and the smallest seed."""
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    by_variant = {v: [row for row in rows if row["variant"] == v] for v in variants}
    colors = dict(
        zip(variants, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3, strict=False)
    )
    seed0 = min(row["seed"] for row in rows)
    return variants, by_variant, colors, seed0


def plot_accuracy(ax: Any, runs: Iterable[dict], colors: dict, seed0: int) -> None:
    """Validation (solid) and train (dotted) accuracy of the given runs (one seed), the 95 % line."""
    for r in runs:
        v, cv = r["config"]["variant"], r["curves"]
        ax.plot(cv["step"], cv["val_acc"], color=colors[v], label=v)
        ax.plot(cv["step"], cv["train_acc"], color=colors[v], ls=":", lw=0.9)
    ax.axhline(0.95, color="gray", lw=0.6)
    ax.set(
        xlabel="step", ylabel="accuracy", title=f"seed {seed0}: validation (solid), train (dotted)"
    )
    ax.legend(fontsize=7)


def plot_total_norm(ax: Any, runs: Iterable[dict], colors: dict) -> None:
    """sqrt(Σ_j R(θ_j)) over the steps of the given runs (axis labels and legend: the caller's)."""
    for r in runs:
        v, cv = r["config"]["variant"], r["curves"]
        total = np.sqrt(sum(np.asarray(cv[k]) for k in cv if k.startswith("R/")))
        ax.plot(cv["step"], total, color=colors[v], label=v)


def curves_table(results: list[dict]) -> list[dict]:
    """Every run's recorded curves, tagged with its variant and seed (the JSON's ``curves``)."""
    return [
        {"variant": r["config"]["variant"], "seed": r["config"]["seed"], **r["curves"]}
        for r in results
    ]


def with_thread_check(runs: list, preset: dict) -> list:
    """``runs`` and, for the variants (and ``seeds``, default all) named in ``preset["thread_check"]``, the same
    runs at more BLAS threads.

    The reruns measure how much a threshold step moves when BLAS sums in another order (2 threads split the
    matrix products differently): the spread a reader should expect on another machine, beyond the seeds'.
    They are reported apart and never enter the figure's statistics (:func:`split_thread_check`).
    """
    from dataclasses import replace

    check = preset.get("thread_check")
    if not check:
        return runs
    seeds = check.get("seeds")  # default: every seed
    extra = [
        replace(r, blas_threads=check["blas_threads"])
        for r in runs
        if r.variant in check["variants"] and (seeds is None or r.seed in seeds)
    ]
    return runs + extra


def split_thread_check(results: list[dict]) -> tuple[list[dict], list[dict]]:
    """The protocol's runs (1 BLAS thread) and the thread-check reruns."""
    main = [r for r in results if r["config"]["blas_threads"] == 1]
    return main, [r for r in results if r["config"]["blas_threads"] != 1]


def thread_check_rows(main: list[dict], reruns: list[dict]) -> list[dict]:
    """Per rerun: its threshold steps and delay beside the 1-thread run's, and how far the curves moved."""
    by_key = {(r["config"]["variant"], r["config"]["seed"]): r for r in main}
    rows = []
    for r in reruns:
        c = r["config"]
        ref = by_key[(c["variant"], c["seed"])]
        n = min(len(ref["curves"]["val_acc"]), len(r["curves"]["val_acc"]))
        diff = np.abs(np.subtract(r["curves"]["val_acc"][:n], ref["curves"]["val_acc"][:n]))
        rows.append(
            {
                "variant": c["variant"],
                "seed": c["seed"],
                "blas_threads": c["blas_threads"],
                "delay_1_thread": ref["delay"],
                "delay": r["delay"],
                "delay_shift": r["delay"] - ref["delay"],
                "censored_1_thread": ref["delay_censored"],
                "censored": r["delay_censored"],
                "val95_step_1_thread": ref["val95_step"],
                "val95_step": r["val95_step"],
                "max_abs_val_acc_difference": float(diff.max()) if n else 0.0,
                "bitwise_equal_curves": r["curves"] == ref["curves"],
            }
        )
    return rows


def thread_check_text(rows: list[dict]) -> str:
    """One sentence of the thread check for the summary: each rerun's delay shift, or "bit-identical"."""
    if not rows:
        return ""
    parts = []
    for row in rows:
        shift = "bit-identical" if row["bitwise_equal_curves"] else f"{row['delay_shift']:+d} steps"
        parts.append(f"{row['variant']} seed {row['seed']}: {shift}")
    threads = rows[0]["blas_threads"]
    return (
        f" With {threads} BLAS threads (same runs, other summation order), delays moved: "
        + ", ".join(parts)
        + "."
    )
