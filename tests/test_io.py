"""Checkpoints: exact round trip and bitwise-identical resume."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from conftest import asnumpy
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refreg import MLP, adam, adamw, io, optim, sgd
from refreg.data import modular_addition
from refreg.training import train_step


def _train(net, opt, params, state, data, steps, start=0):
    x, y = data
    for t in range(start, start + steps):
        start = (t * 8) % (x.shape[0] - 8)
        rows = slice(start, start + 8)
        params, state, _ = train_step(net, opt, params, state, x[rows, ...], y[rows])
    return params, state


@pytest.mark.parametrize(
    "make",
    [
        lambda: sgd(0.1, momentum=0.9, nesterov=True),
        lambda: adam(3e-3, weight_decay=0.01),
        lambda: adamw(optim.cosine(1e-2, total_steps=40, warmup_steps=5)),
    ],
)
def test_resume_from_checkpoint_is_bitwise_identical(make, tmp_path, xp):
    ds = modular_addition(p=11, train_fraction=0.6, rng=0)
    data = (xp.asarray(ds.x_train), xp.asarray(ds.y_train))
    net = MLP([22, 16, 11])
    opt = make()
    params = net.init(rng=0, xp=xp)
    state = opt.init(params)
    straight = _train(net, opt, params, state, data, 40)

    half = _train(net, opt, params, state, data, 20)
    path = io.save(tmp_path / "ckpt.npz", *half)
    loaded_params, loaded_state = io.load(path, xp=xp)
    assert type(loaded_state) is type(half[1])
    resumed = _train(net, opt, loaded_params, loaded_state, data, 20, start=20)

    for key in straight[0]:
        np.testing.assert_array_equal(asnumpy(resumed[0][key]), asnumpy(straight[0][key]))
    assert resumed[1].step == straight[1].step == 40
    for field in straight[1]._fields[1:]:
        for key, value in getattr(straight[1], field).items():
            np.testing.assert_array_equal(asnumpy(getattr(resumed[1], field)[key]), asnumpy(value))


def test_round_trip_keeps_types_scalars_and_dtypes(tmp_path):
    params = {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.array([0.1, np.nextafter(0.1, 1)]),
    }
    state = optim.AdamState(
        step=3,
        exp_avg={"w": np.ones((2, 3), np.float32)},
        exp_avg_sq={"w": np.zeros((2, 3), np.float32)},
    )
    extra = {
        "state": state,
        "floats": [0.1, 1 / 3, float("inf")],
        "none": None,
        "flag": True,
        "tuple": (1, "a"),
        "np": np.float32(0.25),
    }
    io.save(tmp_path / "a.npz", params, extra)
    p, s = io.load(tmp_path / "a.npz")
    assert p["w"].dtype == np.float32 and p["b"].dtype == np.float64
    np.testing.assert_array_equal(p["b"], params["b"])
    assert s["floats"] == [0.1, 1 / 3, float("inf")]
    assert s["none"] is None and s["flag"] is True and s["tuple"] == (1, "a")
    assert isinstance(s["state"], optim.AdamState) and s["state"].step == 3
    assert s["np"] == np.float32(0.25) and s["np"].dtype == np.float32


class ForeignState(NamedTuple):
    x: int


def test_foreign_classes_and_bad_paths_are_rejected(tmp_path):
    with pytest.raises(TypeError, match="not registered for checkpoints"):
        io.save(tmp_path / "a.npz", {"w": np.zeros(2)}, ForeignState(1))
    with pytest.raises(ValueError, match=r"path must end in \.npz"):
        io.save(tmp_path / "a.pkl", {"w": np.zeros(2)})
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        io.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "plain.npz", w=np.zeros(2))
    with pytest.raises(ValueError, match="not a refreg checkpoint"):
        io.load(tmp_path / "plain.npz")
    with pytest.raises(TypeError, match="cannot save an object of type"):
        io.save(tmp_path / "b.npz", {"w": np.zeros(2)}, {"f": lambda: 0})
    assert not list(tmp_path.glob("*.tmp"))


def test_same_seed_same_numbers():
    net = MLP([22, 8, 11])
    runs = []
    for _ in range(2):
        ds = modular_addition(p=11, rng=5)
        opt = adamw(1e-2)
        params = net.init(rng=5)
        state = opt.init(params)
        runs.append(_train(net, opt, params, state, (ds.x_train, ds.y_train), 10)[0])
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])


# ------------------------------------------------------------------------------ NumPy scalars, object arrays
def test_numpy_scalars_round_trip_in_type_dtype_and_bits(tmp_path):
    state = {
        "lr": np.float64(0.1),
        "step": np.int64(7),
        "flag": np.bool_(True),
        "half": np.float32(np.nextafter(np.float32(0.5), np.float32(1))),
        "nan": np.float64("nan"),
        "u8": np.uint8(255),
        "c": np.complex128(1 + 2j),
    }
    io.save(tmp_path / "s.npz", {"w": np.zeros(2)}, state)
    _, loaded = io.load(tmp_path / "s.npz")
    for key, value in state.items():
        assert type(loaded[key]) is type(value), key
        assert loaded[key].tobytes() == value.tobytes(), key


def test_object_and_string_arrays_are_refused_at_save(tmp_path):
    for bad in (np.array([1, None], dtype=object), np.array(["a", "b"])):
        with pytest.raises(TypeError, match="cannot save an array of dtype"):
            io.save(tmp_path / "o.npz", {"w": bad})
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------ property: load(save(x)) == x
_DTYPES = [
    np.bool_, np.int8, np.int32, np.int64, np.uint8, np.uint64,
    np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128,
]  # fmt: skip


def _numpy_scalars():
    return st.sampled_from(_DTYPES).flatmap(lambda d: hnp.from_dtype(np.dtype(d)).map(d))


def _arrays():
    return st.sampled_from(_DTYPES).flatmap(
        lambda d: hnp.arrays(d, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    )


_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | _numpy_scalars()
    | _arrays()
)


def _trees(children):
    return (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=5), children, max_size=3)
        | st.builds(optim.SGDState, children, children)
    )


_state_trees = st.recursive(_leaves, _trees, max_leaves=12)


def assert_identical(a, b, where="x"):
    """Same type, dtype, shape and bits at every node (NaN equals itself bit for bit)."""
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), where
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            assert_identical(u, v, f"{where}[{i}]")
    else:
        assert a == b, where


@given(state=_state_trees, params=st.dictionaries(st.text(max_size=5), _arrays(), max_size=3))
def test_load_of_save_is_identical_in_type_dtype_and_bits(state, params):
    with tempfile.TemporaryDirectory() as tmp:
        path = io.save(Path(tmp) / "p.npz", params, state)
        loaded_params, loaded_state = io.load(path)
    assert_identical(params, loaded_params, "params")
    assert_identical(state, loaded_state, "state")
