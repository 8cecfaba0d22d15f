"""Checks at the public boundary, with one message style.

Every message names the argument, the value received and what was expected, e.g.
``lr must be > 0, got -0.1``. Validation happens before any arithmetic, so a call that raises leaves the
caller's parameters and optimizer state exactly as they were.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from refreg._backend import all_finite, get_namespace, is_array

__all__ = [
    "check_bool",
    "check_buffers",
    "check_choice",
    "check_finite_array",
    "check_grads",
    "check_in_range",
    "check_lr",
    "check_nonnegative",
    "check_positive",
    "check_same_library",
    "check_step",
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
    """Raise ``FloatingPointError`` if ``x`` holds NaN or inf (one reduction, one host sync); ``TypeError``
    naming ``name`` if ``x`` is not an array."""
    if type(x) is not np.ndarray and not is_array(x):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}: {x!r:.80}")
    if not all_finite(x):
        # the namespace only for the message: on the fast path all_finite needs none
        xp = get_namespace(x)
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
        ``grads`` is not a dict of arrays, or a gradient's array library or dtype differs from its
        parameter's.
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
        check_same_library(f"grads[{key!r}]", g, f"params[{key!r}]", p)
        if g.dtype != p.dtype:
            raise TypeError(
                f"grads[{key!r}] must have the dtype of its parameter {p.dtype}, got {g.dtype}"
            )
        if finite:
            check_finite_array(f"grads[{key!r}]", g)


def check_same_library(name: str, x: Any, like_name: str, like: Any) -> None:
    """``TypeError`` naming both arrays if ``x`` and ``like`` come from different array libraries.

    Compared before dtypes: a NumPy gradient for an ``array_api_strict`` parameter would otherwise read as a
    dtype mismatch (``float64`` against ``array_api_strict.float64``), and CuPy's dtypes are NumPy's.
    """
    if type(x) is type(like):  # the common case, without a namespace lookup
        return
    try:
        get_namespace(x, like)
    except TypeError:
        raise TypeError(
            f"{name} is an array of {_library(x)} but {like_name} of {_library(like)}: arrays of one "
            "library are expected"
        ) from None


def _library(x: Any) -> str:
    return f"{type(x).__module__.split('.')[0]} ({type(x).__name__})"


def check_bool(name: str, value: Any) -> bool:
    """A ``bool`` (or NumPy bool): ``"no"``, 0 or None are not booleans and raise ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


MAX_STEP = 2**53
"""The largest step counter accepted: every int up to it is exact as a float (β**t, schedules); a checkpoint
could hold any int, and a larger one would end in ``OverflowError`` inside the arithmetic."""


def check_step(name: str, value: Any) -> int:
    """A step counter: an int in [0, 2**53] (not a bool, not a float), else ``ValueError`` naming it."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or not 0 <= value <= MAX_STEP
    ):
        raise ValueError(
            f"{name} must be an int in [0, 2**53], got {type(value).__name__} {value!r:.40}"
        )
    return int(value)


def check_buffers(
    name: str, buffers: Any, params: Mapping[str, Any], *, nonnegative: bool = False
) -> None:
    """An optimizer's per-parameter state ``name``: a dict with the keys of ``params`` whose arrays have
    each parameter's library, shape and dtype, and are finite (and ``>= 0`` with ``nonnegative``).

    One reduction per array, no copies. Raises ``ValueError`` naming ``name[key]``.
    """
    if not isinstance(buffers, Mapping):
        raise ValueError(f"{name} must be a dict of arrays, got {type(buffers).__name__}")
    if set(buffers) != set(params):
        missing = [k for k in params if k not in buffers]
        extra = [k for k in buffers if k not in params]
        raise ValueError(
            f"{name} must have the keys of params; missing {missing}, unexpected {extra}"
        )
    for key, p in params.items():
        b, where = buffers[key], f"{name}[{key!r}]"
        if not is_array(b):
            raise ValueError(f"{where} must be an array like its parameter, got {type(b).__name__}")
        try:
            get_namespace(b, p)
        except TypeError as err:
            raise ValueError(
                f"{where} must come from its parameter's array library: {err}"
            ) from None
        if tuple(b.shape) != tuple(p.shape):
            raise ValueError(f"{where} must have shape {tuple(p.shape)}, got {tuple(b.shape)}")
        if b.dtype != p.dtype:
            raise ValueError(f"{where} must have its parameter's dtype {p.dtype}, got {b.dtype}")
        if not all_finite(b, nonnegative=nonnegative):
            expected = "finite and >= 0" if nonnegative else "finite"
            raise ValueError(f"{where} must be {expected}, got NaN, inf or a negative value")


def check_path(name: str, value: Any) -> Path:
    """A file or folder path: a ``str`` or ``os.PathLike``, else ``TypeError`` naming ``name``."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"{name} must be a str or os.PathLike, got {type(value).__name__} {value!r:.60}"
        )
    return Path(value)
