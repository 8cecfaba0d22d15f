"""One code path for every array library.

Every public function of refreg takes its array namespace ``xp`` from its inputs (array-api-compat) and uses
only array-API calls on it, so the same code runs on NumPy, CuPy and the strict stand-in ``array_api_strict``.
Randomness is drawn on the host with :class:`numpy.random.Generator` and moved with ``xp.asarray``: a NumPy
run and a CuPy run with the same seed start from identical numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "all_finite",
    "as_generator",
    "blockwise_into",
    "check_device",
    "check_namespace",
    "check_param_dtype",
    "float_dtype",
    "get_namespace",
    "host_namespace",
    "is_array",
    "namespace_of_params",
    "on_device_of",
    "to_numpy",
    "zero_d_array",
]


def is_array(x: Any) -> bool:
    """True for an array of any array-API library (NumPy, CuPy, array_api_strict, ...)."""
    if type(x) is np.ndarray:  # the common case, without array-api-compat's look-ups
        return True
    return array_api_compat.is_array_api_obj(x) and not isinstance(x, (int, float, bool, complex))


def get_namespace(*arrays: Any, xp: Any = None) -> Any:
    """The array namespace shared by ``arrays`` (``xp`` short-circuits the look-up).

    Raises
    ------
    TypeError
        If the arrays come from different array libraries, or one is not an array.
    """
    if xp is not None:
        return xp
    arrays = tuple(a for a in arrays if a is not None)
    if arrays and all(type(a) is np.ndarray for a in arrays):
        # what array_namespace returns for NumPy arrays, without its per-array look-ups (~4 µs per array)
        return _NUMPY_NAMESPACE
    for a in arrays:
        if not is_array(a):
            raise TypeError(f"expected an array, got {type(a).__name__}: {a!r:.80}")
    try:
        return array_api_compat.array_namespace(*arrays)
    except TypeError as err:
        kinds = sorted({type(a).__module__ + "." + type(a).__name__ for a in arrays})
        raise TypeError(f"arrays come from different array libraries: {kinds}") from err


_NUMPY_NAMESPACE = array_api_compat.array_namespace(np.empty(0))
# the dtypes refreg accepts for parameters, as NumPy dtypes (the fast paths test membership against them)
HOST_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def namespace_of_params(params: Mapping[str, Any], *, name: str = "params") -> Any:
    """Namespace of a dict of arrays, checking that every value is a float32 or float64 array with elements.

    Raises
    ------
    TypeError
        If ``params`` is not a non-empty dict of arrays, or a value's dtype is not float32/float64.
    ValueError
        If a value has no elements (a zero in its shape).
    """
    if not isinstance(params, Mapping) or len(params) == 0:
        raise TypeError(f"{name} must be a non-empty dict of arrays, got {type(params).__name__}")
    if all(
        type(v) is np.ndarray and v.dtype in HOST_FLOATS and v.size for v in params.values()
    ):  # the checks below pass: NumPy float32/float64 arrays with elements (fewer look-ups)
        return _NUMPY_NAMESPACE
    for key, value in params.items():
        if not is_array(value):
            raise TypeError(f"{name}[{key!r}] must be an array, got {type(value).__name__}")
    xp = get_namespace(*params.values())
    for key, value in params.items():
        check_param_dtype(f"{name}[{key!r}]", value, xp)
        if any(s == 0 for s in value.shape):
            raise ValueError(
                f"{name}[{key!r}] must hold at least one element, got shape {tuple(value.shape)}"
            )
    return xp


def check_param_dtype(name: str, value: Any, xp: Any) -> None:
    """refreg's one dtype policy: parameters are float32 or float64, anything else is a ``TypeError``.

    float16 overflows in Adam's second moment (and has no BLAS), longdouble exists only on some hosts and
    backends, complex/integer/bool/object arrays are not parameters of a real-valued loss.
    """
    if value.dtype not in (xp.float32, xp.float64):
        raise TypeError(f"{name} must have dtype float32 or float64, got {value.dtype}")


def float_dtype(xp: Any, dtype: Any) -> Any:
    """Resolve ``"float32"``/``"float64"`` (or a dtype object) to ``xp``'s dtype; anything else is an error."""
    if isinstance(dtype, str):
        if dtype not in ("float32", "float64"):
            raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        return getattr(xp, dtype)
    for name in ("float32", "float64"):
        if dtype == getattr(xp, name):
            return dtype
    raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")


def as_generator(rng: Any) -> np.random.Generator:
    """The ``rng=`` argument of every random function: None (fresh entropy), an int seed, or a :class:`numpy.random.Generator`.

    A Generator is used as it is (its state advances), so a caller keeps control of the stream.
    """
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        if rng is not None and rng < 0:
            raise ValueError(f"rng seed must be a non-negative int, got {rng!r}")
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(
        f"rng must be None, an int or a numpy.random.Generator, got {type(rng).__name__}"
    )


def default_namespace(xp: Any = None) -> Any:
    """The namespace to create arrays in: ``xp`` if given, else NumPy (wrapped by array-api-compat).

    Raises
    ------
    TypeError
        ``xp`` is not an array namespace (see :func:`check_namespace`).
    """
    if xp is None:
        return array_api_compat.array_namespace(np.empty(0))
    return check_namespace(xp)


def check_namespace(xp: Any) -> Any:
    """``xp`` itself if it is None or an array namespace module (``asarray``, ``float32``, ``float64``).

    A module's name (``"numpy"``) or any other object would fail later with an ``AttributeError`` that names
    neither the argument nor what it accepts: ``TypeError`` naming ``xp`` instead, before any work.
    """
    if xp is not None and (
        isinstance(xp, (str, bytes))
        or not callable(getattr(xp, "asarray", None))
        or not all(hasattr(xp, name) for name in ("float32", "float64"))
    ):
        raise TypeError(
            "xp must be None or an array namespace module such as numpy or array_api_strict "
            f"(the module itself, not its name), got {type(xp).__name__} {xp!r:.60}"
        )
    return xp


def to_numpy(x: Any) -> np.ndarray:
    """An array of any library as a host NumPy array (NumPy input is returned as is); for saving, plotting, tests."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.generic):
        return np.asarray(x)
    if array_api_compat.is_cupy_array(x):
        return x.get()
    try:
        return np.from_dlpack(x)
    except (TypeError, AttributeError, RuntimeError, BufferError):
        return np.asarray(x)


def scalar(x: Any) -> float:
    """A 0-d array (or Python number) as a Python float; a host sync on a GPU."""
    if isinstance(x, (int, float)):
        return float(x)
    return float(to_numpy(x))


# Elements per block in ``elementwise``: 128 Ki elements (512 KiB per float32 temporary), so the dozen temporaries
# of an Adam step stay in L2/L3 and main memory sees each input once and each output once, while the ~1 µs of
# Python per NumPy call is paid on enough elements. Measured (thread CPU time, pure Adam step, docs/performance.md):
# 12.1M params 84 ms at 16 Ki, 73 ms at 64 Ki and at 128 Ki; 0.27M params 0.97, 0.92, 0.71 ms (a 235k tensor is
# then one block).
CACHE_BLOCK = 131072


def check_device(xp: Any, device: Any) -> dict[str, Any]:
    """Keyword arguments that create arrays of ``xp`` on ``device`` (``{}`` for None: the default device).

    Raises
    ------
    ValueError
        ``xp`` has no such device; the message names the argument and the library's reason.
    """
    if device is None:
        return {}
    try:
        xp.zeros((0,), device=device)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"device {device!r} is not a device of {getattr(xp, '__name__', xp)!s}: {err}"
        ) from None
    return {"device": device}


def on_device_of(like: Any) -> dict[str, Any]:
    """Keyword arguments that create a new array on ``like``'s device: ``xp.ones(n, **on_device_of(W))``.

    Arrays made from shapes (``ones``, ``zeros``, ``arange``) or host data land on the library's default
    device; combined with inputs on another device (a second GPU) they would fail. NumPy has one device, and
    NumPy 1.26's creation functions take no ``device``: nothing is passed for NumPy arrays.
    """
    if isinstance(like, (np.ndarray, np.generic)):
        return {}
    return {"device": array_api_compat.device(like)}


def zero_d_array(x: Any) -> Any:
    """``x``, or the 0-d array of a NumPy scalar ``x`` (same value and dtype).

    NumPy arithmetic on 0-d arrays returns scalars, and ``np.float64`` is a Python float, which the next
    update's checks rightly refuse as an array: the updates hand 0-d parameters and state back as 0-d arrays.
    """
    return np.asarray(x) if isinstance(x, np.generic) else x


def elementwise(fn: Any, *arrays: Any, n_out: int = 1, block: int | None = None) -> Any:
    """Apply the elementwise ``fn(*arrays) -> n_out arrays`` block by block on the host, whole on a device.

    NumPy evaluates every operator as a full pass over memory; an Adam step written as ten operators then
    moves ten times the bytes it needs. Evaluating ``fn`` on cache-sized blocks of the flattened inputs keeps
    the temporaries in cache. The result is bitwise the same as ``fn(*arrays)`` (every operation is
    elementwise). Arrays must share one shape; outputs are new arrays of that shape (inputs are never written).
    On CuPy and other libraries ``fn`` runs once on the whole arrays (their kernels are launched per operator
    and blocking would only add launches).
    """
    xp = get_namespace(*arrays)
    shape = tuple(arrays[0].shape)
    size = 1
    for s in shape:
        size *= s
    block = CACHE_BLOCK if block is None else block
    if not array_api_compat.is_numpy_namespace(xp) or size <= 2 * block:
        out = fn(*arrays)
        if shape == ():
            out = zero_d_array(out) if n_out == 1 else tuple(zero_d_array(o) for o in out)
        return out
    flat = [xp.reshape(a, (-1,)) for a in arrays]
    first = fn(*(f[:block] for f in flat))
    single = n_out == 1
    first = (first,) if single else tuple(first)
    outs = [xp.empty((size,), dtype=o.dtype) for o in first]
    for o, part in zip(outs, first, strict=True):
        o[:block] = part
    for start in range(block, size, block):
        stop = min(start + block, size)
        parts = fn(*(f[start:stop] for f in flat))
        parts = (parts,) if single else parts
        for o, part in zip(outs, parts, strict=True):
            o[start:stop] = part
    outs = [xp.reshape(o, shape) for o in outs]
    return outs[0] if single else tuple(outs)


# Elements per block in ``blockwise_into``: the fused kernels keep only two scratch blocks besides the streamed
# inputs and outputs, so a larger block fits the cache; 64 Ki elements (256 KiB in float32) amortises the ~1 µs
# of Python per NumPy call over enough work (measured in docs/performance.md).
FUSED_BLOCK = 65536


def blockwise_into(
    kernel: Any,
    inputs: tuple[Any, ...],
    outputs: tuple[Any, ...],
    *,
    n_scratch: int = 0,
    block: int | None = None,
) -> None:
    """Run ``kernel(*input_blocks, *output_blocks, *scratch_blocks)`` over matching blocks (NumPy only).

    The speed path's loop: ``kernel`` writes its results into the output blocks with ``out=`` ufunc calls, so
    no temporary is allocated per block and none of the size of the arrays. Inputs are any NumPy arrays of one
    size (flattened in C order); outputs must be C-contiguous NumPy arrays of that size and may *be* inputs
    (an in-place update) provided ``kernel`` reads each aliased block before it writes it. Scratch blocks have
    the first output's dtype. Every operation being elementwise, the result is the same bit for bit for any
    block size.
    """
    for o in outputs:
        if not (isinstance(o, np.ndarray) and o.flags.c_contiguous and o.flags.writeable):
            raise ValueError("blockwise_into needs writeable C-contiguous NumPy output arrays")
    size = outputs[0].size
    block = FUSED_BLOCK if block is None else block
    # the ndarray methods, not np.reshape/np.empty(...)'s Python wrappers: this runs per tensor per step
    flat_in = [a.reshape(-1) for a in inputs]
    flat_out = [o.reshape(-1) for o in outputs]
    scratch = [np.empty(min(block, size), dtype=outputs[0].dtype) for _ in range(n_scratch)]
    if size <= block:
        kernel(*flat_in, *flat_out, *scratch)
        return
    for start in range(0, size, block):
        stop = min(start + block, size)
        n = stop - start
        kernel(
            *[a[start:stop] for a in flat_in],
            *[o[start:stop] for o in flat_out],
            *[s[:n] for s in scratch],
        )


def all_finite(x: Any, *, nonnegative: bool = False) -> bool:
    """True iff every element of ``x`` is finite (and ``>= 0`` with ``nonnegative``); one host sync.

    The validation kernel of every optimizer step (gradients, moments) and forward pass (inputs, parameters).
    ``all(isfinite(x))`` writes a bool array and reads it again; on a contiguous NumPy float array a dot product
    ``x·x`` reads ``x`` once in BLAS: a NaN or inf makes it NaN or inf, so a finite value proves every element
    finite (and ``min(x) >= 0``, another read, proves the sign). Only when the dot product is not finite (a
    NaN, an inf, or finite values whose squares overflow) is the exact elementwise test run, so the answer is
    always the exact one.
    """
    if (
        isinstance(x, np.ndarray)
        and x.dtype in (np.float32, np.float64)
        and x.flags.c_contiguous
        and x.size > 0
    ):
        flat = x.reshape(-1)
        # an overflow only sends us to the exact test below; an underflow (tiny entries) changes nothing here,
        # and must not raise under a caller's np.errstate(all="raise")
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            square_sum = np.dot(flat, flat)
        if math.isfinite(square_sum) and (not nonnegative or flat.min() >= 0):
            return True
    xp = get_namespace(x)
    ok = xp.all(xp.isfinite(x))
    if nonnegative:
        ok = ok & xp.all(x >= 0)
    return bool(ok)


def host_namespace(xp: Any) -> Any:
    """``numpy`` itself for array-api-compat's NumPy namespace, else ``xp`` unchanged (a speed path).

    array-api-compat wraps many NumPy functions (``where``, ``ones_like``, ``sign``, ...) in Python shims that
    check devices and keywords on every call: a few microseconds each, which on small arrays (the marginals of
    the sparse regularizers) cost more than the arithmetic. Code that makes only calls whose NumPy and array-API
    meanings agree can run on ``numpy`` directly; the results are the same bit for bit
    (``tests/test_speed_paths.py`` checks every sparse regularizer).
    """
    return np if array_api_compat.is_numpy_namespace(xp) else xp
