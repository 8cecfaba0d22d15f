"""CPR's public constructors: ``cpr(base, ...)`` around any optimizer and ``adam_cpr``, with the release's options.

The release's option names (``kappa_init`` with its overloaded ``kappa_init_param``, ``reg_step_size``,
``reg_ema_decay``, ``scalar_dtype``) are mapped here onto the named layers of :class:`~refreg.cpr.optimizer.CPR`:
a κ strategy (:func:`~refreg.cpr.kappa.kappa_strategy`) and a scalar policy
(:func:`~refreg.cpr.scalars.scalar_policy`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from refreg.cpr.kappa import KappaInit, kappa_strategy
from refreg.cpr.optimizer import CPR
from refreg.cpr.scalars import ScalarPolicy, scalar_policy

__all__ = ["adam_cpr", "cpr"]


def cpr(
    base: Any,
    *,
    mu: float = 1.0,
    kappa_init: str | KappaInit = "inflection_point",
    kappa_init_param: float | None = None,
    measure: str = "l2",
    reg_step_size: int | None = None,
    reg_ema_decay: float | None = None,
    reg_by_lr: bool = False,
    regularize: Callable[[str, Any], bool] | Collection[str] | None = None,
    scalar_dtype: str | ScalarPolicy = "float64",
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
    kappa_init : κ strategy or {"inflection_point", "uniform", "dependent", "warm_start"}
        How κ is set: a strategy object from :mod:`refreg.cpr.kappa` (``Uniform(kappa)``,
        ``Dependent(factor)``, ``WarmStart(steps)``, ``InflectionPoint(interval, ema_decay)``), or the
        release's name: Kappa-IP (detector, see ``reg_step_size``), Kappa-K (κ = kappa_init_param for every
        tensor), Kappa-kI₀ (κ = kappa_init_param·R(θ₀)), Kappa-WS (κ = R(θ_s) with s = kappa_init_param; the
        constraint applies from step s + 1).
    kappa_init_param : float, optional
        With a name only: the bound (uniform, >= 0), the factor k (dependent, > 0), the step s (warm_start,
        integer >= 1); ignored by inflection_point (as in the release). Default: the release's 1000.
    measure : {"l2", "std", "l1", "huber"}
        R: sum of squares, unbiased standard deviation, sum of absolute values, sum of Huber (δ = 1) losses.
    reg_step_size : int >= 1, optional
        With a name only: Kappa-IP samples its detector every S = reg_step_size steps (default 200); the
        earliest bound is at step 4S.
    reg_ema_decay : float in [0, 1), optional
        With a name only: decay of the detector's average of ‖θ‖ (default 0.99).
    reg_by_lr : bool
        Scale the constraint step by the base optimizer's current learning rate (release option).
    regularize : None, callable ``(name, array) -> bool``, or a set of names
        Which tensors are constrained; default :func:`default_regularize` (weights, ``ndim >= 2``, not biases).
    scalar_dtype : {"float64", "float32"} or a scalar policy
        The arithmetic of the scalars λ, κ, μ/n and the detector (:mod:`refreg.cpr.scalars`). "float32"
        (:class:`~refreg.cpr.scalars.Float32ReleaseScalars`) reproduces the release's float32 scalar arithmetic
        bit for bit; "float64" (default, :class:`~refreg.cpr.scalars.Float64Scalars`) is the textbook
        algorithm, without float32 rounding (for float64 parameters, all arithmetic in the parameters' dtype);
        on the golden runs of ``tests/golden/`` its parameters differ from the release by 5.2e-9 to 1.7e-7
        (``float32``: within 6.2e-16; ``tests/test_doc_claims.py``).
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

    The l2 constraint step multiplies θ by (1 − 2λ); 2λ = 1 zeroes θ and 2λ > 1 flips its sign. The release has no guard; this
    module keeps its update and warns (``RuntimeWarning``).

    Fixed point (l2, SGD base with step η): because R and ∇R are evaluated after the base step, a limit θ with
    λ > 0 satisfies R(θ') = κ for θ' = θ − η∇L(θ) and ∇L(θ) + 2λ_KKT·θ = 0 with λ_KKT = λ/(η(1 − 2λ)); θ is the exact
    KKT point of the bound (1 − 2λ)²κ and approaches that of κ at rate O(η). μ sets the speed of the dual
    iteration, not the fixed point (``tests/test_cpr_kkt.py`` checks both against SLSQP).

    Examples
    --------
    >>> from refreg.optim import adam
    >>> opt = cpr(adam(1e-3), kappa_init="dependent", kappa_init_param=0.8)
    >>> from refreg.cpr import Dependent
    >>> opt == cpr(adam(1e-3), kappa_init=Dependent(0.8))
    True
    """
    return CPR(
        base=base,
        mu=mu,
        kappa_init=kappa_strategy(kappa_init, kappa_init_param, reg_step_size, reg_ema_decay),
        measure=measure,
        reg_by_lr=reg_by_lr,
        regularize=regularize,
        scalars=scalar_policy(scalar_dtype),
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
