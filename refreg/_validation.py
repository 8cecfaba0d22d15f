"""Checks at the public boundary, with one message style.

Every message names the argument, the value received and what was expected, e.g.
``lr must be > 0, got -0.1``. Validation happens before any arithmetic, so a call that raises leaves the
caller's parameters and optimizer state exactly as they were.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from numbers import Real
from typing import Any

from refreg._backend import get_namespace, is_array

__all__ = [
    "check_choice",
    "check_finite_array",
    "check_grads",
    "check_in_range",
    "check_lr",
    "check_nonnegative",
    "check_positive",
]


def _check_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, got nan")
    return value


def check_positive(name: str, value: Any) -> float:
    """``value > 0`` and finite, else ``ValueError`` naming ``name``."""
    v = _check_real(name, value)
    if not (0.0 < v < math.inf):
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}")
    return v


def check_nonnegative(name: str, value: Any) -> float:
    """``value >= 0`` and finite."""
    v = _check_real(name, value)
    if not (0.0 <= v < math.inf):
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return v


def check_in_range(
    name: str, value: Any, low: float, high: float, *, closed: str = "left"
) -> float:
    """``low <= value < high`` (``closed`` in ``"left"``, ``"right"``, ``"both"``, ``"neither"``)."""
    v = _check_real(name, value)
    lo_ok = v >= low if closed in ("left", "both") else v > low
    hi_ok = v <= high if closed in ("right", "both") else v < high
    if not (lo_ok and hi_ok):
        lb = "[" if closed in ("left", "both") else "("
        rb = "]" if closed in ("right", "both") else ")"
        raise ValueError(f"{name} must be in {lb}{low}, {high}{rb}, got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: Mapping | tuple | list) -> Any:
    """``value`` is one of ``choices``, else ``ValueError`` listing the valid ones."""
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {valid}; got {value!r}")
    return value


def check_lr(lr: Any) -> float | Callable[[int], float]:
    """A learning rate: a positive number or a schedule ``step -> lr`` (checked when called)."""
    if callable(lr):
        return lr
    return check_positive("lr", lr)


def check_finite_array(name: str, x: Any) -> None:
    """Raise ``FloatingPointError`` if ``x`` holds NaN or inf (one reduction, one host sync)."""
    xp = get_namespace(x)
    if not bool(xp.all(xp.isfinite(x))):
        n_bad = int(xp.sum(xp.astype(~xp.isfinite(x), xp.int64)))
        raise FloatingPointError(f"{name} holds {n_bad} non-finite value(s) (NaN or inf)")


def check_grads(
    grads: Mapping[str, Any], params: Mapping[str, Any], *, finite: bool = True
) -> None:
    """Gradients match the parameters key for key, in shape and dtype, and are finite.

    Raises
    ------
    ValueError
        Missing or extra keys, or a shape that differs from its parameter's.
    TypeError
        ``grads`` is not a dict of arrays, or a gradient's dtype differs from its parameter's.
    FloatingPointError
        A gradient holds NaN or inf; the message names its key.
    """
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must be a dict of arrays, got {type(grads).__name__}")
    missing = [k for k in params if k not in grads]
    extra = [k for k in grads if k not in params]
    if missing or extra:
        raise ValueError(
            f"grads must have the keys of params; missing {missing}, unexpected {extra}"
        )
    for key, p in params.items():
        g = grads[key]
        if not is_array(g):
            raise TypeError(f"grads[{key!r}] must be an array, got {type(g).__name__}")
        if tuple(g.shape) != tuple(p.shape):
            raise ValueError(
                f"grads[{key!r}] must have the shape of its parameter {tuple(p.shape)}, "
                f"got {tuple(g.shape)}"
            )
        if g.dtype != p.dtype:
            raise TypeError(
                f"grads[{key!r}] must have the dtype of its parameter {p.dtype}, got {g.dtype}"
            )
        if finite:
            check_finite_array(f"grads[{key!r}]", g)
