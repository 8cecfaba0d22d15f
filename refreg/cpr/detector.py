"""CPR's inflection-point detector (Kappa-IP) as the released pytorch-cpr 0.3.1 runs it, one tensor at a time.

The paper (Sec. 4, Kappa-IP) sets κ = R(θ_i) at the first step i where the growth of R(θ) slows down
(ΔΔR < 0). The release implements it on its multi-tensor (``foreach``) path with an exponential moving average
``e`` of the *un-squared* norm ‖θ‖, sampled every S steps, a relative-growth test and a 1 % floor; this module
is that detector, written as a pure function of one tensor's detector state so that a port can reproduce it.
(The release's single-tensor path compares κ with 1000 while κ starts at 1e6, so it never fires; refreg does
not reproduce that path.)
"""

from __future__ import annotations

from typing import NamedTuple

from refreg.cpr.scalars import ScalarPolicy

__all__ = ["GROWTH_FLOOR", "DetectorState", "inflection_point_step"]

GROWTH_FLOOR = 0.01
"""The release's minimum relative growth of the averaged norm per S steps for an inflection point."""


class DetectorState(NamedTuple):
    """One tensor's detector state: the average ``e`` of ‖θ‖, its value ``e_prev`` at the previous sample and
    the previous relative growth ``g_prev`` (all 0 at the start)."""

    norm_ema: float
    prev_norm_ema: float
    prev_growth: float


def inflection_point_step(
    t: int,
    norm: float,
    state: DetectorState,
    *,
    interval: int,
    ema_decay: float,
    scalars: ScalarPolicy,
) -> tuple[DetectorState, bool]:
    """One step of the detector for one tensor; returns the new state and whether this step is an inflection point.

    With ``S = interval``, ``d = ema_decay`` and ``r = ‖θ_t‖`` (after the step):

    1. ``e ← r`` while ``t < S``, else ``e ← d·e + (1 − d)·r``;
    2. only at ``t > S`` with ``t mod S = 0`` (a *sample*): ``g = (e − e_prev)/e``, then ``e_prev ← e``;
       the step is an inflection point if ``t > 3S`` and ``g_prev > g > 0.01``; ``g_prev ← g`` if ``t > 2S``.

    The earliest inflection point is therefore at ``t = 4S``; a tensor whose averaged norm grows by less than
    1 % per S steps is never bounded. The caller sets ``κ = R(θ_t)`` at the first inflection point (see
    :class:`refreg.cpr.InflectionPoint`). Every scalar is rounded by ``scalars`` (the release's float32 or
    float64); ``t`` is the step of the first regularized tensor, as in the release.
    """
    if t >= interval:
        ema = scalars.ema(state.norm_ema, ema_decay, norm)
    else:
        ema = scalars.round(norm)
    if not (t > interval and t % interval == 0):
        return state._replace(norm_ema=ema), False
    growth = scalars.relative_growth(ema, state.prev_norm_ema)
    found = t > 3 * interval and state.prev_growth > growth > scalars.round(GROWTH_FLOOR)
    prev_growth = growth if t > 2 * interval else state.prev_growth
    return DetectorState(ema, ema, prev_growth), found
