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

import numpy as np

__all__ = ["ACTIVATIONS", "Activation"]


class Activation(NamedTuple):
    """``forward(z) -> a`` and ``backward(z, a, da) -> dz``."""

    forward: Callable[[Any], Any]
    backward: Callable[[Any, Any, Any], Any]


def _xp(x):
    from refreg._backend import get_namespace

    return get_namespace(x)


def _relu_forward(z):
    if _numpy_float(z):
        return zero_where_numpy(z < 0, z)  # speed path, bit for bit the line below
    xp = _xp(z)
    # z < 0 is False for NaN, so NaN passes through (torch.relu does the same; where(z > 0, z, 0) would
    # turn it into 0 and hide a NaN weight from every later check); -0.0 stays -0.0 as in torch
    return xp.where(z < 0, xp.zeros_like(z), z)


def _relu_backward(z, a, da):
    if _numpy_float(z) and _numpy_float(da) and z.shape == da.shape:
        return zero_where_numpy(z <= 0, da)  # speed path, bit for bit the line below
    xp = _xp(z)
    # z <= 0: relu'(0) = 0, and a NaN pre-activation passes da on, as torch's threshold_backward does
    return xp.where(z <= 0, xp.zeros_like(da), da)


def _numpy_float(x) -> bool:
    return isinstance(x, np.ndarray) and x.ndim > 0 and x.dtype in (np.float32, np.float64)


def zero_where_numpy(cond: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``where(cond, +0.0, x)`` for a NumPy float array, bit for bit, without a branch per element.

    The speed path of ReLU: NumPy's ``where`` selects element by element and, on the random signs of
    pre-activations, mispredicts branches (10x the time of a multiply at (1024, 300), docs/performance.md). A
    product with the 0/1 mask would be fast but gives -0.0 for negative x and NaN for NaN x. Instead the bit
    pattern of x is ANDed with an integer mask that is 0 where ``cond`` holds and all ones elsewhere: exactly
    ``+0.0`` or the unchanged bits of x (-0.0, inf and NaN included).
    """
    ints = np.dtype(f"i{x.dtype.itemsize}")
    mask = cond.view(np.uint8).astype(ints)  # 1 where cond, else 0
    mask -= 1  # 0 where cond, else -1 (every bit set)
    np.bitwise_and(x.view(ints), mask, out=mask)
    return mask.view(x.dtype)


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
