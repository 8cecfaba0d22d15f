"""The optimizers' speed path: fused block-wise kernels that write into given buffers (``donate=True``).

The reference kernels in :mod:`refreg.optim.optimizers` document the maths: one expression per line, every
operator a new array. NumPy evaluates each operator as a separate pass, so the reference Adam step allocates a
dozen temporaries (per cache block) and three fresh outputs per parameter tensor; a fresh 48 MB output costs a
page fault per 4 KiB page on first touch. The kernels here perform *the same floating-point operations on the
same operands in the same order* (only commutative swaps such as ``w·x`` for ``x·w``), each with ``out=`` into
one of two scratch blocks or into the output, so their results are bit for bit those of the reference
(``tests/test_optim_fused.py`` checks it) while nothing of the arrays' size is allocated.

``update(..., donate=True)`` uses them with the outputs being the donated parameters and state buffers
themselves: the caller gives those arrays up, they are overwritten with the new values and returned. This is the
opt-in, in-place analogue of ``torch.optim``'s ``step()``; the default pure update is unchanged.

Donation rules (checked before anything is written): every donated array is a writeable array, and no donated
array shares memory with another donated array or with a gradient, of any parameter. The checks read each
array's memory: NumPy arrays directly, other host arrays (``array_api_strict``) through a DLPack view, GPU
arrays (CuPy) through the byte range of ``__cuda_array_interface__``; an array offering none of these is
refused. NumPy arrays in C order go through the fused kernels; other arrays (CuPy, ``array_api_strict``,
strided NumPy views) get the reference result assigned into them (``buf[...] = new``), so ``donate=True``
means the same thing on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

try:  # NumPy 2
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # NumPy 1.26
    from numpy import byte_bounds

from refreg import _backend
from refreg._backend import blockwise_into
from refreg._pairwise import pairwise_blocks
from refreg.optim import _accel
from refreg.optim.kernels import AdamStepCoefficients

__all__ = ["adam_kernel_into", "assign_into", "check_donation", "sgd_kernel_into"]


def check_donation(
    xp: Any,
    grads: Mapping[str, Any],
    params: Mapping[str, Any],
    *buffers: Mapping[str, Any],
    names: tuple[str, ...] = (),
) -> bool:
    """Check that ``params`` and the state ``buffers`` can be donated; True if the fused NumPy path applies.

    ``names``: the buffers' names for the messages (e.g. ``"state.exp_avg"``; default ``"state"``).

    Every donated array is overwritten while the others are still being read, so no donated array may share
    memory with another donated array or with any gradient, of any parameter (a gradient that *is* another
    parameter, or two parameters that are overlapping views, would silently change the result).

    Raises
    ------
    ValueError
        A donated array is read-only, is used twice, or may overlap another donated array or a gradient (the
        in-place result would then be wrong), or its memory cannot be inspected (neither NumPy, DLPack on the
        host nor ``__cuda_array_interface__``); nothing has been written.
    """
    fused = array_api_compat.is_numpy_namespace(xp)
    labels = ["params", *(names[i] if i < len(names) else "state" for i in range(len(buffers)))]
    # (label, key, array, donated) of every array; names are formatted only for a message
    entries = []
    donated: dict[int, tuple[str, str]] = {}
    for key, p in params.items():
        for where, a in zip(labels, (p, *(b[key] for b in buffers)), strict=True):
            if id(a) in donated:
                raise ValueError(
                    f"donate=True: {where}[{key!r}] is the array {_name(*donated[id(a)])}; donated arrays "
                    "must be distinct"
                )
            donated[id(a)] = (where, key)
            memory = a if isinstance(a, np.ndarray) else _memory(a, where, key)
            entries.append((where, key, memory, True))
            if not _writeable(memory):
                raise ValueError(
                    f"donate=True needs writeable arrays; {where}[{key!r}] is read-only"
                )
            fused = fused and memory is a and a.flags.c_contiguous
    for key, g in grads.items():
        if id(g) in donated:  # on every backend: the same object
            raise ValueError(
                f"donate=True: grads[{key!r}] is the donated array {_name(*donated[id(g)])}; it would be "
                "overwritten while it is read"
            )
        memory = g if isinstance(g, np.ndarray) else _memory(g, "grads", key)
        entries.append(("grads", key, memory, False))
    _check_overlap(entries)
    return fused


class DeviceSpan(NamedTuple):
    """The bytes ``[low, high)`` a device array may touch (``__cuda_array_interface__``), and its read-only flag."""

    low: int
    high: int
    readonly: bool


def _memory(a: Any, where: str, key: str) -> np.ndarray | DeviceSpan:
    """What the donation checks read of ``a``'s memory: a NumPy array viewing it, or a device span.

    A NumPy array is itself; a host array of another library (``array_api_strict``, a CPU tensor) is viewed
    through DLPack (``np.from_dlpack``, no copy, read-only flag kept), so its overlaps are found exactly as
    NumPy's; a GPU array (CuPy) gives its byte range from ``__cuda_array_interface__``. An array offering
    neither cannot be checked, and donating it could silently give wrong numbers: ValueError.
    """
    if isinstance(a, np.ndarray):
        return a
    try:  # a property that may raise (a torch CUDA tensor that requires grad raises RuntimeError)
        interface = getattr(a, "__cuda_array_interface__", None)
        if interface is not None:
            return _device_span(interface)
        return np.from_dlpack(a)
    except (
        Exception
    ) as err:  # any failure means the memory cannot be checked: refuse, as documented
        raise ValueError(
            f"donate=True: the memory of {where}[{key!r}] ({type(a).__module__}.{type(a).__name__}) cannot "
            f"be checked for overlaps ({type(err).__name__}: {err}); use donate=False"
        ) from None


def _device_span(interface: Mapping[str, Any]) -> DeviceSpan:
    """The byte range a ``__cuda_array_interface__`` array may touch (version 2 or 3: pointer, shape, strides)."""
    pointer, readonly = interface["data"]
    shape = tuple(interface["shape"])
    itemsize = np.dtype(interface["typestr"]).itemsize
    strides = interface.get("strides")
    if strides is None:  # C order
        strides = tuple(itemsize * math.prod(shape[i + 1 :]) for i in range(len(shape)))
    if math.prod(shape) == 0:
        return DeviceSpan(pointer, pointer, bool(readonly))
    low = pointer + sum(s * (n - 1) for s, n in zip(strides, shape, strict=True) if s < 0)
    high = (
        pointer + itemsize + sum(s * (n - 1) for s, n in zip(strides, shape, strict=True) if s > 0)
    )
    return DeviceSpan(low, high, bool(readonly))


def _writeable(memory: np.ndarray | DeviceSpan) -> bool:
    return memory.flags.writeable if isinstance(memory, np.ndarray) else not memory.readonly


def _name(where: str, key: str) -> str:
    return f"{where}[{key!r}]"


def _check_overlap(entries: list[tuple[str, str, Any, bool]]) -> None:
    """ValueError if a donated NumPy array shares memory with another donated array or a gradient.

    ``entries``: ``(label, key, array, donated)`` of every donated array and gradient. Arrays are grouped by the
    ndarray that owns their memory (the end of the ``.base`` chain): arrays of different owners cannot overlap.
    An array whose chain ends in another object (``frombuffer``, ``as_strided``, ``from_dlpack``, a memoryview,
    another library's buffer) may view any memory, an owned array's included, so if there is one, all arrays
    form a single group. Within a group the arrays are sorted by their byte range, so only arrays whose ranges
    intersect are compared, and those exactly (``np.shares_memory``: interleaved views such as ``flat[0::2]``
    and ``flat[1::2]`` do not overlap). Usually every group has one array and the check is linear in the number
    of arrays; otherwise it costs a sort.
    """
    groups: dict[Any, list] = {}
    foreign = False
    devices = [entry for entry in entries if isinstance(entry[2], DeviceSpan)]
    _check_device_overlap(devices)
    for entry in entries:
        a = entry[2]
        if not isinstance(a, np.ndarray):
            continue
        while isinstance(a.base, np.ndarray):
            a = a.base
        if a.base is not None:
            foreign = True
        groups.setdefault(id(a), []).append(entry)
    if foreign:  # memory reached through another object: compare everything with everything
        groups = {0: [entry for members in groups.values() for entry in members]}
    for members in groups.values():
        if len(members) < 2:
            continue
        spans = sorted(((*byte_bounds(e[2]), e) for e in members), key=lambda span: span[0])
        for i, (_, high_i, entry_i) in enumerate(spans):
            for low_j, _, entry_j in spans[i + 1 :]:
                if low_j >= high_i:  # sorted by start: no later range reaches into this one
                    break
                if (entry_i[3] or entry_j[3]) and _shares_memory(entry_i[2], entry_j[2]):
                    raise ValueError(
                        f"donate=True: {_name(*entry_i[:2])} and {_name(*entry_j[:2])} share memory; a "
                        "donated array must not overlap another donated array or a gradient"
                    )


def _check_device_overlap(entries: list[tuple[str, str, DeviceSpan, bool]]) -> None:
    """ValueError if two device byte ranges intersect, one of them donated.

    Conservative: the ranges of interleaved views (``x[0::2]``, ``x[1::2]``) intersect, so they are refused
    on a GPU, where NumPy's exact test is not available.
    """
    spans = sorted(entries, key=lambda entry: entry[2].low)
    for i, entry_i in enumerate(spans):
        for entry_j in spans[i + 1 :]:
            if entry_j[2].low >= entry_i[2].high:
                break
            empty = entry_i[2].low == entry_i[2].high or entry_j[2].low == entry_j[2].high
            if (entry_i[3] or entry_j[3]) and not empty:
                raise ValueError(
                    f"donate=True: {_name(*entry_i[:2])} and {_name(*entry_j[:2])} may share device memory "
                    "(their byte ranges intersect); a donated array must not overlap another donated array "
                    "or a gradient"
                )


def _shares_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """``np.shares_memory``, exact for strided views; an instance too hard to decide counts as sharing."""
    try:
        return bool(np.shares_memory(a, b, max_work=10_000))
    except np.exceptions.TooHardError:
        return True


def assign_into(target: Any, value: Any) -> Any:
    """``target[...] = value`` and return ``target``: the donated update on backends without the fused path."""
    target[...] = value
    return target


def adam_kernel_into(
    decay, l2, w, beta2, bias_correction2_sqrt, eps, step_size, p, g, m, v, op, om, ov, t1, t2
) -> None:
    """``kernels.adam_kernel`` on one block, writing theta, m, v into ``op, om, ov`` (may be p, m, v).

    Same operations and order as the reference; ``t1``, ``t2`` are scratch blocks. Every aliased input block
    is read before its output block is written.
    """
    if decay is not None:
        np.multiply(p, decay, out=op)  # p·(1 − lr·wd)
        p = op
    if l2:
        np.multiply(p, l2, out=t2)
        np.add(g, t2, out=t2)  # g + wd·p
        g = t2
    np.subtract(g, m, out=t1)
    if w < 0.5:  # torch's lerp, as in the reference
        np.multiply(t1, w, out=t1)
        np.add(m, t1, out=om)  # m + w·(g − m)
    else:
        np.multiply(t1, 1.0 - w, out=t1)
        np.subtract(g, t1, out=om)  # g − (g − m)·(1 − w)
    np.multiply(g, 1.0 - beta2, out=t1)
    np.multiply(t1, g, out=t1)  # (1 − β2)·g·g
    np.multiply(v, beta2, out=ov)
    np.add(ov, t1, out=ov)  # β2·v + (1 − β2)·g·g
    np.sqrt(ov, out=t1)
    np.divide(t1, bias_correction2_sqrt, out=t1)
    np.add(t1, eps, out=t1)  # denom
    np.multiply(om, -step_size, out=t2)
    np.divide(t2, t1, out=t2)
    np.add(p, t2, out=op)  # p + (−step_size)·m / denom


def adam_into(
    scalars: AdamStepCoefficients, p, g, m, v, op, om, ov, square_sum: bool = False
) -> Any:
    """The fused Adam step of one tensor into ``op, om, ov`` (block by block).

    ``square_sum=True`` also returns ``np.sum(op * op)`` of the new parameters, bit for bit, from the blocks
    while they are in cache (:func:`refreg._pairwise.pairwise_blocks`): CPR's R(θ) without another pass.
    In place (outputs ``p, m, v``) with numba installed, the step is :mod:`refreg.optim._accel`'s one loop.
    """

    # in place with numba installed: the compiled loop (the ``fast`` extra)
    if op is p and om is m and ov is v and _accel.usable(p, g, m, v):
        if square_sum:
            return _accel.adam_step_square_sum_in_place(scalars, p, g, m, v)
        _accel.adam_step_in_place(scalars, p, g, m, v)
        return None

    def kernel(p, g, m, v, op, om, ov, t1, t2):
        adam_kernel_into(*scalars, p, g, m, v, op, om, ov, t1, t2)

    if not square_sum:
        blockwise_into(kernel, (p, g, m, v), (op, om, ov), n_scratch=2)
        return None
    # the pairwise tree's leaves are 1/2 to 1 times ``block``: twice the plain block keeps their mean size
    block = max(2 * _backend.FUSED_BLOCK, 128)
    flat = [a.reshape(-1) for a in (p, g, m, v, op, om, ov)]
    t1, t2 = (np.empty(min(op.size, block), op.dtype) for _ in range(2))

    def leaf(start: int, stop: int) -> Any:
        n = stop - start
        kernel(*(a[start:stop] for a in flat), t1[:n], t2[:n])
        new = flat[4][start:stop]
        return np.add.reduce(np.multiply(new, new, out=t1[:n]))  # np.sum without its Python wrapper

    return pairwise_blocks(leaf, op.size, block)


def sgd_kernel_into(opt, lr, first, p, g, buf, op, ob, t1, t2) -> None:
    """``kernels.sgd_kernel`` on one block, writing theta (and the buffer) into ``op`` (and ``ob``).

    ``buf``/``ob`` are None without momentum. Same operations and order as the reference.
    """
    d = g
    if opt.weight_decay:
        np.multiply(p, opt.weight_decay, out=t2)
        np.add(g, t2, out=t2)  # g + wd·p
        d = t2
    if opt.momentum:
        if first:
            np.copyto(ob, d)  # torch: the first buffer is a copy of d, undamped
        else:
            np.multiply(buf, opt.momentum, out=ob)
            np.multiply(d, 1.0 - opt.dampening, out=t1)
            np.add(ob, t1, out=ob)  # momentum·buf + (1 − dampening)·d
        if opt.nesterov:
            np.multiply(ob, opt.momentum, out=t1)
            np.add(d, t1, out=t1)  # d + momentum·buf
            d = t1
        else:
            d = ob
    np.multiply(d, lr, out=t1)
    np.subtract(p, t1, out=op)  # p − lr·d


def sgd_into(opt, lr: float, first: bool, p, g, buf, op, ob) -> None:
    """The fused SGD step of one tensor into ``op`` (and ``ob`` with momentum), block by block."""
    if opt.momentum:
        blockwise_into(
            lambda p, g, b, op, ob, t1, t2: sgd_kernel_into(
                opt, lr, first, p, g, b, op, ob, t1, t2
            ),
            (p, g, buf),
            (op, ob),
            n_scratch=2,
        )
    else:
        blockwise_into(
            lambda p, g, op, t1, t2: sgd_kernel_into(opt, lr, first, p, g, None, op, None, t1, t2),
            (p, g),
            (op,),
            n_scratch=2,
        )
