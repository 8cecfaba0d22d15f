"""Checks of an optimizer's state against its parameters, run by every ``update`` before any arithmetic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from refreg._backend import namespace_of_params
from refreg._validation import check_buffers, check_grads, check_step

__all__ = ["check_params_and_grads", "check_state_matches"]


def check_state_matches(
    state: Any,
    params: Mapping[str, Any],
    state_type: type,
    *fields: str,
    nonnegative: tuple[str, ...] = (),
) -> int:
    """``state`` is a ``state_type`` with a step counter ``state.step`` (an int >= 0), whose dict ``fields``
    hold a finite array per parameter of its shape and dtype (``nonnegative`` fields also ``>= 0``).

    Returns the step as a Python int. Raises ``TypeError`` for a state of another type and ``ValueError``
    naming the field (``state.exp_avg['w']``) otherwise; nothing is computed before these checks.
    """
    if not isinstance(state, state_type):
        raise TypeError(f"state must be a {state_type.__name__}, got {type(state).__name__}")
    step = check_step("state.step", state.step)
    for field in fields:
        check_buffers(
            f"state.{field}", getattr(state, field), params, nonnegative=field in nonnegative
        )
    return step


def check_params_and_grads(grads: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
    xp = namespace_of_params(params)
    check_grads(grads, params)
    return xp
