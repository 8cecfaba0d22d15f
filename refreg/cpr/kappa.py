"""CPR's κ initializations (paper Sec. 4: Kappa-K, Kappa-kI₀, Kappa-WS, Kappa-IP) and the inflection-point detector."""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from typing import Any

from refreg.cpr.measures import measure_value
from refreg.cpr.scalars import _round

KAPPA_INITS = ("uniform", "dependent", "warm_start", "inflection_point")

KAPPA_UNSET = 1e6
"""The release's ``HIGHKAPPA``: the bound an ``inflection_point`` tensor holds until its inflection point is found.

It is a real bound (a tensor with R > 1e6 is constrained to 1e6 before detection, as in the release), and
``kappa == KAPPA_UNSET`` is how the detector recognizes a tensor whose bound is not set yet.
"""

_GROWTH_FLOOR = 0.01  # the release's minimum relative growth per reg_step_size steps for Kappa-IP


def _check_kappa_init_param(kappa_init: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise TypeError(f"kappa_init_param must be a finite real number, got {value!r}")
    if kappa_init == "warm_start":
        if float(value) != int(value) or value < 1:
            raise ValueError(
                f"kappa_init_param for kappa_init='warm_start' is the step s after which κ = R(θ_s) is set; "
                f"it must be an integer >= 1, got {value!r}"
            )
        return int(value)
    if kappa_init == "uniform" and value < 0:
        raise ValueError(
            f"kappa_init_param for kappa_init='uniform' is the bound κ; it must be >= 0, got {value!r}"
        )
    if kappa_init == "dependent" and value <= 0:
        raise ValueError(
            f"kappa_init_param for kappa_init='dependent' is the factor k in κ = k·R(θ₀); it must be > 0, "
            f"got {value!r}"
        )
    return float(value)


def detect_inflection_point(
    xp: Any,
    params: Mapping[str, Any],
    step: Mapping[str, int],
    kappa: dict[str, float],
    norm_ema: dict[str, float],
    prev_norm_ema: dict[str, float],
    prev_growth: dict[str, float],
    *,
    reg_step_size: int,
    reg_ema_decay: float,
    measure: str,
    scalar_dtype: str,
) -> None:
    """Kappa-IP as the release's multi-tensor path does it (its single-tensor path never fires).

    Every step, ``e ← ‖θ‖`` while t < S, else ``e ← d·e + (1 − d)·‖θ‖`` (EMA of the *un-squared* norm).
    At t > S with t % S = 0: ``g = (e − e_prev)/e`` (relative growth over S steps), ``e_prev ← e``; if
    t > 3S and ``g_prev > g > 0.01`` and κ is unset, κ ← R(θ); if t > 2S, ``g_prev ← g``. The first
    possible bound is at t = 4S. The step of the first regularized tensor is used, as in the release.
    The paper (Kappa-IP) describes the idea: κ = R(θ_i) at the first i with ΔΔR(θ) < 0.
    Updates the dicts in place (they are this call's fresh copies).
    """
    sd = scalar_dtype
    S, d = reg_step_size, reg_ema_decay
    t = step[next(iter(kappa))]
    for k in kappa:
        r = float(xp.linalg.vector_norm(params[k]))
        if t >= S:
            if sd == "float32":
                # torch: ema *= fl32(d); ema += fl32(1-d)·fl32(r) with one rounding
                e = _round(norm_ema[k] * _round(d, sd), sd)
                norm_ema[k] = _round(e + _round(1.0 - d, sd) * _round(r, sd), sd)
            else:
                norm_ema[k] = d * norm_ema[k] + (1.0 - d) * r
        else:
            norm_ema[k] = _round(r, sd)
    if not (t > S and t % S == 0):
        return
    floor = _round(_GROWTH_FLOOR, sd)
    for k in kappa:
        e = norm_ema[k]
        growth = _round(_round(e - prev_norm_ema[k], sd) / e, sd) if e != 0.0 else math.nan
        prev_norm_ema[k] = e
        if t > 3 * S and prev_growth[k] > growth > floor and kappa[k] == KAPPA_UNSET:
            kappa[k] = _round(float(measure_value(params[k], measure)), sd)
        if t > 2 * S:
            prev_growth[k] = growth
