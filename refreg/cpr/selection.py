"""Which parameter tensors CPR constrains, and the checks that a CPR state belongs to a set of parameters."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from refreg._validation import MAX_STEP, check_step


def default_regularize(name: str, theta: Any) -> bool:
    """The release's choice for an MLP: weights (``ndim >= 2``) are regularized, biases (``ndim < 2``) are not.

    For other models the release's ``group_parameters_for_cpr_optimizer`` differs from ``ndim >= 2``: it skips
    ``nn.Embedding`` weights and every name containing "embed" (unless ``regularize_embedding``), parameters
    marked ``_no_weight_decay`` and 2-D parameters named ``*bias``; it regularizes 1-D and 0-d parameters
    outside norm layers that are not biases (a PReLU slope, a gain, a temperature). It agrees for Linear,
    convolution, attention and norm layers. Pass ``regularize=`` to reproduce it elsewhere (refreg's
    transformer figure passes its matrices, the release's ``reg_embedding=True``).
    """
    return theta.ndim >= 2


def select_regularized(
    params: Mapping[str, Any],
    regularize: Callable[[str, Any], bool] | frozenset[str] | None,
    measure: str,
) -> list[str]:
    """Names of the tensors CPR constrains, in ``params`` order; selecting nothing is an error.

    ``regularize`` is None (:func:`default_regularize`), a predicate ``(name, array) -> bool`` or a set of names.

    Raises
    ------
    ValueError
        ``regularize`` names a key that ``params`` lacks, or selects no tensor (the release would silently
        run the plain base optimizer instead).
    """
    reg = regularize
    if reg is None:
        names = [k for k, p in params.items() if default_regularize(k, p)]
    elif callable(reg):
        names = [k for k, p in params.items() if _as_bool(reg(k, p), k)]
    else:
        unknown = sorted(reg - set(params))
        if unknown:
            raise ValueError(
                f"regularize names parameters not in params: {unknown}; keys are {list(params)}"
            )
        names = [k for k in params if k in reg]
    if not names:
        raise ValueError(
            f"regularize selects no parameter of {list(params)} (regularize={reg!r}); CPR would be "
            "the plain base optimizer"
        )
    if measure == "std":
        for k in names:
            if math.prod(params[k].shape) < 2:
                raise ValueError(
                    f"measure 'std' needs >= 2 elements, but params[{k!r}] has shape {tuple(params[k].shape)}"
                )
    return names


def check_state(
    state: Any, params: Mapping[str, Any], state_type: type, regularized: list[str] | None = None
) -> None:
    """A ``state_type`` (CPRState) whose keys match ``params`` and whose scalars lie in their domains.

    ``regularized``: the names this optimizer constrains (``CPR.regularized_names(params)``); the state's
    multipliers must be exactly these (a crafted state could otherwise constrain a bias). ``TypeError`` for
    another state type, ``ValueError`` naming the field (``state.lam['w']``) otherwise. The detector's
    ``prev_growth`` may be NaN: the relative growth of a norm that is 0 is undefined (as in the release), and
    NaN compares false, so no inflection point is found from it. The wrapped optimizer's state is checked by
    its own ``update``.
    """
    if not isinstance(state, state_type):
        raise TypeError(
            f"state must be a CPRState (from this optimizer's init), got {type(state).__name__}"
        )
    if not isinstance(state.step, Mapping) or set(state.step) != set(params):
        raise ValueError(
            f"state.step must have the keys of params; got {sorted(state.step)} for {sorted(params)}"
        )
    if not isinstance(state.lam, Mapping):
        raise ValueError(f"state.lam must be a dict, got {type(state.lam).__name__}")
    names = set(state.lam)
    for field in ("kappa", "kappa_set", "norm_ema", "prev_norm_ema", "prev_growth"):
        if not isinstance(getattr(state, field), Mapping):
            raise ValueError(
                f"state.{field} must be a dict, got {type(getattr(state, field)).__name__}"
            )
        if set(getattr(state, field)) != names:
            raise ValueError(f"state.{field} must have the keys of state.lam {sorted(names)}")
    if not names or not names <= set(params):
        raise ValueError(
            f"state.lam must name regularized parameters of params; got {sorted(names)} for {sorted(params)}"
        )
    if regularized is not None and names != set(regularized):
        raise ValueError(
            f"state.lam must have the keys of the tensors this optimizer regularizes, {sorted(regularized)}; "
            f"got {sorted(names)}"
        )
    for k, t in state.step.items():
        if not (type(t) is int and 0 <= t <= MAX_STEP):  # the usual case without formatting a name
            check_step(f"state.step[{k!r}]", t)
    for k, flag in state.kappa_set.items():
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"state.kappa_set[{k!r}] must be a bool, got {flag!r:.40}")
    # the scalars' domains: λ >= 0; κ >= 0 (a κ not yet set is flagged by kappa_set); the detector's norm
    # averages >= 0; all finite (a NaN λ would silently stop or explode the constraint)
    for field, low in (
        ("lam", 0.0),
        ("kappa", 0.0),
        ("norm_ema", 0.0),
        ("prev_norm_ema", 0.0),
        ("prev_growth", -math.inf),
    ):
        for k, v in getattr(state, field).items():
            if type(v) is float and math.isfinite(v) and v >= low:
                continue  # the usual case (what update writes), accepted without formatting a name
            where = f"state.{field}[{k!r}]"
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.floating)):
                raise ValueError(f"{where} must be a float, got {type(v).__name__} {v!r:.40}")
            try:
                x = float(v)
            except OverflowError:  # an int beyond float range (a checkpoint can hold any int)
                x = math.inf
            if field == "prev_growth" and math.isnan(x):
                continue  # undefined growth of a zero norm (docstring)
            if not (math.isfinite(x) and x >= low):
                bound = "finite" if low == -math.inf else f"finite and >= {low}"
                raise ValueError(f"{where} must be {bound}, got {v!r:.40}")


def _as_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"regularize({name!r}, array) must return a bool, got {value!r}")
    return bool(value)
