"""The arithmetic of one SGD or Adam/AdamW step on matching blocks of arrays, in PyTorch's order of operations.

These are the reference kernels: :class:`refreg.optim.SGD` and :class:`refreg.optim.Adam` evaluate them block by
block (``refreg._backend.elementwise``), and the fused in-place kernels of :mod:`refreg.optim._fused` are tested
bit for bit against them. Notation as in :mod:`refreg.optim.optimizers`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["AdamStepCoefficients", "adam_kernel", "sgd_kernel"]


def sgd_kernel(xp, opt, lr, first, p, g, buf=None):
    """One SGD step on matching blocks of theta, g (and the momentum buffer), torch's order of operations."""
    d = g + opt.weight_decay * p if opt.weight_decay else g
    if not opt.momentum:
        return p - lr * d
    if first:
        buf = xp.asarray(d, copy=True)  # torch: the first buffer is a copy of d, undamped
    else:
        buf = opt.momentum * buf + (1.0 - opt.dampening) * d
    d = d + opt.momentum * buf if opt.nesterov else buf
    return p - lr * d, buf


class AdamStepCoefficients(NamedTuple):
    """The scalars of one Adam/AdamW step at step t with learning rate lr, shared by every block and tensor.

    ``decay``: AdamW's ``1 − lr·wd`` applied to θ first (None for Adam); ``l2``: Adam's coupled ``wd`` in
    ``g + wd·θ`` (0 for AdamW); ``lerp_weight``: ``1 − β₁``; ``beta2``: β₂; ``bias_correction2_sqrt``:
    ``sqrt(1 − β₂^t)``; ``eps``: ε; ``step_size``: ``lr / (1 − β₁^t)``. In this order it is also the
    positional head of ``refreg.optim._fused.adam_kernel_into``.
    """

    decay: float | None
    l2: float
    lerp_weight: float
    beta2: float
    bias_correction2_sqrt: float
    eps: float
    step_size: float


def adam_kernel(xp: Any, c: AdamStepCoefficients, p: Any, g: Any, m: Any, v: Any) -> tuple:
    """One Adam step on matching blocks of θ, g, m, v (PyTorch's single-tensor kernel, op for op).

    ``θ ← decay·θ``; ``g ← g + l2·θ``; ``m ← lerp(m, g, 1 − β₁)``; ``v ← β₂·v + (1 − β₂)·g²``;
    ``θ ← θ − step_size·m / (sqrt(v)/sqrt(1 − β₂^t) + ε)``.
    """
    if c.decay is not None:
        p = p * c.decay
    if c.l2:
        g = g + c.l2 * p
    w = c.lerp_weight
    # torch's lerp: start + w (end - start) for w < 0.5, else end - (end - start)(1 - w)
    m = m + w * (g - m) if w < 0.5 else g - (g - m) * (1.0 - w)
    v = c.beta2 * v + (1.0 - c.beta2) * g * g
    denom = xp.sqrt(v) / c.bias_correction2_sqrt + c.eps
    return p + (-c.step_size) * m / denom, m, v
