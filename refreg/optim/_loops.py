"""The optimizers' compiled loops (numba only): Adam's step, and NumPy's pairwise sum of squares for CPR's R.

The Python side, the rules these loops follow and the tests are in :mod:`refreg.optim._accel`; this module is
imported only when numba is installed.

- :func:`adam`, :func:`adam_out`: ``kernels.adam_kernel`` on every element, in place or into new arrays.
- :func:`square_sum`, :func:`adam_square_sum`: ``np.sum(x * x)`` bit for bit (alone, or of θ_new within Adam's
  pass). NumPy sums a float array pairwise down to leaves of at most 128 elements, each with eight running
  accumulators; :func:`refreg._pairwise.pairwise_leaves` gives that tree as data. :func:`leaf_sums` sums the
  leaves with the same eight accumulators as LLVM vector adds, four leaves at once
  (:func:`interleaved_square_lanes`), and :func:`tree_total` adds the leaf sums up the tree.

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
def interleaved_square_lanes(typingctx, x, s0, s1, s2, s3, e0, e1, e2, e3):
    """The eight lane sums of NumPy's pairwise leaf for four leaves at once.

    ``interleaved_square_lanes(x, s0, s1, s2, s3, e0, e1, e2, e3)`` returns 32 values, leaf-major: for leaf i,
    lane j is ``x[s_i + j]² + x[s_i + j + 8]² + …`` up to ``e_i`` (``e_i − s_i`` a multiple of 8, at least 8), added in
    that order, as NumPy's eight accumulators add them. Written as LLVM vector operations because LLVM does not
    vectorise eight scalar accumulators (measured: 0.4 ns per element, slower than NumPy's own sum); the four
    leaves' chains are independent, so their adds overlap instead of each waiting on the last one's latency.
    No fast-math flags: every multiply and add is rounded as NumPy's.
    ``x`` must be a C-contiguous 1-D array (the vector loads read consecutive memory); any other is a typing
    error.
    """
    if not isinstance(x, types.Array) or x.ndim != 1 or x.layout != "C":
        return (
            None  # no signature: numba reports a typing error instead of reading the wrong memory
        )
    dtype = x.dtype
    signature = types.UniTuple(dtype, 32)(x, s0, s1, s2, s3, e0, e1, e2, e3)

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        vector = ir.VectorType(context.get_value_type(dtype), 8)

        def square(i):  # x[i:i + 8]², an unaligned vector load
            pointer = builder.bitcast(builder.gep(data, [i]), vector.as_pointer())
            y = builder.load(pointer, align=dtype.bitwidth // 8)
            return builder.fmul(y, y)

        starts, stops = args[1:5], args[5:9]
        eight = ir.Constant(starts[0].type, 8)
        accumulators = []
        for start in starts:
            accumulator = cgutils.alloca_once(builder, vector)
            builder.store(square(start), accumulator)
            accumulators.append(accumulator)
        lengths = [builder.sub(stop, start) for start, stop in zip(starts, stops, strict=True)]
        common = lengths[0]
        for length in lengths[1:]:
            common = builder.select(builder.icmp_signed("<", length, common), length, common)
        # the four chains side by side over the length they share, then each one's rest
        with cgutils.for_range_slice(builder, eight, common, eight, intp=eight.type) as (i, _):
            for start, accumulator in zip(starts, accumulators, strict=True):
                total = builder.fadd(builder.load(accumulator), square(builder.add(start, i)))
                builder.store(total, accumulator)
        for start, stop, accumulator in zip(starts, stops, accumulators, strict=True):
            rest = builder.add(start, common)
            with cgutils.for_range_slice(builder, rest, stop, eight, intp=eight.type) as (i, _):
                builder.store(builder.fadd(builder.load(accumulator), square(i)), accumulator)
        values = []
        for accumulator in accumulators:
            total = builder.load(accumulator)
            values += [
                builder.extract_element(total, ir.Constant(ir.IntType(32), j)) for j in range(8)
            ]
        return context.make_tuple(builder, sig.return_type, values)

    return signature, codegen


@_jit
def leaf_sum(x, start, stop, r, base):  # pragma: no cover (compiled)
    # NumPy's pairwise leaf, x[start:stop] squared: ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)) of the
    # eight lane sums r[base:base + 8], then the last n % 8 squares one by one
    res = ((r[base] + r[base + 1]) + (r[base + 2] + r[base + 3])) + (
        (r[base + 4] + r[base + 5]) + (r[base + 6] + r[base + 7])
    )
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
    # sums[j] for the leaves j in [first, last), four at a time: four independent chains of vector adds
    # instead of one, which would wait on each add's latency
    j = first
    while j < last:
        if j + 4 <= last:
            s0, s1, s2, s3, s4 = (
                bounds[j],
                bounds[j + 1],
                bounds[j + 2],
                bounds[j + 3],
                bounds[j + 4],
            )
            if s1 - s0 >= 8 and s2 - s1 >= 8 and s3 - s2 >= 8 and s4 - s3 >= 8:
                e0, e1, e2, e3 = (
                    s1 - (s1 - s0) % 8,
                    s2 - (s2 - s1) % 8,
                    s3 - (s3 - s2) % 8,
                    s4 - (s4 - s3) % 8,
                )
                r = interleaved_square_lanes(x, s0, s1, s2, s3, e0, e1, e2, e3)
                sums[j] = leaf_sum(x, s0, s1, r, 0)
                sums[j + 1] = leaf_sum(x, s1, s2, r, 8)
                sums[j + 2] = leaf_sum(x, s2, s3, r, 16)
                sums[j + 3] = leaf_sum(x, s3, s4, r, 24)
                j += 4
                continue
        a, b = bounds[j], bounds[j + 1]
        if b - a < 8:
            sums[j] = short_leaf_sum(x, a, b)
        else:  # one leaf alone; the other three chains are dummies over its first 8 elements
            r = interleaved_square_lanes(x, a, a, a, a, b - (b - a) % 8, a + 8, a + 8, a + 8)
            sums[j] = leaf_sum(x, a, b, r, 0)
        j += 1


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
