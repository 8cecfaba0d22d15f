"""Magnitude pruning, masks, and masked fine-tuning (pruned weights stay exactly zero)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from refreg._backend import get_namespace, is_array, namespace_of_params
from refreg._validation import (
    check_bool,
    check_finite_array,
    check_nonnegative,
    check_same_library,
)
from refreg.sparse._matrices import (
    _max_abs,
)
from refreg.sparse.network import weight_names


def magnitude_mask(
    params: Mapping[str, Any],
    threshold: float,
    relative: bool = False,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Keep-masks of magnitude pruning: ``keep = |w| ≥ t`` (absolute) or ``|w| ≥ t · max|W|`` (relative).

    Parameters
    ----------
    params : dict of arrays
    threshold : float >= 0
        ``t``; weights with ``|w| < t`` (or ``< t · max|W|`` per tensor) are pruned.
    relative : bool
        Threshold relative to each tensor's largest magnitude.
    names : list of str, optional
        Tensors to prune; default every 2-D array (biases are kept).

    Returns
    -------
    masks : dict of bool arrays
        One per pruned tensor, of its shape; True = kept.

    References
    ----------
    DeepHoyer (Yang et al. 2020) prunes ``|w| < 1e-3`` after training, then fine-tunes with the mask fixed.
    """
    threshold = check_nonnegative("threshold", threshold)
    relative = check_bool("relative", relative)
    xp = namespace_of_params(params)
    masks = {}
    for key in weight_names(params, names):
        W = params[key]
        check_finite_array(f"params[{key!r}]", W)  # NaN compares False: it would prune everything
        t = threshold * _max_abs(xp, [W]) if relative else threshold
        masks[key] = xp.abs(W) >= t
    return masks


def _check_masks(masks: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    if not isinstance(masks, Mapping):
        raise TypeError(f"masks must be a dict of bool arrays, got {type(masks).__name__}")
    for key, mask in masks.items():
        if key not in params:
            raise ValueError(f"masks[{key!r}] has no parameter; params keys are {list(params)}")
        if not is_array(mask) or mask.dtype != get_namespace(mask).bool:
            raise TypeError(
                f"masks[{key!r}] must be a bool array, got {getattr(mask, 'dtype', mask)!r}"
            )
        check_same_library(f"masks[{key!r}]", mask, f"params[{key!r}]", params[key])
        if tuple(mask.shape) != tuple(params[key].shape):
            raise ValueError(
                f"masks[{key!r}] must have shape {tuple(params[key].shape)}, got {tuple(mask.shape)}"
            )


def apply_mask(params: Mapping[str, Any], masks: Mapping[str, Any]) -> dict[str, Any]:
    """``θ_k ⊙ mask_k`` for every key in ``masks`` (others unchanged); a new dict, inputs untouched."""
    _check_masks(masks, params)
    out = dict(params)
    for key, mask in masks.items():
        p = params[key]
        out[key] = get_namespace(p).where(mask, p, get_namespace(p).zeros_like(p))
    return out


def count_nonzero(params: Mapping[str, Any], names: Sequence[str] | None = None) -> int:
    """``Σ_k #{w ∈ θ_k : w ≠ 0}`` over ``names`` (default: every array in ``params``), a host int.

    Raises
    ------
    FloatingPointError
        A counted tensor holds NaN or inf (NaN ≠ 0 would count a diverged weight as a nonzero one).
    """
    xp = namespace_of_params(params)
    keys = list(params) if names is None else weight_names(params, names)
    for k in keys:
        check_finite_array(f"params[{k!r}]", params[k])
    return sum(int(xp.sum(xp.astype(params[k] != 0, xp.int64))) for k in keys)


def _mask_state(state: Any, masks: Mapping[str, Any]) -> Any:
    """Zero the entries of pruned weights in every per-parameter buffer of an optimizer state (recursively)."""
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return state._replace(**{f: _mask_state(getattr(state, f), masks) for f in state._fields})
    if isinstance(state, dict):
        out = {}
        for key, value in state.items():
            mask = masks.get(key)
            if mask is not None and is_array(value) and tuple(value.shape) == tuple(mask.shape):
                xp = get_namespace(value)
                value = xp.where(mask, value, xp.zeros_like(value))
            else:
                value = _mask_state(value, masks)
            out[key] = value
        return out
    if isinstance(state, list):
        return [_mask_state(v, masks) for v in state]
    return state


@dataclass(frozen=True)
class Masked:
    """An optimizer whose pruned weights stay exactly zero (masked fine-tuning).

    .. math::
        g ← g ⊙ mask;\\quad (θ, s) ← \\text{optimizer}(g, s, θ);\\quad θ ← θ ⊙ mask;\\quad s ← s ⊙ mask

    Every per-parameter buffer of the inner state (momentum, Adam's moments) is masked too, so no stale
    momentum moves a pruned weight; the state is the inner optimizer's own state type (``refreg.io`` saves it).
    """

    optimizer: Any
    masks: Mapping[str, Any]

    def __post_init__(self):
        if not (hasattr(self.optimizer, "init") and hasattr(self.optimizer, "update")):
            raise TypeError(
                f"optimizer must have init and update, got {type(self.optimizer).__name__}"
            )
        if not isinstance(self.masks, Mapping):
            raise TypeError(f"masks must be a dict of bool arrays, got {type(self.masks).__name__}")

    def init(self, params: Mapping[str, Any]) -> Any:
        _check_masks(self.masks, params)
        return _mask_state(self.optimizer.init(params), self.masks)

    def update(
        self, grads: Mapping[str, Any], state: Any, params: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Any]:
        _check_masks(self.masks, params)
        for key in self.masks:
            if (
                key in grads
            ):  # before masking: a NaN at a pruned position would be zeroed, never seen
                check_finite_array(f"grads[{key!r}]", grads[key])
        masked_grads = apply_mask(grads, self.masks)
        new_params, new_state = self.optimizer.update(
            masked_grads, _mask_state(state, self.masks), params
        )
        return apply_mask(new_params, self.masks), _mask_state(new_state, self.masks)


def masked(optimizer: Any, masks: Mapping[str, Any]) -> Masked:
    """Wrap ``optimizer`` so that the weights where ``masks`` is False stay exactly 0; see :class:`Masked`.

    Parameters
    ----------
    optimizer : object with ``init(params)`` and ``update(grads, state, params)``
        E.g. ``refreg.optim.adam(1e-4)`` or ``sgd(0.01, momentum=0.9)``.
    masks : dict of bool arrays
        From :func:`magnitude_mask`; True = trainable, False = pruned.
    """
    return Masked(optimizer, masks)
