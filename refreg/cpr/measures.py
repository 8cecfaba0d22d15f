"""CPR's constrained measures R(θ) of one tensor (l2, std, l1, Huber) and the gradients the constraint step uses."""

from __future__ import annotations

import math
from typing import Any

from refreg._backend import check_param_dtype, get_namespace
from refreg._validation import check_choice

MEASURES = ("l2", "std", "l1", "huber")


def measure_value(theta: Any, measure: str = "l2") -> Any:
    """The constrained measure R(θ) of one tensor (the paper's default is the squared L2 norm; it also tests std).

    .. math::
        l2: R = Σ θ²;\\quad l1: R = Σ |θ|;\\quad huber: R = Σ (½θ² if |θ| < 1 else |θ| − ½);\\quad
        std: R = \\sqrt{Σ (θ − mean θ)² / (n − 1)}

    Parameters
    ----------
    theta : array of any shape, real floating
    measure : {"l2", "std", "l1", "huber"}

    Returns
    -------
    0-d array of ``theta``'s dtype.
    """
    check_choice("measure", measure, MEASURES)
    xp = get_namespace(theta)
    _check_floating("theta", theta, xp)
    if measure == "l2":
        return xp.sum(theta * theta)
    if measure == "l1":
        return xp.sum(xp.abs(theta))
    if measure == "huber":
        a = xp.abs(theta)
        return xp.sum(xp.where(a < 1, 0.5 * (theta * theta), a - 0.5))
    _check_std_size(theta)
    return xp.std(theta, correction=1)


def measure_grad(theta: Any, measure: str = "l2") -> Any:
    """The gradient ∇R(θ) that the constraint step ``theta <- theta − lam·∇R`` uses (release 0.3.1).

    .. math::
        l2: 2θ;\\quad l1: sign θ;\\quad huber: θ \\text{ if } |θ| < 1 \\text{ else } sign θ;\\quad
        std: (θ − mean θ) / ((n − 1)·std θ)

    ``sign(0) = 0`` (a subgradient of |θ| at 0) and the Huber kink at |θ| = 1 takes ``sign θ``, as in the release.
    For ``std`` the release's operation order is kept, ``(2d − 2·mean(2d))/(n − 1)/(2·std)`` with
    ``d = θ − mean θ``; the ``mean(2d)`` term is zero in exact arithmetic.

    Parameters
    ----------
    theta : array of any shape, float32 or float64 (``std``: at least 2 elements; a constant tensor gets the
        zero subgradient)
    measure : {"l2", "std", "l1", "huber"}

    Returns
    -------
    array of ``theta``'s shape and dtype.
    """
    check_choice("measure", measure, MEASURES)
    xp = get_namespace(theta)
    _check_floating("theta", theta, xp)
    if measure == "l2":
        return 2.0 * theta
    if measure == "l1":
        return xp.sign(theta)
    if measure == "huber":
        return xp.where(xp.abs(theta) < 1, theta, xp.sign(theta))
    n = _check_std_size(theta)
    d = 2.0 * (theta - xp.mean(theta))
    std = xp.std(theta, correction=1)
    if not bool(std > 0):
        # a constant tensor: std is not differentiable there (a cone point, like |x| at 0) and 0 is a
        # subgradient; the release divides 0 by 0 and returns NaN
        return xp.zeros_like(theta)
    return (d - 2.0 * xp.mean(d)) / (n - 1) / (2.0 * std)


def _check_floating(name: str, x: Any, xp: Any) -> None:
    check_param_dtype(name, x, xp)


def _check_std_size(theta: Any) -> int:
    n = math.prod(theta.shape)
    if n < 2:
        raise ValueError(
            f"measure 'std' needs a tensor with >= 2 elements, got shape {tuple(theta.shape)}"
        )
    return n
