"""Losses, each returning ``(value, grad)`` with ``grad = dL/d(input)``.

Notation: ``n`` batch size, ``C`` classes, ``Z`` logits of shape (n, C), ``y`` integer labels of shape (n,),
``P = softmax(Z)``, ``Y`` one-hot labels.

``value`` is a 0-d value of the inputs' namespace and dtype, not synchronised to the host: a 0-d array, which
NumPy returns as its scalar type (``np.float32``/``np.float64``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from refreg._backend import get_namespace, on_device_of
from refreg._validation import check_finite_array

__all__ = ["LOSSES", "accuracy", "mse", "softmax_cross_entropy"]


def _check_logits_labels(logits: Any, labels: Any) -> tuple[Any, Any]:
    xp = get_namespace(logits, labels)
    if not xp.isdtype(logits.dtype, "real floating"):
        raise TypeError(f"logits must have a real floating dtype, got {logits.dtype}")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (n, C), got shape {tuple(logits.shape)}")
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    n, n_classes = logits.shape
    if tuple(labels.shape) != (n,):
        raise ValueError(
            f"labels must have shape ({n},) to match logits, got {tuple(labels.shape)}"
        )
    if n == 0:
        raise ValueError("logits must hold at least one sample, got n = 0")
    lo, hi = int(xp.min(labels)), int(xp.max(labels))
    if lo < 0 or hi >= n_classes:
        raise ValueError(
            f"labels must lie in [0, {n_classes - 1}] for {n_classes} classes, got min {lo}, max {hi}"
        )
    # compared as int64: an arange in a narrow label dtype wraps (uint8 256..299 are 0..43), and would mark a
    # second class for every label below C - 256
    wide = xp.astype(labels, xp.int64)
    classes = xp.arange(n_classes, dtype=xp.int64, **on_device_of(wide))
    one_hot = wide[:, None] == classes[None, :]
    return xp, one_hot


def softmax_cross_entropy(logits: Any, labels: Any) -> tuple[Any, Any]:
    """Mean softmax cross-entropy over the batch, stable for logits of any size.

    .. math::
        L = (1/n) Σ_i [logsumexp(Z_i) − Z_{i,y_i}],   dL/dZ = (P − Y) / n

    Parameters
    ----------
    logits : array of shape (n, C), float
    labels : integer array of shape (n,), values in [0, C)

    Returns
    -------
    value : 0-d array
    grad : array of shape (n, C)

    Notes
    -----
    Shifting by ``max_j Z_ij`` before ``exp`` keeps every term in range (PyTorch's
    ``F.cross_entropy`` with ``reduction="mean"``).
    """
    xp, one_hot = _check_logits_labels(logits, labels)
    n = logits.shape[0]
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    exp = xp.exp(shifted)
    sum_exp = xp.sum(exp, axis=1, keepdims=True)
    log_sum_exp = xp.log(sum_exp)
    picked = xp.sum(xp.where(one_hot, shifted, xp.zeros_like(shifted)), axis=1, keepdims=True)
    value = xp.sum(log_sum_exp - picked) / n
    probs = exp / sum_exp
    grad = (probs - xp.astype(one_hot, logits.dtype)) / n
    return value, grad


def mse(pred: Any, target: Any) -> tuple[Any, Any]:
    """Mean squared error over all elements (PyTorch's ``reduction="mean"``).

    .. math::
        L = (1/N) Σ (pred − target)^2,   dL/dpred = 2 (pred − target) / N,   N = pred.size

    Parameters
    ----------
    pred, target : arrays of the same shape and float dtype
    """
    xp = get_namespace(pred, target)
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(
            f"target must have the shape of pred {tuple(pred.shape)}, got {tuple(target.shape)}"
        )
    if not xp.isdtype(pred.dtype, "real floating") or target.dtype != pred.dtype:
        raise TypeError(
            f"pred and target must share a real floating dtype, got {pred.dtype} and {target.dtype}"
        )
    size = 1
    for s in pred.shape:
        size *= s
    if size == 0:
        raise ValueError("pred must hold at least one element")
    check_finite_array("target", target)
    diff = pred - target
    return xp.sum(diff * diff) / size, (2.0 / size) * diff


def accuracy(logits: Any, labels: Any) -> float:
    """Fraction of rows whose arg-max logit is the label (a host float); NaN if any logit is NaN.

    ``logits`` of shape (n, C) with n >= 1, ``labels`` integer of shape (n,): (n, 1) labels would broadcast
    to an (n, n) comparison and are refused. The arg-max of a row holding NaN is undefined (NumPy's picks the
    NaN's column), so a diverged network gets NaN, never a number such as the share of class 0.
    """
    xp = get_namespace(logits, labels)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must have shape (n, C) with n >= 1, got {tuple(logits.shape)}")
    if tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(
            f"labels must have shape ({logits.shape[0]},) to match logits, got {tuple(labels.shape)}"
        )
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if xp.any(xp.isnan(logits)):
        return math.nan
    pred = xp.argmax(logits, axis=1)
    return float(xp.mean(xp.astype(pred == xp.astype(labels, pred.dtype), xp.float64)))


LOSSES: dict[str, Callable[[Any, Any], tuple[Any, Any]]] = {
    "softmax_cross_entropy": softmax_cross_entropy,
    "mse": mse,
}
