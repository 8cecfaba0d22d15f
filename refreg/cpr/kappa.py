"""CPR's κ initializations as small strategy objects: Uniform, Dependent, WarmStart, InflectionPoint.

The paper (Sec. 4 and Algorithm 2) sets each tensor's bound κ in one of four ways; each is an object with its
own parameter:

==========================================  ===========  =====================================================
strategy                                    paper        bound κ_j
==========================================  ===========  =====================================================
``Uniform(kappa)``                          Kappa-K      ``kappa`` for every tensor, from the start
``Dependent(factor)``                       Kappa-kI₀    ``factor · R(θ_j,0)``, from the start
``WarmStart(steps)``                        Kappa-WS     ``R(θ_j,s)`` after ``s = steps`` steps (Algorithm 2);
                                                         no constraint before
``InflectionPoint(interval, ema_decay)``    Kappa-IP     ``R(θ_j,i)`` at the detector's first inflection point
                                                         i (:mod:`refreg.cpr.detector`)
==========================================  ===========  =====================================================

"Not yet set" is explicit: the state holds ``kappa_set[name]``. Until then a warm-start tensor is not
constrained, and an inflection-point tensor is held to the release's placeholder bound 1e6 (its ``HIGHKAPPA``,
a real bound: a tensor with R > 1e6 is pulled down to it, as in the release). The release's string API,
``kappa_init`` with one overloaded ``kappa_init_param``, maps onto these objects in :func:`kappa_strategy`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any, ClassVar, NamedTuple

from refreg._validation import check_choice, check_in_range
from refreg.cpr.detector import DetectorState, inflection_point_step
from refreg.cpr.measures import measure_value
from refreg.cpr.scalars import ScalarPolicy

__all__ = [
    "KAPPA_INITS",
    "KAPPA_UNSET",
    "Bounds",
    "Dependent",
    "InflectionPoint",
    "KappaInit",
    "Uniform",
    "WarmStart",
    "kappa_strategy",
]

KAPPA_INITS = ("uniform", "dependent", "warm_start", "inflection_point")

KAPPA_UNSET = 1e6
"""The release's ``HIGHKAPPA``: the bound an :class:`InflectionPoint` tensor holds until its κ is set.

The algorithm tests ``state.kappa_set``, not this value; the name stays for callers that compare with it."""


class Bounds(NamedTuple):
    """Each regularized tensor's bound κ, whether it is set, and its detector state (see :class:`CPRState`)."""

    kappa: dict[str, float]
    kappa_set: dict[str, bool]
    norm_ema: dict[str, float]
    prev_norm_ema: dict[str, float]
    prev_growth: dict[str, float]


def _bound_at(theta: Any, measure: str, scalars: ScalarPolicy) -> float:
    """``κ = R(θ)`` in the policy's scalar dtype."""
    return scalars.round(float(measure_value(theta, measure)))


class KappaInit:
    """Base of the κ strategies: the initial bound, when the constraint applies, how κ is set later."""

    name: ClassVar[str] = ""

    def initial(self, theta: Any, measure: str, scalars: ScalarPolicy) -> tuple[float, bool]:
        """``(κ, set)`` at θ₀ (paper Algorithm 1: κ_j ← Initialize(θ_j,0))."""
        raise NotImplementedError

    def constrains(self, t: int) -> bool:
        """Whether the constraint step applies at a tensor's step ``t`` (1-based)."""
        return True

    def after_step(
        self,
        xp: Any,
        params: Mapping[str, Any],
        step: Mapping[str, int],
        bounds: Bounds,
        measure: str,
        scalars: ScalarPolicy,
    ) -> Bounds:
        """The bounds after a step at the post-step ``params`` (unchanged unless the strategy sets κ later)."""
        return bounds


@dataclass(frozen=True)
class Uniform(KappaInit):
    """Kappa-K: ``κ = kappa`` (in the units of R, e.g. a sum of squares) for every tensor."""

    kappa: float
    name: ClassVar[str] = "uniform"

    def __post_init__(self):
        if _finite(self.kappa, "kappa") < 0:
            raise ValueError(f"Uniform(kappa) is the bound κ; it must be >= 0, got {self.kappa!r}")

    def initial(self, theta: Any, measure: str, scalars: ScalarPolicy) -> tuple[float, bool]:
        return scalars.round(self.kappa), True


@dataclass(frozen=True)
class Dependent(KappaInit):
    """Kappa-kI₀: ``κ = factor · R(θ₀)``, each tensor bounded relative to its initial value."""

    factor: float
    name: ClassVar[str] = "dependent"

    def __post_init__(self):
        if _finite(self.factor, "factor") <= 0:
            raise ValueError(
                f"Dependent(factor) is k in κ = k·R(θ₀); it must be > 0, got {self.factor!r}"
            )

    def initial(self, theta: Any, measure: str, scalars: ScalarPolicy) -> tuple[float, bool]:
        return scalars.round(scalars.round(self.factor) * _bound_at(theta, measure, scalars)), True


@dataclass(frozen=True)
class WarmStart(KappaInit):
    """Kappa-WS (paper Algorithm 2): no constraint for ``steps`` steps, then ``κ = R(θ_s)`` with s = steps.

    The constraint applies from step s + 1; the paper recommends s = 2× the learning-rate warm-up.
    """

    steps: int
    name: ClassVar[str] = "warm_start"

    def __post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"WarmStart(steps) must be an integer >= 1, got {self.steps!r}")

    def initial(self, theta: Any, measure: str, scalars: ScalarPolicy) -> tuple[float, bool]:
        return (
            0.0,
            False,
        )  # the release's placeholder; unused, as nothing is constrained before step s

    def constrains(self, t: int) -> bool:
        return t > self.steps

    def after_step(self, xp, params, step, bounds, measure, scalars):
        kappa, kappa_set = dict(bounds.kappa), dict(bounds.kappa_set)
        for k in kappa:
            if step[k] == self.steps:
                kappa[k] = _bound_at(params[k], measure, scalars)
                kappa_set[k] = True
        return bounds._replace(kappa=kappa, kappa_set=kappa_set)


@dataclass(frozen=True)
class InflectionPoint(KappaInit):
    """Kappa-IP: ``κ = R(θ_i)`` at the detector's first inflection point i (:func:`inflection_point_step`).

    ``interval`` is S (the release's ``reg_step_size``, default 200) and ``ema_decay`` is d (its
    ``reg_ema_decay``, default 0.99). Until κ is set the tensor is held to the placeholder bound 1e6.
    """

    interval: int = 200
    ema_decay: float = 0.99
    name: ClassVar[str] = "inflection_point"
    placeholder: ClassVar[float] = KAPPA_UNSET

    def __post_init__(self):
        S = self.interval
        if isinstance(S, bool) or not isinstance(S, int) or S < 1:
            raise ValueError(f"reg_step_size must be an int >= 1, got {S!r}")
        check_in_range("reg_ema_decay", self.ema_decay, 0.0, 1.0, closed="left")

    def initial(self, theta: Any, measure: str, scalars: ScalarPolicy) -> tuple[float, bool]:
        return self.placeholder, False

    def after_step(self, xp, params, step, bounds, measure, scalars):
        if all(bounds.kappa_set.values()):
            return bounds  # every bound is set: the release stops running the detector
        t = step[next(iter(bounds.kappa))]  # the first regularized tensor's step, as in the release
        out = Bounds(*(dict(field) for field in bounds))
        for k in bounds.kappa:
            detector = DetectorState(
                bounds.norm_ema[k], bounds.prev_norm_ema[k], bounds.prev_growth[k]
            )
            norm = float(xp.linalg.vector_norm(params[k]))
            detector, found = inflection_point_step(
                t, norm, detector, interval=self.interval, ema_decay=self.ema_decay, scalars=scalars
            )
            out.norm_ema[k], out.prev_norm_ema[k], out.prev_growth[k] = detector
            if found and not bounds.kappa_set[k]:
                out.kappa[k] = _bound_at(params[k], measure, scalars)
                out.kappa_set[k] = True
        return out


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def kappa_strategy(
    kappa_init: str | KappaInit,
    kappa_init_param: float | None = None,
    reg_step_size: int | None = None,
    reg_ema_decay: float | None = None,
) -> KappaInit:
    """The strategy for the release's string API (``kappa_init`` + the overloaded ``kappa_init_param``).

    ``uniform`` → ``Uniform(kappa_init_param)``; ``dependent`` → ``Dependent(kappa_init_param)``;
    ``warm_start`` → ``WarmStart(kappa_init_param)``; ``inflection_point`` →
    ``InflectionPoint(reg_step_size, reg_ema_decay)`` (``kappa_init_param`` is ignored, as in the release).
    ``None`` means the release's default (kappa_init_param 1000, reg_step_size 200, reg_ema_decay 0.99).
    A strategy object is returned as is; then the other three arguments must be None.

    Raises
    ------
    ValueError, TypeError
        An unknown name, a parameter out of range for its strategy, or a strategy object with parameters.
    """
    if isinstance(kappa_init, KappaInit):
        given = {
            "kappa_init_param": kappa_init_param,
            "reg_step_size": reg_step_size,
            "reg_ema_decay": reg_ema_decay,
        }
        extra = sorted(k for k, v in given.items() if v is not None)
        if extra:
            raise TypeError(
                f"kappa_init={kappa_init!r} carries its own parameters; do not pass {extra}"
            )
        return kappa_init
    check_choice("kappa_init", kappa_init, KAPPA_INITS)
    detector = InflectionPoint(
        200 if reg_step_size is None else reg_step_size,
        0.99 if reg_ema_decay is None else reg_ema_decay,
    )  # validated for every kappa_init, as the release's constructor does
    value = 1000 if kappa_init_param is None else kappa_init_param
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise TypeError(f"kappa_init_param must be a finite real number, got {value!r}")
    if kappa_init == "warm_start":
        if float(value) != int(value) or value < 1:
            raise ValueError(
                f"kappa_init_param for kappa_init='warm_start' is the step s after which κ = R(θ_s) is set; "
                f"it must be an integer >= 1, got {value!r}"
            )
        return WarmStart(int(value))
    if kappa_init == "uniform":
        if value < 0:
            raise ValueError(
                f"kappa_init_param for kappa_init='uniform' is the bound κ; it must be >= 0, got {value!r}"
            )
        return Uniform(float(value))
    if kappa_init == "dependent":
        if value <= 0:
            raise ValueError(
                f"kappa_init_param for kappa_init='dependent' is the factor k in κ = k·R(θ₀); it must be "
                f"> 0, got {value!r}"
            )
        return Dependent(float(value))
    return detector
