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
