"""The training loop every experiment shares: minibatch SGD-style epochs over any refreg optimizer.

``penalty(params) -> (value, grads)`` adds a regularizer's value and gradient to the loss (e.g. a sparse
regularizer); the optimizer handles everything else (weight decay, CPR's constraint step, PathProx's prox).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from refreg._backend import get_namespace, on_device_of
from refreg.data import minibatches
from refreg.nn.losses import accuracy
from refreg.nn.mlp import MLP

__all__ = ["evaluate", "train_epoch", "train_step"]

Penalty = Callable[[Mapping[str, Any]], tuple[Any, Mapping[str, Any]]]


def train_step(
    net: MLP,
    optimizer: Any,
    params: Mapping[str, Any],
    state: Any,
    x: Any,
    y: Any,
    loss: Any = "softmax_cross_entropy",
    penalty: Penalty | None = None,
) -> tuple[dict[str, Any], Any, Any]:
    """One update on the batch ``(x, y)``: ``theta <- optimizer(grad L(theta) [+ grad penalty(theta)])``.

    Returns ``(new_params, new_state, loss_value)`` with the loss (without penalty) before the update.
    """
    value, grads = net.value_and_grad(params, x, y, loss)
    if penalty is not None:
        _, penalty_grads = penalty(params)
        grads = {k: g + penalty_grads[k] if k in penalty_grads else g for k, g in grads.items()}
    new_params, new_state = optimizer.update(grads, state, params)
    return new_params, new_state, value


def train_epoch(
    net: MLP,
    optimizer: Any,
    params: Mapping[str, Any],
    state: Any,
    x: Any,
    y: Any,
    batch_size: int,
    rng: Any,
    loss: Any = "softmax_cross_entropy",
    penalty: Penalty | None = None,
    drop_last: bool = False,
) -> tuple[dict[str, Any], Any, float]:
    """One epoch of :func:`train_step` over minibatches in a seeded order; returns the mean batch loss."""
    xp = get_namespace(x)
    total, count = 0.0, 0
    for idx in minibatches(x.shape[0], batch_size, rng, drop_last=drop_last):
        index = xp.asarray(idx, **on_device_of(x))
        xb, yb = xp.take(x, index, axis=0), xp.take(y, index, axis=0)
        params, state, value = train_step(net, optimizer, params, state, xb, yb, loss, penalty)
        total += float(value)
        count += 1
    return dict(params), state, total / max(count, 1)


def evaluate(net: MLP, params: Mapping[str, Any], x: Any, y: Any) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` on ``(x, y)`` as host floats."""
    from refreg.nn.losses import softmax_cross_entropy

    logits = net.predict(params, x)
    value, _ = softmax_cross_entropy(logits, y)
    return float(value), accuracy(logits, y)
