"""The optimizers' optional compiled kernel (numba, the ``fast`` extra): the donated Adam step in one loop.

The donated Adam step of :mod:`refreg.optim._fused` is thirteen to sixteen ``out=`` ufunc calls per cache block:
every intermediate of ``kernels.adam_kernel`` is written to a scratch block and read back, so at 12M float32
parameters it ran at twice the copy roofline of its seven array passes (docs/performance.md). With numba
installed (:mod:`refreg._numba`) it is one loop that reads θ, g, m, v and writes θ, m, v once per element:

- :func:`adam_step_in_place` and :func:`adam_step` (into new arrays): the operations of
  ``kernels.adam_kernel`` in its order, on scalars cast to the arrays' dtype first (as NumPy casts a Python
  float operand of an array: NEP 50, and NumPy 1.x's value-based casting for ndim ≥ 1), compiled with NumPy's
  error model (a division by zero gives inf or NaN as in NumPy; Python's would raise, and its check keeps
  LLVM from vectorising the loop), without fast-math and so without fused multiply-adds;
- :func:`adam_step_square_sum_in_place`: the same step, also returning CPR's ``R = Σθ_new²`` as ``np.sum(θ·θ)``
  bit for bit, and :func:`square_sum` (R alone). NumPy sums a float array pairwise down to leaves of at most
  128 elements, each with eight running accumulators (:func:`refreg._backend.pairwise_leaves`); the kernel
  steps a run of 512 leaves (about 50K elements), sums them from L2 with the same eight accumulators as LLVM
  vector adds, four leaves at once (:func:`_interleaved_square_lanes`), and adds the leaves' sums up NumPy's
  tree. (Eight scalar accumulators in a numba loop are not vectorised by LLVM: 4.9 ms on 12M float32 elements
  where NumPy's multiply and sum took 4.6; one vector chain per leaf waits on each add's latency and was no
  faster than NumPy. Measured gain in docs/performance.md.)

``tests/test_optim_accel.py`` checks them against the NumPy kernels bit for bit on hypothesis-drawn arrays with
zeros, ``-0.0``, subnormals, infinities and extreme values, for float32 and float64, Adam and AdamW, both
branches of torch's lerp. (A NaN parameter, which the update does not reject, gives NaN on both paths, but
not always the same NaN: a review found 0x7fc00000 from the loop's scalar tail where NumPy gave 0xffc00000.) They run only on
C-contiguous NumPy float32/float64 arrays of one dtype and ndim ≥ 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refreg import _numba
from refreg._backend import HOST_FLOATS, pairwise_blocks, pairwise_leaves
from refreg.optim.kernels import AdamStepCoefficients

__all__ = [
    "adam_step",
    "adam_step_in_place",
    "adam_step_square_sum_in_place",
    "square_sum",
    "usable",
]


def usable(*arrays: Any) -> bool:
    """The kernels apply: numba on, and every array a C-contiguous float32/float64 ndarray of one dtype, ndim ≥ 1.

    0-d arrays take the NumPy code: it returns NumPy scalars for them, and NumPy 1.x computes a 0-d float32
    operand with a Python float in float64.
    """
    if not all(
        type(a) is np.ndarray for a in arrays
    ):  # first: other libraries' dtypes are not NumPy's
        return False
    dtype = arrays[0].dtype
    return (
        dtype in HOST_FLOATS
        and arrays[0].ndim > 0
        and all(a.dtype == dtype and a.flags.c_contiguous for a in arrays)
        and _kernels() is not None
    )


def _scalars(c: AdamStepCoefficients, dtype: Any) -> tuple:
    """The step's scalars in the arrays' dtype, as NumPy casts a Python float operand of a ufunc (NEP 50).

    Every tensor of a step passes the same ``c``: the last result is kept for that object (by identity, so a
    ``-0.0`` never stands in for a ``0.0``), which saved ~3 µs per tensor, ~20 µs per step on the MLP.
    """
    last = _LAST_SCALARS[0]
    if last is not None and last[0] is c and last[1] == dtype:
        return last[2]
    out = _cast_scalars(c, dtype)
    _LAST_SCALARS[0] = (
        c,
        dtype,
        out,
    )  # one assignment: a concurrent reader sees the old or the new entry
    return out


_LAST_SCALARS: list[tuple | None] = [None]


def _cast_scalars(c: AdamStepCoefficients, dtype: Any) -> tuple:
    cast = dtype.type
    w = c.lerp_weight
    return (
        c.decay is not None,
        cast(1.0 if c.decay is None else c.decay),
        bool(c.l2),
        cast(c.l2),
        w < 0.5,  # torch's lerp: m + w·(g − m) for w < 0.5, else g − (g − m)·(1 − w)
        cast(w if w < 0.5 else 1.0 - w),
        cast(1.0 - c.beta2),
        cast(c.beta2),
        cast(c.bias_correction2_sqrt),
        cast(c.eps),
        cast(-c.step_size),
    )


def adam_step_in_place(c: AdamStepCoefficients, p: Any, g: Any, m: Any, v: Any) -> None:
    """One Adam step (coefficients ``c``, a ``kernels.AdamStepCoefficients``) written into ``p, m, v``.

    Each element is read before it is written. In place only: with separate outputs LLVM's run-time overlap
    check would fail for an output that is its input and fall back to the scalar loop.
    """
    flat = (a.reshape(-1) for a in (p, g, m, v))
    _kernels()["adam"](*flat, 0, p.size, *_scalars(c, p.dtype))


def adam_step(c: AdamStepCoefficients, p: Any, g: Any, m: Any, v: Any) -> tuple[Any, Any, Any]:
    """One Adam step into new arrays ``(θ, m, v)`` (the pure update's speed path); the inputs are not written."""
    out = tuple(np.empty_like(p) for _ in range(3))
    flat = (a.reshape(-1) for a in (p, g, m, v, *out))
    _kernels()["adam_out"](*flat, *_scalars(c, p.dtype))
    return out


def adam_step_square_sum_in_place(c: AdamStepCoefficients, p: Any, g: Any, m: Any, v: Any) -> Any:
    """:func:`adam_step_in_place`, returning ``np.sum(p * p)`` of the new θ bit for bit (a NumPy scalar).

    One compiled pass per node of NumPy's pairwise tree of at most :data:`NODE` elements (the whole tensor
    up to that size): the step runs over a run of the node's leaves (:func:`refreg._backend.pairwise_leaves`)
    while their sums of squares are taken from cache, then the sums are added up NumPy's tree.
    """
    flat = [a.reshape(-1) for a in (p, g, m, v)]
    scalars = _scalars(c, p.dtype)
    kernel = _kernels()["adam_square_sum"]

    def node(start: int, stop: int) -> Any:
        views = (a[start:stop] for a in flat)
        return p.dtype.type(kernel(*views, *pairwise_leaves(stop - start), *scalars))

    return _over_nodes(node, p.size)


def square_sum(x: Any) -> Any:
    """``np.sum(x * x)`` bit for bit (a NumPy scalar of x's dtype), in one compiled pass without a temporary.

    ``x``: a C-contiguous NumPy float32/float64 array, ndim ≥ 1 (:func:`usable`).
    """
    flat = x.reshape(-1)
    kernel = _kernels()["square_sum"]

    def node(start: int, stop: int) -> Any:
        return x.dtype.type(kernel(flat[start:stop], *pairwise_leaves(stop - start)))

    return _over_nodes(node, x.size)


# The largest node of NumPy's tree that one compiled call sums (2^22 elements). Above it the tree is walked in
# Python (pairwise_blocks): the leaf tables stay below ~33K leaves (~400 KB) and take ~20 ms to build once per
# node size, however large the tensor; a 10^9-element tensor's own table would hold 8M leaves.
NODE = 1 << 22


def _over_nodes(node: Any, size: int) -> Any:
    """``node(start, stop)``'s sums (NumPy scalars, so that they add in the arrays' dtype) up NumPy's tree."""
    if size <= NODE:
        return node(0, size)
    return pairwise_blocks(node, size, NODE)


def _kernels() -> dict[str, Any] | None:
    return _numba.kernels(_build)


def _build(jit: Any) -> dict[str, Any]:
    @jit
    def element(
        pk, gk, mk, vk, scalars
    ):  # pragma: no cover (compiled; inlined by LLVM into the loops)
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

    @jit
    def adam(p, g, m, v, start, stop, *scalars):  # pragma: no cover (compiled)
        # in place on [start, stop). Views indexed from 0: with k in range(start, stop) numba cannot prove
        # k >= 0, keeps its negative-index wraparound in the loop, and LLVM does not vectorise it
        p, g, m, v = p[start:stop], g[start:stop], m[start:stop], v[start:stop]
        for k in range(p.size):
            new, m[k], v[k] = element(p[k], g[k], m[k], v[k], scalars)
            p[k] = new

    @jit
    def adam_out(p, g, m, v, op, om, ov, *scalars):  # pragma: no cover (compiled)
        # into new arrays: the outputs overlap no input, so LLVM's run-time overlap check passes
        for k in range(p.size):
            op[k], om[k], ov[k] = element(p[k], g[k], m[k], v[k], scalars)

    lanes = _interleaved_square_lanes()

    @jit
    def leaf_sum(x, start, stop, r, base):  # pragma: no cover (compiled)
        # NumPy's pairwise leaf, x[start:stop] squared: ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)) of the
        # eight lane sums r[base:base + 8], then the last n % 8 squares one by one
        res = ((r[base] + r[base + 1]) + (r[base + 2] + r[base + 3])) + (
            (r[base + 4] + r[base + 5]) + (r[base + 6] + r[base + 7])
        )
        for i in range(stop - (stop - start) % 8, stop):
            res += x[i] * x[i]
        return res

    @jit
    def short_leaf_sum(x, start, stop):  # pragma: no cover (compiled)
        # a leaf of fewer than 8 elements (only a whole array that short): NumPy adds them to 0 one by one
        res = x.dtype.type(0.0)
        for i in range(start, stop):
            res += x[i] * x[i]
        return res

    @jit
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
                    r = lanes(x, s0, s1, s2, s3, e0, e1, e2, e3)
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
                r = lanes(x, a, a, a, a, b - (b - a) % 8, a + 8, a + 8, a + 8)
                sums[j] = leaf_sum(x, a, b, r, 0)
            j += 1

    @jit
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

    @jit
    def square_sum(x, bounds, ops):  # pragma: no cover (compiled)
        sums = np.empty(bounds.size - 1, x.dtype)
        leaf_sums(x, bounds, 0, sums.size, sums)
        return tree_total(sums, ops)

    @jit
    def adam_square_sum(p, g, m, v, bounds, ops, *scalars):  # pragma: no cover (compiled)
        # the step over runs of 512 leaves (about 50K elements, in L2 for their sums), then their sums
        sums = np.empty(bounds.size - 1, p.dtype)
        for first in range(0, sums.size, 512):
            last = min(first + 512, sums.size)
            adam(p, g, m, v, bounds[first], bounds[last], *scalars)
            leaf_sums(p, bounds, first, last, sums)
        return tree_total(sums, ops)

    return {
        "adam": adam,
        "adam_out": adam_out,
        "adam_square_sum": adam_square_sum,
        "square_sum": square_sum,
    }


def _interleaved_square_lanes() -> Any:
    """A numba intrinsic: the eight lane sums of NumPy's pairwise leaf for four leaves at once.

    ``lanes(x, s0, s1, s2, s3, e0, e1, e2, e3)`` returns 32 values, leaf-major: for leaf i, lane j is
    ``x[s_i + j]² + x[s_i + j + 8]² + …`` up to ``e_i`` (``e_i − s_i`` a multiple of 8, at least 8), added in
    that order, as NumPy's eight accumulators add them. Written as LLVM vector operations because LLVM does not
    vectorise eight scalar accumulators (measured: 0.4 ns per element, slower than NumPy's own sum); the four
    leaves' chains are independent, so their adds overlap instead of each waiting on the last one's latency.
    No fast-math flags: every multiply and add is rounded as NumPy's.
    """
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def lanes(typingctx, x, s0, s1, s2, s3, e0, e1, e2, e3):
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

    return lanes
