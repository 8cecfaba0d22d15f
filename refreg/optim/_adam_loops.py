"""Adam's step as compiled loops, for :mod:`refreg.optim._accel` (numba only; see that module for the rules).

Module-level functions, so that numba's disk cache finds them in every process (:mod:`refreg.optim._accel`,
``_build``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refreg._numba import JIT_OPTIONS
from refreg.optim._pairwise_sum import leaf_sums, tree_total

__all__ = ["adam", "adam_out", "adam_square_sum"]

_jit = njit(**JIT_OPTIONS)


@_jit
def element(pk, gk, mk, vk, scalars):  # pragma: no cover (compiled; inlined by LLVM into the loops)
    # kernels.adam_kernel on one element; the flags are loop invariants that LLVM unswitches
    has_decay, decay, has_l2, l2, low, w, one_minus_beta2, beta2, bc2, eps, neg_step = scalars
    if has_decay:
        pk = pk * decay
    if has_l2:
        gk = gk + pk * l2
    if low:
        mk = mk + (gk - mk) * w
    else:
        mk = gk - (gk - mk) * w
    vk = vk * beta2 + (gk * one_minus_beta2) * gk
    denom = np.sqrt(vk) / bc2 + eps
    return pk + (mk * neg_step) / denom, mk, vk


@_jit
def adam(p, g, m, v, start, stop, *scalars):  # pragma: no cover (compiled)
    # in place on [start, stop). Views indexed from 0: with k in range(start, stop) numba cannot prove
    # k >= 0, keeps its negative-index wraparound in the loop, and LLVM does not vectorise it
    p, g, m, v = p[start:stop], g[start:stop], m[start:stop], v[start:stop]
    for k in range(p.size):
        new, m[k], v[k] = element(p[k], g[k], m[k], v[k], scalars)
        p[k] = new


@_jit
def adam_out(p, g, m, v, op, om, ov, *scalars):  # pragma: no cover (compiled)
    # into new arrays: the outputs overlap no input, so LLVM's run-time overlap check passes
    for k in range(p.size):
        op[k], om[k], ov[k] = element(p[k], g[k], m[k], v[k], scalars)


@_jit
def adam_square_sum(p, g, m, v, bounds, ops, *scalars):  # pragma: no cover (compiled)
    # the step over runs of 512 leaves (about 50K elements, in L2 for their sums), then their sums
    sums = np.empty(bounds.size - 1, p.dtype)
    for first in range(0, sums.size, 512):
        last = min(first + 512, sums.size)
        adam(p, g, m, v, bounds[first], bounds[last], *scalars)
        leaf_sums(p, bounds, first, last, sums)
    return tree_total(sums, ops)
