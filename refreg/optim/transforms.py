"""Decoupled weight decay as its own transformation around any optimizer, optionally on a subset of tensors.

Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019): shrink the parameters by
``1 − η_t·wd`` and then take the base optimizer's step, instead of adding ``wd·θ`` to the gradient. With
``adam`` as the base and every tensor decayed this is ``adamw``, bit for bit (``tests/test_optim_transforms.py``);
``decay`` chooses the tensors (e.g. weights, not biases), as a predicate or a set of names.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from refreg._backend import namespace_of_params, zero_d_array
from refreg._validation import check_nonnegative, check_step
from refreg.optim.schedules import current_lr

__all__ = ["DecoupledWeightDecay", "decoupled_weight_decay"]


@dataclass(frozen=True)
class DecoupledWeightDecay:
    """``θ_k ← (1 − η_t·wd)·θ_k`` for the decayed tensors k, then ``base.update`` (Loshchilov & Hutter 2019).

    ``η_t`` is the base optimizer's learning rate at its current step (``base.lr``, a float or schedule, and
    ``state.step``); the state is the base optimizer's own state.
    """

    base: Any
    weight_decay: float
    decay: Callable[[str, Any], bool] | frozenset[str] | None = None

    def __post_init__(self):
        if not (hasattr(self.base, "lr") and callable(getattr(self.base, "update", None))):
            raise TypeError(
                f"base must be a refreg optimizer with an lr attribute, got {type(self.base).__name__}"
            )
        object.__setattr__(
            self, "weight_decay", check_nonnegative("weight_decay", self.weight_decay)
        )
        decay = self.decay
        if decay is not None and not callable(decay):
            if isinstance(decay, str) or not isinstance(decay, Collection):
                raise TypeError(
                    f"decay must be None, a predicate (name, array) -> bool or a set of names, got {decay!r}"
                )
            object.__setattr__(self, "decay", frozenset(decay))

    def init(self, params: Mapping[str, Any]) -> Any:
        """The base optimizer's state."""
        return self.base.init(params)

    def _decays(self, name: str, theta: Any) -> bool:
        if self.decay is None:
            return True
        if callable(self.decay):
            return bool(self.decay(name, theta))
        return name in self.decay

    def update(
        self, grads: Mapping[str, Any], state: Any, params: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Any]:
        """Shrink the decayed tensors, then the base step; the arguments are not modified."""
        namespace_of_params(params)  # the dtype policy, before the shrink computes anything
        step = check_step("state.step", getattr(state, "step", None))
        lr = current_lr(self.base.lr, step)
        factor = 1.0 - lr * self.weight_decay
        if factor < 0.0:
            raise ValueError(
                f"weight_decay must satisfy lr·weight_decay <= 1 (the factor 1 - lr·wd would be negative), "
                f"got lr={lr!r}, weight_decay={self.weight_decay!r}"
            )
        if isinstance(self.decay, frozenset) and not self.decay <= set(params):
            raise ValueError(
                f"decay names parameters not in params: {sorted(self.decay - set(params))}"
            )
        shrunk = {
            k: zero_d_array(p * factor) if self._decays(k, p) else p for k, p in params.items()
        }
        return self.base.update(grads, state, shrunk)


def decoupled_weight_decay(
    base: Any,
    weight_decay: float,
    decay: Callable[[str, Any], bool] | Collection[str] | None = None,
) -> DecoupledWeightDecay:
    """Wrap ``base`` (``sgd``, ``adam``, ...) with decoupled weight decay; see :class:`DecoupledWeightDecay`.

    Examples
    --------
    >>> from refreg.optim import adam
    >>> opt = decoupled_weight_decay(adam(1e-3), 1e-2, decay=lambda name, p: p.ndim >= 2)  # weights only
    """
    return DecoupledWeightDecay(base, weight_decay, decay)
