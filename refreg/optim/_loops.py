"""The optimizers' compiled loops (numba only): Adam's step, and NumPy's pairwise sum of squares for CPR's R.

The Python side, the rules these loops follow and the tests are in :mod:`refreg.optim._accel`; this module is
imported only when numba is installed.

- :func:`adam`, :func:`adam_out`: ``kernels.adam_kernel`` on every element, in place or into new arrays.
- :func:`square_sum`, :func:`adam_square_sum`: ``np.sum(x * x)`` bit for bit (alone, or of θ_new within Adam's
  pass). NumPy sums a float array pairwise down to leaves of at most 128 elements, each with eight running
  accumulators; :func:`refreg._pairwise.pairwise_leaves` gives that tree as data. :func:`leaf_sums` sums the
  leaves with the same eight accumulators as LLVM vector adds, one leaf at a time
  (:func:`combined_square_lanes`), and :func:`tree_total` adds the leaf sums up the tree.

Why one module of module-level functions: numba keys a function's disk cache on the pickled values of its
closure, and a compiled function or an intrinsic pickles with an identifier drawn anew in every process, so
kernels that held others in a closure were recompiled in every process (0.3–1.5 s each) and added an entry to
the cache each time. And numba decides that a cached function is stale from its own source file only: a
kernel calling a kernel of another file would keep running the old code after an edit there. One file keeps
every caller and callee invalidated together.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from refreg._numba import JIT_OPTIONS

__all__ = ["adam", "adam_out", "adam_square_sum", "square_sum"]

_jit = njit(**JIT_OPTIONS)


@intrinsic
def combined_square_lanes(typingctx, x, start, stop):
    """One NumPy pairwise leaf's sum of squares without its last ``n % 8`` elements.

    ``combined_square_lanes(x, start, stop)`` is ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))`` of the
    eight lane sums ``r_j = x[start + j]² + x[start + j + 8]² + …`` up to ``stop`` (``stop − start`` a multiple
    of 8, at least 8), each added in that order, as NumPy's eight accumulators and its final combination add
    them. Written as LLVM vector operations, one ``<8 x float>`` accumulator whose lanes are combined by
    shuffles (the same additions, lane-wise), because LLVM does not vectorise eight scalar accumulators
    (measured: 0.4 ns per element, slower than NumPy's own sum). No fast-math flags: every multiply and add is
    rounded as NumPy's. One leaf at a time: the next leaf's chain is independent, so the processor overlaps
    them; four leaves interleaved by hand were as fast from cache and 2.0–3.3× slower from memory (four streams;
    docs/performance.md). ``x`` must be a C-contiguous 1-D array (the vector loads read consecutive memory);
    any other is a typing error.
    """
    if not isinstance(x, types.Array) or x.ndim != 1 or x.layout != "C":
        return (
            None  # no signature: numba reports a typing error instead of reading the wrong memory
        )
    dtype = x.dtype
    signature = dtype(x, start, stop)

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        vector = ir.VectorType(context.get_value_type(dtype), 8)

        def square(i):  # x[i:i + 8]², an unaligned vector load
            pointer = builder.bitcast(builder.gep(data, [i]), vector.as_pointer())
            y = builder.load(pointer, align=dtype.bitwidth // 8)
            return builder.fmul(y, y)

        def pairs(
            value, lanes
        ):  # (lane 0 + lane 1, lane 2 + lane 3, ...): one level of the combination
            def pick(first):
                mask = ir.VectorType(ir.IntType(32), lanes // 2)
                indices = ir.Constant(mask, list(range(first, lanes, 2)))
                return builder.shuffle_vector(value, ir.Constant(value.type, ir.Undefined), indices)

            return builder.fadd(pick(0), pick(1))

        start, stop = args[1], args[2]
        eight = ir.Constant(start.type, 8)
        accumulator = cgutils.alloca_once(builder, vector)
        builder.store(square(start), accumulator)
        with cgutils.for_range_slice(builder, builder.add(start, eight), stop, eight) as (i, _):
            builder.store(builder.fadd(builder.load(accumulator), square(i)), accumulator)
        # (r0 + r1, r2 + r3, r4 + r5, r6 + r7), ((r0 + r1) + (r2 + r3), (r4 + r5) + (r6 + r7)), their sum
        total = pairs(pairs(pairs(builder.load(accumulator), 8), 4), 2)
        return builder.extract_element(total, ir.Constant(ir.IntType(32), 0))

    return signature, codegen


@_jit
def leaf_sum(x, start, stop, combined):  # pragma: no cover (compiled)
    # NumPy's pairwise leaf, x[start:stop] squared: the combined lane sums (combined_square_lanes), then the
    # last n % 8 squares one by one
    res = combined
    for i in range(stop - (stop - start) % 8, stop):
        res += x[i] * x[i]
    return res


@_jit
def short_leaf_sum(x, start, stop):  # pragma: no cover (compiled)
    # a leaf of fewer than 8 elements (only a whole array that short): NumPy adds them to 0 one by one
    res = x.dtype.type(0.0)
    for i in range(start, stop):
        res += x[i] * x[i]
    return res


@_jit
def leaf_sums(x, bounds, first, last, sums):  # pragma: no cover (compiled)
    # sums[j] for the leaves j in [first, last)
    for j in range(first, last):
        a, b = bounds[j], bounds[j + 1]
        if b - a < 8:
            sums[j] = short_leaf_sum(x, a, b)
        else:
            sums[j] = leaf_sum(x, a, b, combined_square_lanes(x, a, b - (b - a) % 8))


@_jit
def tree_total(sums, ops):  # pragma: no cover (compiled)
    # the leaves' sums added up NumPy's tree: ops in postfix, 0 = push the next leaf's sum, 1 = add the top two
    stack = np.empty(64, sums.dtype)
    top = 0
    leaf = 0
    for op in ops:
        if op == 0:
            stack[top] = sums[leaf]
            top += 1
            leaf += 1
        else:
            top -= 1
            stack[top - 1] = stack[top - 1] + stack[top]
    return stack[0]


@_jit
def square_sum(x, bounds, ops):  # pragma: no cover (compiled)
    sums = np.empty(bounds.size - 1, x.dtype)
    leaf_sums(x, bounds, 0, sums.size, sums)
    return tree_total(sums, ops)


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
