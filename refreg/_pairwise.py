"""NumPy's pairwise summation order, as code and as data (NumPy only).

``np.sum`` of a contiguous float array of n elements adds ``sum(x[:h]) + sum(x[h:])`` with ``h = split(n)``,
recursively, down to nodes of at most :data:`PAIRWISE_LEAF` elements, each summed with eight running
accumulators (numpy/_core/src/umath, ``pairwise_sum``). The speed paths that must equal ``np.sum`` bit for bit
without its temporary follow the same tree: :func:`pairwise_blocks` calls a reduction per node of a chosen size
and adds the results in NumPy's order; :func:`pairwise_leaves` lists NumPy's own leaves and additions for a
compiled kernel (:mod:`refreg.optim._loops`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from refreg import _backend

__all__ = ["PAIRWISE_LEAF", "pairwise_blocks", "pairwise_leaves", "split"]

# NumPy sums a node of at most this many elements without splitting it (its PW_BLOCKSIZE)
PAIRWISE_LEAF = 128


def split(n: int) -> int:
    """Where NumPy splits a node of ``n > 128`` elements: ``h = n//2 − (n//2) % 8`` (a multiple of its unroll)."""
    half = n // 2
    return half - half % 8


def pairwise_blocks(reduce_block: Any, size: int, block: int | None = None) -> Any:
    """``Σ`` of per-block partial sums added in the order of NumPy's pairwise summation (NumPy only).

    NumPy sums a contiguous float array of n > 128 elements as ``sum(x[:h]) + sum(x[h:])`` with
    ``h = split(n)``, recursively. Splitting the same way down to leaves of at most ``block``
    elements, calling ``reduce_block(start, stop)`` on each leaf in order (it must return ``np.sum`` of the
    leaf's values, e.g. of ``θ²`` computed into a scratch block) and adding the results up the same tree gives
    exactly ``np.sum`` of the whole array, bit for bit, without an array of the whole size
    (``tests/test_speed_paths.py`` checks it against ``np.sum``).
    """
    # a leaf must be a node of NumPy's tree: nodes of <= 128 elements are summed without splitting
    block = max(_backend.FUSED_BLOCK if block is None else block, PAIRWISE_LEAF)

    def tree(start: int, stop: int) -> Any:
        if stop - start <= block:
            return reduce_block(start, stop)
        half = split(stop - start)
        return tree(start, start + half) + tree(start + half, stop)

    return tree(0, size)


@functools.cache
def pairwise_leaves(size: int) -> tuple[np.ndarray, np.ndarray]:
    """NumPy's pairwise summation tree of ``size`` elements, as data: ``(bounds, ops)`` (NumPy only).

    The tree of :func:`pairwise_blocks` split all the way down to NumPy's own leaves, nodes of at most 128
    elements that NumPy sums with eight running accumulators. ``bounds`` (int64, ``n_leaves + 1``) are the
    leaves' first indices and the end; ``ops`` (int8) is the tree in postfix order, 0 = the next leaf's sum,
    1 = add the two sums on top of the stack. A compiled kernel that sums each leaf as NumPy does and then runs
    ``ops`` gets ``np.sum`` bit for bit (:mod:`refreg.optim._accel`, which asks for nodes of at most 2^22
    elements: ~33K leaves, ~330 KB, built in 14–20 ms). Cached per size without a limit (a bounded cache
    rebuilt every table on every step for a model with more sizes than it held; the tables take ~2.5 % of
    the bytes of a float32 tensor of their size); the arrays are read-only.
    """
    bounds, ops = [0], []
    pending = [(0, size)]  # nodes still to visit, depth first, left child first; None marks an add
    while pending:
        node = pending.pop()
        if node is None:
            ops.append(1)
            continue
        start, n = node
        if n <= PAIRWISE_LEAF:
            bounds.append(start + n)
            ops.append(0)
            continue
        half = split(n)
        pending += [None, (start + half, n - half), (start, half)]
    leaves = np.array(bounds, dtype=np.int64), np.array(ops, dtype=np.int8)
    for a in leaves:
        a.flags.writeable = False
    return leaves
