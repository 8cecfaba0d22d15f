"""Plumbing shared by the hand-written models (``MLP``, ``Transformer``): parameter checks and ``value_and_grad``.

The maths of each model stays in its own module; this one only holds the checks and the loss-then-backward
sequence, which are the same for every model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from refreg._backend import get_namespace, namespace_of_params
from refreg._validation import check_choice, check_finite_array
from refreg.nn.losses import LOSSES

__all__ = ["check_finite_loss", "check_param_dict", "model_value_and_grad", "resolve_loss"]

Loss = Callable[[Any, Any], tuple[Any, Any]]


def check_param_dict(params: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]]) -> Any:
    """Keys exactly ``expected``'s, each of its shape, one common float dtype; returns the namespace."""
    xp = namespace_of_params(params)
    missing = [k for k in expected if k not in params]
    extra = [k for k in params if k not in expected]
    if missing or extra:
        raise ValueError(
            f"params must have the keys {list(expected)}; missing {missing}, unexpected {extra}"
        )
    dtypes = {str(v.dtype) for v in params.values()}
    if len(dtypes) != 1:
        raise TypeError(f"params must share one float dtype, got {sorted(dtypes)}")
    for key, shape in expected.items():
        if tuple(params[key].shape) != shape:
            raise ValueError(
                f"params[{key!r}] must have shape {shape}, got {tuple(params[key].shape)}"
            )
    return xp


def check_finite_loss(value: Any, y: Any) -> None:
    """A non-finite loss value: ``FloatingPointError`` naming the targets if they are the cause."""
    if not math.isfinite(float(value)):
        xp = get_namespace(y)
        if xp.isdtype(y.dtype, "real floating"):
            check_finite_array("y", y)
        raise FloatingPointError(
            f"loss is {float(value)} although x and params are finite: the output overflowed"
        )


def resolve_loss(loss: str | Loss) -> Loss:
    """A callable as given, else the entry of ``LOSSES`` named ``loss``."""
    if callable(loss):
        return loss
    check_choice("loss", loss, LOSSES)
    return LOSSES[loss]


def model_value_and_grad(
    forward: Callable[[Mapping[str, Any], Any], tuple[Any, Any]],
    backward: Callable[[Mapping[str, Any], Any, Any], tuple[dict[str, Any], Any]],
    params: Mapping[str, Any],
    x: Any,
    y: Any,
    loss: str | Loss,
    check_x: bool,
) -> tuple[Any, dict[str, Any]]:
    """``(L(out, y), dL/dparams)`` with ``out, cache = forward(params, x)`` and ``backward(params, cache, dL/dout)``.

    Order of the checks (so that a NaN never reaches an optimizer as a number): the loss name; ``x`` finite
    (only if ``check_x``: float inputs); every parameter finite (named by its key); after the loss, a finite
    value, before the backward pass.
    """
    loss_fn = resolve_loss(loss)
    if check_x:
        check_finite_array("x", x)
    for key, p in params.items():
        check_finite_array(f"params[{key!r}]", p)
    out, cache = forward(params, x)
    value, grad_out = loss_fn(out, y)
    check_finite_loss(value, y)
    grads, _ = backward(params, cache, grad_out)
    return value, grads
