"""Elementwise activations with hand-written derivatives.

Notation: ``z`` pre-activation, ``a = f(z)`` activation, ``da = dL/da``, ``dz = dL/dz = da * f'(z)``.

========  ==================  ==========================================
name      f(z)                f'(z)
========  ==================  ==========================================
relu      max(z, 0)           1 if z > 0 else 0   (relu'(0) = 0 by choice; NaN -> NaN)
tanh      tanh(z)             1 - tanh(z)^2 = 1 - a^2
identity  z                   1
========  ==================  ==========================================

relu'(0) = 0 is a subgradient choice (any value in [0, 1] is one); it is what PyTorch uses, so a unit whose
pre-activation is exactly 0 receives no gradient, here and in a port.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["ACTIVATIONS", "Activation"]


class Activation(NamedTuple):
    """``forward(z) -> a`` and ``backward(z, a, da) -> dz``."""

    forward: Callable[[Any], Any]
    backward: Callable[[Any, Any, Any], Any]


def _xp(x):
    from refreg._backend import get_namespace

    return get_namespace(x)


def _relu_forward(z):
    xp = _xp(z)
    # z < 0 is False for NaN, so NaN passes through (torch.relu does the same; where(z > 0, z, 0) would
    # turn it into 0 and hide a NaN weight from every later check); -0.0 stays -0.0 as in torch
    return xp.where(z < 0, xp.zeros_like(z), z)


def _relu_backward(z, a, da):
    xp = _xp(z)
    # z <= 0: relu'(0) = 0, and a NaN pre-activation passes da on, as torch's threshold_backward does
    return xp.where(z <= 0, xp.zeros_like(da), da)


def _tanh_forward(z):
    return _xp(z).tanh(z)


def _tanh_backward(z, a, da):
    return da * (1.0 - a * a)


def _identity_forward(z):
    return z


def _identity_backward(z, a, da):
    return da


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(_relu_forward, _relu_backward),
    "tanh": Activation(_tanh_forward, _tanh_backward),
    "identity": Activation(_identity_forward, _identity_backward),
}
