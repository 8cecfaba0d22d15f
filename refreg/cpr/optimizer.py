"""The CPR optimizer: a base optimizer's step, then each tensor's multiplier update and constraint step.

Paper Algorithm 1 as the released pytorch-cpr 0.3.1 orders it (the porter's entry point is
:meth:`CPR.update`, one line of code per line of the algorithm box). The pieces it composes are in their own
modules: the measures R (:mod:`~refreg.cpr.measures`), the κ strategies (:mod:`~refreg.cpr.kappa`) and the
inflection-point detector (:mod:`~refreg.cpr.detector`), the scalar rounding policy (:mod:`~refreg.cpr.scalars`)
and the fast constraint step (:mod:`~refreg.cpr.constraint`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from refreg._backend import namespace_of_params
from refreg._validation import check_bool, check_choice, check_positive
from refreg.cpr._fused import (
    base_update_donated,
    constraint_step_into,
    in_place_constraint,
    writable_numpy,
)
from refreg.cpr.constraint import constraint_step, fast_measure_value
from refreg.cpr.kappa import Bounds, InflectionPoint, KappaInit
from refreg.cpr.measures import MEASURES
from refreg.cpr.scalars import Float64Scalars, ScalarPolicy, dtype_name, scalar_policy
from refreg.cpr.selection import check_state, select_regularized
from refreg.io import register_state
from refreg.optim.schedules import current_lr

__all__ = ["CPR", "CPRState"]


@register_state("CPRState")
class CPRState(NamedTuple):
    """State of :class:`CPR`: plain data that ``refreg.io`` round-trips exactly.

    ``base``: the wrapped optimizer's state; ``step[name]``: each tensor's own update count (the release keeps
    one per tensor); for each regularized tensor: ``lam[name]`` the multiplier λ, ``kappa[name]`` the bound κ in
    force, ``kappa_set[name]`` whether κ has been set (False for a warm start before step s and for an
    inflection point before detection, see :mod:`refreg.cpr.kappa`), and the inflection-point detector's
    ``norm_ema[name]`` (average of ‖θ‖), ``prev_norm_ema[name]`` (its value at the previous sample) and
    ``prev_growth[name]`` (the previous relative growth). Scalars are Python floats holding values of the
    scalar policy's dtype.
    """

    base: Any
    step: dict[str, int]
    lam: dict[str, float]
    kappa: dict[str, float]
    kappa_set: dict[str, bool]
    norm_ema: dict[str, float]
    prev_norm_ema: dict[str, float]
    prev_growth: dict[str, float]


@dataclass(frozen=True)
class CPR:
    """Constrained parameter regularization around any refreg optimizer (paper Algorithm 1); see :func:`cpr`.

    Attributes: ``base`` (the wrapped optimizer), ``mu`` (μ), ``kappa_init`` (a κ strategy from
    :mod:`refreg.cpr.kappa`), ``measure``, ``reg_by_lr``, ``regularize``, ``scalars`` (a scalar policy from
    :mod:`refreg.cpr.scalars`) and ``kappa_adapt``.
    """

    base: Any
    mu: float = 1.0
    kappa_init: KappaInit = field(default_factory=InflectionPoint)
    measure: str = "l2"
    reg_by_lr: bool = False
    regularize: Callable[[str, Any], bool] | frozenset[str] | None = None
    scalars: ScalarPolicy = field(default_factory=Float64Scalars)
    kappa_adapt: bool = False

    def __post_init__(self):
        if not (
            callable(getattr(self.base, "init", None))
            and callable(getattr(self.base, "update", None))
        ):
            raise TypeError(
                f"base must be a refreg optimizer with init/update methods, got {type(self.base).__name__}"
            )
        object.__setattr__(self, "mu", check_positive("mu", self.mu))
        if not isinstance(self.kappa_init, KappaInit):
            raise TypeError(
                f"kappa_init must be a κ strategy (Uniform, Dependent, WarmStart, InflectionPoint), "
                f"got {self.kappa_init!r}"
            )
        check_choice("measure", self.measure, MEASURES)
        object.__setattr__(self, "scalars", scalar_policy(self.scalars))
        for flag in ("reg_by_lr", "kappa_adapt"):
            object.__setattr__(self, flag, check_bool(flag, getattr(self, flag)))
        if self.reg_by_lr and not hasattr(self.base, "lr"):
            raise TypeError(
                f"reg_by_lr=True needs a base optimizer with an lr attribute, got {type(self.base).__name__}"
            )
        reg = self.regularize
        if reg is not None and not callable(reg):
            if isinstance(reg, str) or not isinstance(reg, Collection):
                raise TypeError(
                    f"regularize must be None, a predicate (name, array) -> bool or a set of names, got {reg!r}"
                )
            if not all(isinstance(k, str) for k in reg):
                raise TypeError(
                    f"regularize must hold parameter names (str), got {sorted(map(repr, reg))}"
                )
            object.__setattr__(self, "regularize", frozenset(reg))

    def regularized_names(self, params: Mapping[str, Any]) -> list[str]:
        """Names of the tensors CPR constrains, in ``params`` order; see :func:`select_regularized`."""
        return select_regularized(params, self.regularize, self.measure)

    def init(self, params: Mapping[str, Any]) -> CPRState:
        """State at θ₀: ``λ_j = 0`` and ``κ_j = Initialize(θ_j,0)`` per regularized tensor (Algorithm 1)."""
        namespace_of_params(params)  # a non-empty dict of real floating arrays of one library
        names = self.regularized_names(params)
        kappa, kappa_set = {}, {}
        for k in names:
            kappa[k], kappa_set[k] = self.kappa_init.initial(params[k], self.measure, self.scalars)
        zeros = dict.fromkeys(names, 0.0)
        return CPRState(
            base=self.base.init(params),
            step=dict.fromkeys(params, 0),
            lam=dict(zeros),
            kappa=kappa,
            kappa_set=kappa_set,
            norm_ema=dict(zeros),
            prev_norm_ema=dict(zeros),
            prev_growth=dict(zeros),
        )

    def update(
        self,
        grads: Mapping[str, Any],
        state: CPRState,
        params: Mapping[str, Any],
        *,
        donate: bool = False,
    ) -> tuple[dict[str, Any], CPRState]:
        """One CPR step: paper Algorithm 1, with R and ∇R at the post-step θ as in the release.

        .. math::
            θ ← θ + Opt(∇L);\\quad λ_j ← max(0, λ_j + (μ/n_j)(R(θ_j) − κ_j));\\quad θ_j ← θ_j − λ_j ∇R(θ_j)

        then κ is set by the strategy (Kappa-WS at step s, Kappa-IP at an inflection point), and AdaCPR
        (``kappa_adapt``, Appendix D) sets κ ← min(κ, R(θ)) when λ returns to 0. The multiplier update is the
        projected dual ascent of the augmented Lagrangian (docs/derivations.md, "CPR's multiplier update").

        Returns ``(new_params, new_state)``; the arguments are not modified, unless ``donate=True``: then the
        base optimizer's donated update writes into ``params`` and its state buffers and the constraint step
        follows in place, bit for bit the same numbers (:mod:`refreg.cpr._fused`). With l2 and 2λ >= 1 (2·lr·λ with
        ``reg_by_lr``) the step zeroes (= 1) or flips the sign of (> 1) the tensor, as in the release; one ``RuntimeWarning`` names the
        tensors and the step.

        Raises
        ------
        TypeError, ValueError, FloatingPointError
            From the base optimizer's checks (keys, shapes, dtypes, non-finite gradients), or a state that does
            not belong to ``params``; nothing is computed then.
        FloatingPointError
            R(θ_j) after the base step is NaN or inf (parameters holding NaN/inf, or a float32 R that
            overflows): ``max(0, λ + rate·NaN)`` would silently reset λ to 0 (the release gives NaN). The
            arguments are unchanged, except the donated arrays with ``donate=True``, which hold the base step.
        """
        xp = namespace_of_params(params)
        check_state(state, params, CPRState, self.regularized_names(params))
        lr = current_lr(self.base.lr, getattr(state.base, "step", 0)) if self.reg_by_lr else 1.0
        kappa_rule, scalars = self.kappa_init, self.scalars
        # θ_{t+1} ← θ_t + Opt(∇L(θ_t)): the base optimizer's step (no weight decay)
        if donate:  # speed path: in place, and R(θ) from Adam's fused pass (refreg.cpr._fused)
            new_params, base_state, sums = base_update_donated(self, grads, state, params)
        else:
            new_params, base_state = self.base.update(grads, state.base, params)
            sums = {}
        in_place = in_place_constraint(self, donate)
        new_params = dict(new_params)
        step = {k: t + 1 for k, t in state.step.items()}
        lam, kappa, kappa_set = dict(state.lam), dict(state.kappa), dict(state.kappa_set)
        overshoot = []
        # Kappa-IP runs on the release's multi-tensor path, whose std and l1 increments of λ are [1]-shaped
        # tensors: added in the parameters' dtype, then rounded (refreg.cpr.scalars)
        increment_rounded = not (
            isinstance(kappa_rule, InflectionPoint) and self.measure in ("std", "l1")
        )
        # R(θ_j) of every constrained tensor first (from the donated Adam pass when it computed it), so that a
        # non-finite one raises before any constraint step is written in place
        values = {}
        for k in lam:
            if kappa_rule.constrains(step[k]):  # Kappa-WS: unconstrained up to step s (Algorithm 2)
                theta = new_params[k]
                values[k] = float(
                    sums[k] if k in sums else fast_measure_value(theta, self.measure, xp)
                )
                if not math.isfinite(values[k]):  # max(0, λ + rate·NaN) would be 0, a number
                    _raise_not_finite(k, values[k], self.measure, theta, xp, donate)
        for k, value in values.items():  # for each constrained tensor θ_j
            theta = new_params[k]
            lam_old = lam[k]
            # λ_j ← max(0, λ_j + (μ/n_j)·(R(θ_j) − κ_j))   (Appendix A; docs/derivations.md)
            lam[k] = scalars.dual_ascent(
                lam_old,
                value,
                kappa[k],
                self._rate(theta),
                dtype_name(theta, xp),
                increment_rounded,
            )
            if lam[k] > 0.0:
                if self.measure == "l2" and 2.0 * lr * lam[k] >= 1.0:
                    overshoot.append((k, 2.0 * lr * lam[k]))
                # θ_j ← θ_j − λ_j·∇R(θ_j)
                if in_place and writable_numpy(theta):
                    new_params[k] = constraint_step_into(theta, lam[k])
                else:
                    new_params[k] = constraint_step(theta, lam[k], self.measure, lr, self.reg_by_lr)
            elif self.kappa_adapt and lam_old > 0.0:
                # AdaCPR (Appendix D): the constraint became inactive; κ_j ← min(κ_j, R(θ_j)), θ unchanged
                kappa[k], kappa_set[k] = min(kappa[k], scalars.round(value)), True
        if overshoot:
            _warn_overshoot(step[next(iter(lam))], overshoot)
        # κ_j set later by the strategy: Kappa-WS at step s, Kappa-IP at the detector's inflection point
        bounds = Bounds(kappa, kappa_set, state.norm_ema, state.prev_norm_ema, state.prev_growth)
        bounds = kappa_rule.after_step(xp, new_params, step, bounds, self.measure, scalars)
        return new_params, CPRState(base_state, step, lam, *bounds)

    def _rate(self, theta: Any) -> float:
        """The dual step size μ/n_j (l2, l1, huber) or μ (std): release 0.3.1's ``kappa_update``."""
        n = math.prod(theta.shape)
        return self.scalars.round(self.mu if self.measure == "std" else self.mu / n)


def _raise_not_finite(
    name: str, value: float, measure: str, theta: Any, xp: Any, donate: bool
) -> None:
    cause = (
        "the parameters hold NaN or infinite values"
        if not bool(xp.all(xp.isfinite(theta)))
        else "it overflows the parameters' dtype"
    )
    where = (
        "the donated arrays hold the base step's result"
        if donate
        else "the arguments are unchanged"
    )
    raise FloatingPointError(
        f"CPR: R(params[{name!r}]) ({measure}, {theta.dtype}) after the base optimizer's step is {value}: "
        f"{cause}; λ would be meaningless ({where})"
    )


def _warn_overshoot(t: int, overshoot: list[tuple[str, float]]) -> None:
    listed = ", ".join(f"{k!r} (2·lam={c:.3g})" for k, c in overshoot)
    warnings.warn(
        f"CPR l2 constraint step overshoots at step {t}: 2·lam >= 1 for {listed}; "
        "theta <- theta − 2·lam·theta zeroes the tensor (2·lam = 1) or flips its sign (the release has no guard; "
        "lower mu or start with a bound closer to R(theta))",
        RuntimeWarning,
        stacklevel=3,
    )
