"""The optimizers' speed path (``update(..., donate=True)``, fused block-wise kernels) against the pure update.

Bitwise: the fused kernels perform the reference's operations in the reference's order, so every parameter and
state buffer must have exactly the same bytes after several steps, for float32 and float64, for block sizes that
split the tensors unevenly, and on every backend (the fallback assigns the reference result).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_optim import REFREG_OPTIMIZERS

from refreg import _backend, _numba
from refreg._backend import to_numpy


def _problem(xp, dtype, seed=0, n_steps=4):
    rng = np.random.default_rng(seed)
    shapes = {"w": (37, 29), "b": (29,), "s": (1,)}
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    grads = [
        {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()} for _ in range(n_steps)
    ]
    conv = lambda d: {k: xp.asarray(v) for k, v in d.items()}  # noqa: E731
    return conv(params), [conv(g) for g in grads]


def _state_arrays(state):
    out = {}
    for field in state._fields:
        value = getattr(state, field)
        if isinstance(value, dict):
            out.update({f"{field}/{k}": v for k, v in value.items()})
    return out


def _same_bytes(a, b):
    a, b = np.asarray(to_numpy(a)), np.asarray(to_numpy(b))
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _copy(xp, d):
    return {k: xp.asarray(v, copy=True) for k, v in d.items()}


def _copy_state(xp, state):
    return state._replace(
        **{
            f: _copy(xp, getattr(state, f))
            for f in state._fields
            if isinstance(getattr(state, f), dict)
        }
    )


@pytest.mark.parametrize("kernels", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("block", [64, 10**9])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(REFREG_OPTIMIZERS))
def test_donated_update_is_bitwise_the_pure_update(name, dtype, block, kernels, monkeypatch):
    """With numba installed, ``numpy`` checks the NumPy fused kernels (numba off) and ``numba`` Adam's compiled
    loop; without numba both run the NumPy kernels."""
    monkeypatch.setattr(_backend, "FUSED_BLOCK", block)
    monkeypatch.setitem(_numba._STATE, "enabled", kernels)
    opt = REFREG_OPTIMIZERS[name]()
    params, grads = _problem(np, dtype)
    pure_p, pure_s = params, opt.init(params)
    don_p, don_s = _copy(np, params), _copy_state(np, opt.init(params))
    for g in grads:
        pure_p, pure_s = opt.update(g, pure_s, pure_p)
        arrays_before = {k: id(v) for k, v in {**don_p, **_state_arrays(don_s)}.items()}
        don_p, don_s = opt.update(g, don_s, don_p, donate=True)
        # the donated arrays themselves hold the result
        arrays_after = {k: id(v) for k, v in {**don_p, **_state_arrays(don_s)}.items()}
        assert arrays_after == arrays_before
        assert don_s.step == pure_s.step
        for key in params:
            assert _same_bytes(don_p[key], pure_p[key]), key
        pure_arrays = _state_arrays(pure_s)
        for key, value in _state_arrays(don_s).items():
            assert _same_bytes(value, pure_arrays[key]), key


@pytest.mark.parametrize("name", ["sgd_momentum", "adamw"])
def test_donated_update_on_every_backend(name, xp):
    opt = REFREG_OPTIMIZERS[name]()
    params, grads = _problem(xp, "float64")
    pure_p, pure_s = params, opt.init(params)
    don_p, don_s = _copy(xp, params), _copy_state(xp, opt.init(params))
    for g in grads:
        pure_p, pure_s = opt.update(g, pure_s, pure_p)
        don_p, don_s = opt.update(g, don_s, don_p, donate=True)
    for key in params:
        assert _same_bytes(don_p[key], pure_p[key])


def test_strided_arrays_take_the_reference_result():
    opt = REFREG_OPTIMIZERS["adam_l2"]()
    params, grads = _problem(np, "float32")
    pure_p, pure_s = opt.update(grads[0], opt.init(params), params)
    # Fortran-ordered copies: not C-contiguous, so the fused kernels do not apply; the result is assigned
    don_p = {k: np.asfortranarray(v) for k, v in params.items()}
    state = opt.init(don_p)
    don_p, don_s = opt.update(grads[0], state, don_p, donate=True)
    for key in params:
        assert _same_bytes(np.ascontiguousarray(don_p[key]), pure_p[key])
        assert _same_bytes(np.ascontiguousarray(don_s.exp_avg_sq[key]), pure_s.exp_avg_sq[key])


def test_donation_errors_leave_everything_untouched():
    opt = REFREG_OPTIMIZERS["adam"]()
    params, grads = _problem(np, "float32")
    state = opt.init(params)
    snapshot = {k: v.copy() for k, v in params.items()}
    params["b"].flags.writeable = False
    with pytest.raises(ValueError, match=r"read-only"):
        opt.update(grads[0], state, params, donate=True)
    params["b"].flags.writeable = True
    aliased = dict(grads[0], w=params["w"])
    with pytest.raises(ValueError, match=r"must not overlap|would be overwritten"):
        opt.update(aliased, state, params, donate=True)
    twice = state._replace(exp_avg=dict(state.exp_avg, w=state.exp_avg_sq["w"]))
    with pytest.raises(ValueError, match=r"must be distinct"):
        opt.update(grads[0], twice, params, donate=True)
    for key, value in params.items():
        np.testing.assert_array_equal(value, snapshot[key])
    for buffers in (state.exp_avg, state.exp_avg_sq):
        assert all(not np.any(b) for b in buffers.values())


def _adam_cpr_on_both():
    from refreg.cpr import adam_cpr

    return adam_cpr(1e-2, kappa_init="dependent", kappa_init_param=0.5, regularize={"a", "b"})


@pytest.mark.filterwarnings(
    "ignore:CPR l2 constraint step overshoots"
)  # a tiny problem: λ is large
@pytest.mark.parametrize(
    "make",
    [REFREG_OPTIMIZERS["sgd"], REFREG_OPTIMIZERS["adam"], _adam_cpr_on_both],
    ids=["sgd", "adam", "adam_cpr"],
)
def test_overlapping_array_api_strict_arrays_are_refused(make):
    """array_api_strict views share their buffer; the check reads them through DLPack. Before, only object
    identity was compared off NumPy, and a gradient viewing another parameter gave a result off by 0.25 (SGD)
    to 4.86 (AdamCPR) from the pure update (found by an audit)."""
    xs = pytest.importorskip("array_api_strict")
    opt = make()
    buf = xs.asarray(np.arange(1.0, 9.0))
    params = {"a": buf[0:4], "b": xs.asarray(np.ones(4))}
    grads = {"a": xs.asarray(np.ones(4)), "b": buf[2:6]}  # grads["b"] views params["a"]
    state = opt.init(params)
    before = np.asarray(to_numpy(buf)).copy()
    with pytest.raises(ValueError, match=r"params\['a'\] and grads\['b'\] share memory"):
        opt.update(grads, state, params, donate=True)
    assert np.asarray(to_numpy(buf)).tobytes() == before.tobytes()
    overlapping = {"a": buf[0:3], "b": buf[1:4]}
    with pytest.raises(ValueError, match=r"params\['a'\] and params\['b'\] share memory"):
        opt.update(
            {k: xs.asarray(np.ones(3)) for k in "ab"},
            opt.init(overlapping),
            overlapping,
            donate=True,
        )
    # interleaved views do not overlap: accepted, and equal to the pure update
    inter = {"a": buf[0::2], "b": buf[1::2]}
    g = {k: xs.asarray(np.full(4, 0.5)) for k in "ab"}
    pure, _ = opt.update(g, opt.init(inter), inter)
    expected = {k: np.asarray(to_numpy(v)).copy() for k, v in pure.items()}
    donated, _ = opt.update(g, opt.init(inter), inter, donate=True)
    for k in "ab":
        assert np.asarray(to_numpy(donated[k])).tobytes() == expected[k].tobytes()


def test_read_only_array_api_strict_array_is_refused_before_any_write():
    xs = pytest.importorskip("array_api_strict")
    opt = REFREG_OPTIMIZERS["adam"]()
    frozen = np.ones(3)
    frozen.flags.writeable = False
    params = {"a": xs.asarray(np.ones(3)), "b": xs.asarray(frozen)}
    state = opt.init(params)
    with pytest.raises(ValueError, match=r"params\['b'\] is read-only"):
        opt.update({k: xs.asarray(np.ones(3)) for k in "ab"}, state, params, donate=True)
    assert np.all(np.asarray(to_numpy(params["a"])) == 1.0)
    assert not np.any(np.asarray(to_numpy(state.exp_avg["a"])))


class _FakeDeviceArray:
    """Stands in for a GPU array: only ``__cuda_array_interface__`` tells where its bytes are."""

    def __init__(self, pointer, shape, strides=None, readonly=False, typestr="<f4"):
        self.__cuda_array_interface__ = {
            "data": (pointer, readonly),
            "shape": shape,
            "strides": strides,
            "typestr": typestr,
            "version": 3,
        }


def test_device_arrays_are_checked_by_their_byte_ranges():
    from refreg.optim._fused import DeviceSpan, _check_overlap, _memory

    assert _memory(_FakeDeviceArray(1000, (2, 3)), "params", "w") == DeviceSpan(1000, 1024, False)
    # a reversed view: negative strides reach below the pointer
    assert _memory(_FakeDeviceArray(1020, (6,), strides=(-4,)), "params", "w") == DeviceSpan(
        1000, 1024, False
    )
    assert _memory(_FakeDeviceArray(1000, (0, 3)), "params", "w").low == 1000

    def entries(*arrays):
        return [(w, k, _memory(a, w, k), w != "grads") for w, k, a in arrays]

    _check_overlap(
        entries(
            ("params", "a", _FakeDeviceArray(0, (4,))), ("grads", "a", _FakeDeviceArray(16, (4,)))
        )
    )
    with pytest.raises(ValueError, match=r"params\['a'\] and grads\['b'\] may share device memory"):
        _check_overlap(
            entries(
                ("params", "a", _FakeDeviceArray(0, (4,))),
                ("grads", "b", _FakeDeviceArray(12, (4,))),
            )
        )
    # two gradients may overlap: neither is written
    _check_overlap(
        entries(
            ("grads", "a", _FakeDeviceArray(0, (4,))), ("grads", "b", _FakeDeviceArray(0, (4,)))
        )
    )


def test_an_array_whose_memory_cannot_be_inspected_is_not_donated():
    from refreg.optim._fused import _memory

    with pytest.raises(ValueError, match=r"memory of params\['w'\] .* cannot be checked"):
        _memory(object(), "params", "w")


def test_an_array_whose_memory_property_raises_is_refused_with_a_value_error():
    """A torch CUDA tensor that requires grad raises RuntimeError from ``__cuda_array_interface__``; donation
    refuses it with the documented ValueError (a review finding)."""
    from refreg.optim._fused import _memory

    class Raising:
        @property
        def __cuda_array_interface__(self):
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad")

    with pytest.raises(
        ValueError, match=r"memory of params\['w'\] .* cannot be checked .*RuntimeError"
    ):
        _memory(Raising(), "params", "w")
