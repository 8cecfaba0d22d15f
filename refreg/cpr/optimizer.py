"""The CPR optimizer: any base optimizer's step, then the multiplier update and constraint step (Algorithm 1)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from refreg._backend import namespace_of_params
from refreg._validation import check_choice, check_in_range, check_positive
from refreg.cpr.kappa import (
    KAPPA_INITS,
    KAPPA_UNSET,
    _check_kappa_init_param,
    detect_inflection_point,
)
from refreg.cpr.measures import MEASURES, measure_grad, measure_value
from refreg.cpr.scalars import SCALAR_DTYPES, _dtype_name, _round
from refreg.cpr.selection import check_state, select_regularized
from refreg.optim.schedules import current_lr


class CPRState(NamedTuple):
    """State of :class:`CPR`: plain data that ``refreg.io`` round-trips exactly.

    ``base``: the wrapped optimizer's state; ``step[name]``: each tensor's own update count (the release keeps
    one per tensor); for each regularized tensor: ``lam[name]`` the multiplier λ, ``kappa[name]`` the bound κ,
    and the inflection-point detector's ``norm_ema[name]`` (EMA of ‖θ‖), ``prev_norm_ema[name]`` (its value at
    the previous sample) and ``prev_growth[name]`` (the previous relative growth). Scalars are Python floats
    holding values of the scalar dtype.
    """

    base: Any
    step: dict[str, int]
    lam: dict[str, float]
    kappa: dict[str, float]
    norm_ema: dict[str, float]
    prev_norm_ema: dict[str, float]
    prev_growth: dict[str, float]


@dataclass(frozen=True)
class CPR:
    """Constrained parameter regularization around any refreg optimizer (paper Algorithm 1); see :func:`cpr`."""

    base: Any
    mu: float = 1.0
    kappa_init: str = "inflection_point"
    kappa_init_param: float = 1000
    measure: str = "l2"
    reg_step_size: int = 200
    reg_ema_decay: float = 0.99
    reg_by_lr: bool = False
    regularize: Callable[[str, Any], bool] | frozenset[str] | None = None
    scalar_dtype: str = "float64"
    kappa_adapt: bool = False

    def __post_init__(self):
        if not (
            callable(getattr(self.base, "init", None))
            and callable(getattr(self.base, "update", None))
        ):
            raise TypeError(
                f"base must be a refreg optimizer with init/update methods, got {type(self.base).__name__}"
            )
        check_positive("mu", self.mu)
        check_choice("kappa_init", self.kappa_init, KAPPA_INITS)
        check_choice("measure", self.measure, MEASURES)
        check_choice("scalar_dtype", self.scalar_dtype, SCALAR_DTYPES)
        object.__setattr__(
            self,
            "kappa_init_param",
            _check_kappa_init_param(self.kappa_init, self.kappa_init_param),
        )
        if (
            isinstance(self.reg_step_size, bool)
            or not isinstance(self.reg_step_size, int)
            or self.reg_step_size < 1
        ):
            raise ValueError(f"reg_step_size must be an int >= 1, got {self.reg_step_size!r}")
        check_in_range("reg_ema_decay", self.reg_ema_decay, 0.0, 1.0, closed="left")
        for flag in ("reg_by_lr", "kappa_adapt"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool, got {getattr(self, flag)!r}")
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

    # ---- selection and initialization (the paper's κ-initialization strategies, Algorithm 2) ----------------

    def regularized_names(self, params: Mapping[str, Any]) -> list[str]:
        """Names of the tensors CPR constrains, in ``params`` order; see :func:`select_regularized`."""
        return select_regularized(params, self.regularize, self.measure)

    def init(self, params: Mapping[str, Any]) -> CPRState:
        """State at θ₀: λ = 0 and κ = Initialize(θ₀) per regularized tensor (paper Algorithm 1, line 1).

        ``uniform`` (Kappa-K): κ = kappa_init_param; ``dependent`` (Kappa-kI₀): κ = k·R(θ₀);
        ``warm_start`` (Kappa-WS, Algorithm 2): κ = 0 until set to R(θ_s) after step s;
        ``inflection_point`` (Kappa-IP): κ = :data:`KAPPA_UNSET` until the detector sets it.
        """
        namespace_of_params(params)  # a non-empty dict of real floating arrays of one library
        names = self.regularized_names(params)
        sd = self.scalar_dtype
        kappa: dict[str, float] = {}
        for k in names:
            if self.kappa_init == "uniform":
                kappa[k] = _round(self.kappa_init_param, sd)
            elif self.kappa_init == "dependent":
                # release: fl32(fl32(k) · fl32(R(θ₀)))
                r0 = _round(float(measure_value(params[k], self.measure)), sd)
                kappa[k] = _round(_round(self.kappa_init_param, sd) * r0, sd)
            elif self.kappa_init == "warm_start":
                kappa[k] = 0.0
            else:
                kappa[k] = KAPPA_UNSET
        zeros = dict.fromkeys(names, 0.0)
        return CPRState(
            base=self.base.init(params),
            step=dict.fromkeys(params, 0),
            lam=dict(zeros),
            kappa=kappa,
            norm_ema=dict(zeros),
            prev_norm_ema=dict(zeros),
            prev_growth=dict(zeros),
        )

    # ---- one update ---------------------------------------------------------------------------------------

    def update(
        self, grads: Mapping[str, Any], state: CPRState, params: Mapping[str, Any]
    ) -> tuple[dict[str, Any], CPRState]:
        """Base step, then the CPR constraint step on every regularized tensor (paper Algorithm 1, lines 3–6).

        .. math::
            θ ← θ + Opt(∇L);\\quad λ ← max(0, λ + (μ/n)(R(θ) − κ));\\quad θ ← θ − λ ∇R(θ)

        then the κ-initialization bookkeeping: Kappa-WS sets κ = R(θ) at step s; Kappa-IP runs its detector;
        AdaCPR (``kappa_adapt``, Appendix D) sets κ ← min(κ, R(θ)) when λ returns to 0.

        Returns ``(new_params, new_state)``; the arguments are not modified. With l2 and 2λ >= 1 (2·lr·λ with
        ``reg_by_lr``) the step flips the sign of the tensor, as in the release; one ``RuntimeWarning`` names the
        tensors and the step.

        Raises
        ------
        TypeError, ValueError, FloatingPointError
            From the base optimizer's checks (keys, shapes, dtypes, non-finite gradients), or a state that does
            not belong to ``params``; nothing is computed then.
        """
        xp = namespace_of_params(params)
        check_state(state, params, CPRState)
        lr = current_lr(self.base.lr, getattr(state.base, "step", 0)) if self.reg_by_lr else 1.0
        new_params, base_state = self.base.update(grads, state.base, params)
        new_params = dict(new_params)
        sd = self.scalar_dtype
        step = {k: t + 1 for k, t in state.step.items()}
        lam, kappa = dict(state.lam), dict(state.kappa)
        warm_start = self.kappa_init_param if self.kappa_init == "warm_start" else 0
        overshoot = []
        for k in lam:
            t = step[k]
            if t <= warm_start:
                continue
            theta = new_params[k]
            pd = _dtype_name(theta, xp)
            value = float(self._value(theta, xp))
            lam_old = lam[k]
            lam[k] = self._dual_step(lam_old, value, kappa[k], self._rate(theta), pd)
            if lam[k] > 0.0:
                if self.measure == "l2" and 2.0 * lr * lam[k] >= 1.0:
                    overshoot.append((k, 2.0 * lr * lam[k]))
                new_params[k] = self._constraint_step(theta, lam[k], lr)
            elif self.kappa_adapt and lam_old > 0.0:
                # AdaCPR (Appendix D): the constraint became inactive; tighten κ to the current R (θ unchanged)
                kappa[k] = min(kappa[k], _round(value, sd))
        if overshoot:
            t = step[next(iter(lam))]
            listed = ", ".join(f"{k!r} (2·lam={c:.3g})" for k, c in overshoot)
            warnings.warn(
                f"CPR l2 constraint step overshoots at step {t}: 2·lam >= 1 for {listed}; "
                "theta <- theta − 2·lam·theta flips the sign of the tensor (the release has no guard; "
                "lower mu or start with a bound closer to R(theta))",
                RuntimeWarning,
                stacklevel=2,
            )
        norm_ema, prev_norm_ema, prev_growth = (
            dict(state.norm_ema),
            dict(state.prev_norm_ema),
            dict(state.prev_growth),
        )
        if self.kappa_init == "inflection_point" and any(kappa[k] == KAPPA_UNSET for k in kappa):
            detect_inflection_point(
                xp,
                new_params,
                step,
                kappa,
                norm_ema,
                prev_norm_ema,
                prev_growth,
                reg_step_size=self.reg_step_size,
                reg_ema_decay=self.reg_ema_decay,
                measure=self.measure,
                scalar_dtype=sd,
            )
        elif self.kappa_init == "warm_start":
            for k in kappa:
                if step[k] == warm_start:
                    kappa[k] = _round(float(measure_value(new_params[k], self.measure)), sd)
        new_state = CPRState(base_state, step, lam, kappa, norm_ema, prev_norm_ema, prev_growth)
        return new_params, new_state

    def _value(self, theta: Any, xp: Any) -> Any:
        """R(θ); for float64 l2 as one BLAS dot product of the flattened tensor (no temporary array).

        float32 keeps the pairwise sum of θ·θ: a float32 BLAS dot accumulates in float32 (relative error 3e-5 at
        1e7 elements, against 4e-8 for the pairwise sum).
        """
        if self.measure == "l2" and theta.dtype == xp.float64:
            flat = xp.reshape(theta, (-1,))
            return xp.vecdot(flat, flat)
        return measure_value(theta, self.measure)

    def _rate(self, theta: Any) -> float:
        """The dual step size: μ/n for l2, l1, huber and μ for std (release 0.3.1's ``kappa_update``)."""
        n = math.prod(theta.shape)
        return _round(self.mu if self.measure == "std" else self.mu / n, self.scalar_dtype)

    def _dual_step(
        self, lam: float, value: float, kappa: float, rate: float, param_dtype: str
    ) -> float:
        """``max(0, lam + rate·(R − kappa))`` (Appendix A), with the release's roundings for float32 scalars.

        float32 scalars (release): ``R − κ`` and ``·rate`` in the parameters' dtype, the increment rounded to
        float32, added to the float32 λ in float32, then clipped at 0.
        """
        if self.scalar_dtype == "float32":
            increment = _round(_round(value - kappa, param_dtype) * rate, param_dtype)
            return max(0.0, _round(lam + _round(increment, "float32"), "float32"))
        return max(0.0, lam + rate * (value - kappa))

    def _constraint_step(self, theta: Any, lam: float, lr: float) -> Any:
        """``theta − lam·∇R(theta)`` (times lr with ``reg_by_lr``); the release's operation order except for
        l2 without ``reg_by_lr``, computed in one pass as ``theta·(1 − 2·lam)``."""
        if self.measure == "l2":
            if self.reg_by_lr:
                return theta + ((-2.0 * lr) * theta) * lam
            # one pass; the release's theta + (−2·theta)·lam differs from it by at most one rounding
            return theta * (1.0 - 2.0 * lam)
        return theta + ((-lr) * measure_grad(theta, self.measure)) * lam


def cpr(
    base: Any,
    *,
    mu: float = 1.0,
    kappa_init: str = "inflection_point",
    kappa_init_param: float = 1000,
    measure: str = "l2",
    reg_step_size: int = 200,
    reg_ema_decay: float = 0.99,
    reg_by_lr: bool = False,
    regularize: Callable[[str, Any], bool] | Collection[str] | None = None,
    scalar_dtype: str = "float64",
    kappa_adapt: bool = False,
) -> CPR:
    """Wrap ``base`` (``sgd``, ``adam``, ...) with CPR's constraint ``R(θ_j) <= κ_j`` per regularized tensor.

    Implements paper Algorithm 1 (κ initializations Kappa-K, Kappa-kI₀, Kappa-WS (Algorithm 2), Kappa-IP;
    λ update: Appendix A; AdaCPR: Appendix D) in the form of the released pytorch-cpr 0.3.1 (module docstring).

    Parameters
    ----------
    base : optimizer
        Any refreg optimizer with ``init(params)`` / ``update(grads, state, params)``; it should not decay weights.
    mu : float > 0
        Dual step size μ (the release's ``kappa_update``); the per-tensor rate is μ/n, or μ for ``std``.
    kappa_init : {"inflection_point", "uniform", "dependent", "warm_start"}
        How κ is set: Kappa-IP (detector, see ``reg_step_size``), Kappa-K (κ = kappa_init_param for every tensor),
        Kappa-kI₀ (κ = kappa_init_param·R(θ₀)), Kappa-WS (κ = R(θ_s) with s = kappa_init_param; the constraint
        applies from step s + 1).
    kappa_init_param : float
        The bound (uniform, >= 0), the factor k (dependent, > 0), the step s (warm_start, integer >= 1); ignored
        by inflection_point (as in the release).
    measure : {"l2", "std", "l1", "huber"}
        R: sum of squares, unbiased standard deviation, sum of absolute values, sum of Huber (δ = 1) losses.
    reg_step_size : int >= 1
        Kappa-IP samples its detector every S = reg_step_size steps; the earliest bound is at step 4S.
    reg_ema_decay : float in [0, 1)
        Decay of the detector's EMA of ‖θ‖.
    reg_by_lr : bool
        Scale the constraint step by the base optimizer's current learning rate (release option).
    regularize : None, callable ``(name, array) -> bool``, or a set of names
        Which tensors are constrained; default :func:`default_regularize` (weights, ``ndim >= 2``, not biases).
    scalar_dtype : {"float64", "float32"}
        dtype of the scalars λ, κ, μ/n and the detector. "float32" reproduces the release's float32 scalar
        arithmetic bit for bit; "float64" (default) is the textbook algorithm, without float32 rounding (for
        float64 parameters, all arithmetic in the parameters' dtype).
    kappa_adapt : bool
        AdaCPR (Appendix D): when λ drops back to 0, κ ← min(κ, R(θ)). Not in release 0.3.1 (it was in v0.2's
        wrapper; the paper found it not beneficial).

    Returns
    -------
    CPR
        A frozen optimizer: ``init(params) -> CPRState``, ``update(grads, state, params) -> (params, state)``.

    Notes
    -----
    Kappa-IP: the release's single-tensor path (PyTorch's default on CPU) compares κ with 1000 while κ starts at
    1e6, so its detector never fires there and Kappa-IP degenerates into a uniform bound κ = 1e6. This module
    implements the multi-tensor (``foreach=True``) detector, which does set κ.

    The l2 constraint step multiplies θ by (1 − 2λ); 2λ >= 1 flips the sign of θ. The release has no guard; this
    module keeps its update and warns (``RuntimeWarning``).

    Fixed point (l2, SGD base with step η): because R and ∇R are evaluated after the base step, a limit θ with
    λ > 0 satisfies R(θ') = κ for θ' = θ − η∇L(θ) and ∇L(θ) + 2νθ = 0 with ν = λ/(η(1 − 2λ)); θ is the exact
    KKT point of the bound (1 − 2λ)²κ and approaches that of κ at rate O(η). μ sets the speed of the dual
    iteration, not the fixed point (``tests/test_cpr_kkt.py`` checks both against SLSQP).

    Examples
    --------
    >>> from refreg.optim import adam
    >>> opt = cpr(adam(1e-3), kappa_init="dependent", kappa_init_param=0.8)
    """
    return CPR(
        base=base,
        mu=mu,
        kappa_init=kappa_init,
        kappa_init_param=kappa_init_param,
        measure=measure,
        reg_step_size=reg_step_size,
        reg_ema_decay=reg_ema_decay,
        reg_by_lr=reg_by_lr,
        regularize=regularize,
        scalar_dtype=scalar_dtype,
        kappa_adapt=kappa_adapt,
    )


def adam_cpr(
    lr: Any = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    **cpr_options: Any,
) -> CPR:
    """AdamCPR (paper Algorithm 1 with Adam): ``cpr(adam(lr, betas, eps), **cpr_options)``.

    The release's ``AdamCPR`` defaults to lr = 1e-4 (its docstring says 1e-3); pass ``lr`` explicitly when
    comparing. Adam here has no weight decay: the constraint replaces it.

    Parameters
    ----------
    lr : float or schedule ``t -> lr``
    betas : (float, float)
    eps : float
    **cpr_options
        Keyword arguments of :func:`cpr` (mu, kappa_init, kappa_init_param, measure, ...).
    """
    from refreg.optim import adam

    return cpr(adam(lr, betas, eps), **cpr_options)
