"""Hostile checkpoints and arguments for ``refreg.io`` (input audit findings F01, F02, F13, F14).

A zip directory may lie about sizes, flag members as encrypted or carry damaged headers; ``load`` must answer
every such file with a ``ValueError`` naming it, allocating no more than the file holds. ``save`` must never
write a file that ``load`` refuses, and an ``xp`` that is not an array namespace is a ``TypeError`` naming
``xp``.
"""

from __future__ import annotations

import io as _io
import json
import struct
import tempfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import array_api_strict
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from refreg import MLP, io, optim

FORMAT = "refreg-checkpoint-2"
TREE = {"format": FORMAT, "params": {"dict": [["w", {"array": "a0"}]]}, "state": {"value": None}}


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buf = _io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|u1", "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def _zip(members: list[tuple[str, bytes, int | None]]) -> bytes:
    """A stored zip; a member's directory entry declares ``declared`` bytes (zip64) instead of its length."""
    out, central = _io.BytesIO(), []
    for name, data, declared in members:
        offset, raw_name, crc, n = out.tell(), name.encode(), zlib.crc32(data), len(data)
        # local header: signature, version, flags, method, time, date, CRC, sizes, name and extra lengths
        local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, n, n, len(raw_name), 0)
        out.write(local + raw_name + data)
        extra = b"" if declared is None else struct.pack("<HHQQ", 1, 16, declared, declared)
        size = n if declared is None else 0xFFFFFFFF  # 0xFFFFFFFF: the size is in the zip64 extra
        # directory entry: as above, then comment length, disk, attributes and the local header's offset
        fields = (0x02014B50, 45, 45, 0, 0, 0, 0, crc, size, size, len(raw_name), len(extra))
        entry = struct.pack("<IHHHHHHIIIHHHHHII", *fields, 0, 0, 0, 0, offset)
        central.append(entry + raw_name + extra)
    directory = b"".join(central)
    count, start = len(members), out.tell()
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(directory), start, 0)
    return out.getvalue() + directory + end


def _tree_member() -> bytes:
    buf = _io.BytesIO()
    np.lib.format.write_array(buf, np.array(json.dumps(TREE)))
    return buf.getvalue()


# ------------------------------------------------------------------------------ F01: declared member sizes
@given(declared=st.integers(min_value=128, max_value=2**63 - 1))
@example(declared=2**40)  # the audit's 922-byte file: MemoryError before the fix
@example(declared=128 + 16)  # the truth: the file loads
@example(declared=2**31)  # below MAX_MEMBER_BYTES but far beyond the file
def test_a_declared_member_size_is_checked_before_reading(declared):
    header = _npy_header((declared - 128,))
    assert len(header) == 128
    data = _zip([("__tree__.npy", _tree_member(), None), ("a0.npy", header + bytes(16), declared)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lie.npz"
        path.write_bytes(data)
        tracemalloc.start()
        try:
            if declared == 128 + 16:
                params, _ = io.load(path)
                assert params["w"].tolist() == [0] * 16
                return
            with pytest.raises(ValueError, match=r"lie\.npz.*'a0\.npy'") as info:
                io.load(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 2**20  # nothing near the declared size was allocated
    if declared > io.MAX_MEMBER_BYTES:
        assert f"more than MAX_MEMBER_BYTES={io.MAX_MEMBER_BYTES}" in str(info.value)
    elif declared > len(data):
        assert "more than the whole file's" in str(info.value)


def test_member_limit_is_named_and_applies_to_every_array(tmp_path, monkeypatch):
    path = io.save(tmp_path / "ok.npz", {"w": np.zeros(100)})
    monkeypatch.setattr(io, "MAX_MEMBER_BYTES", 200)  # the member is 128 + 800 bytes
    with pytest.raises(
        ValueError, match=r"'a0\.npy' declares 928 bytes, more than MAX_MEMBER_BYTES=200"
    ):
        io.load(path)


# ------------------------------------------------------------------------------ F02: flags, damaged headers
def _flag_encrypted(raw: bytes) -> bytes:
    out = bytearray(raw)
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = out.find(signature)
        while i >= 0:
            out[i + flags_at] |= 1
            i = out.find(signature, i + 4)
    return bytes(out)


def test_encrypted_members_are_a_value_error_naming_the_file(tmp_path):
    path = io.save(tmp_path / "enc.npz", {"w": np.zeros(3)})
    path.write_bytes(_flag_encrypted(path.read_bytes()))
    with pytest.raises(
        ValueError, match=r"enc\.npz' is not a valid refreg checkpoint: .*encrypted"
    ):
        io.load(path)  # was RuntimeError: "... is encrypted, password required"


_PARAMS = {"w": np.arange(6.0).reshape(2, 3), "b": np.ones(3, np.float32)}
_STATE = optim.adam().init(_PARAMS)
_SIGNATURES = {"local": b"PK\x03\x04", "central": b"PK\x01\x02", "end": b"PK\x05\x06"}


@given(
    kind=st.sampled_from(sorted(_SIGNATURES)),
    which=st.integers(0, 2),
    offset=st.integers(4, 45),
    value=st.integers(0, 255),
)
# the encryption flag (RuntimeError before the fix), an unknown compression method, a local-header offset
# past the end of the file
@example(kind="central", which=0, offset=8, value=1)
@example(kind="central", which=1, offset=10, value=99)
@example(kind="central", which=0, offset=45, value=0x7F)
def test_any_damaged_zip_header_gives_value_error_or_the_exact_checkpoint(
    kind, which, offset, value
):
    with tempfile.TemporaryDirectory() as tmp:
        path = io.save(Path(tmp) / "d.npz", _PARAMS, _STATE)
        raw = bytearray(path.read_bytes())
        at = -1
        for _ in range(which + 1):
            at = raw.find(_SIGNATURES[kind], at + 1)
        if at < 0 or at + offset >= len(raw):
            return
        raw[at + offset] = value
        path.write_bytes(bytes(raw))
        try:
            params, state = io.load(path)
        except ValueError as err:
            assert "d.npz" in str(err)
            return
    # a byte zipfile ignores (a time stamp, an attribute): the load must then be exact
    assert all(params[k].tobytes() == _PARAMS[k].tobytes() for k in _PARAMS)
    assert state.step == _STATE.step
    assert all(state.exp_avg[k].tobytes() == _STATE.exp_avg[k].tobytes() for k in _PARAMS)


# ------------------------------------------------------------------------------ F13: save only loadable files
@given(
    values=st.lists(
        st.one_of(st.floats(allow_nan=False), st.integers(-(10**6), 10**6), st.text(max_size=8)),
        max_size=40,
    )
)
def test_save_refuses_a_tree_load_would_refuse_and_writes_nothing(values):
    state = {"history": values}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = io.save(folder / "probe.npz", {"w": np.zeros(2)}, state)
        with zipfile.ZipFile(path) as zf:
            size = zf.getinfo("__tree__.npy").file_size
        path.unlink()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(io, "MAX_TREE_BYTES", size)  # exactly enough: save and load both accept
            io.load(io.save(folder / "exact.npz", {"w": np.zeros(2)}, state))
            # one byte short: save refuses and writes nothing
            mp.setattr(io, "MAX_TREE_BYTES", size - 1)
            with pytest.raises(
                ValueError, match=rf"__tree__ of {size} bytes, more than MAX_TREE_BYTES"
            ):
                io.save(folder / "new" / "big.npz", {"w": np.zeros(2)}, state)
        assert sorted(p.name for p in folder.iterdir()) == ["exact.npz"]  # no file, no folder


@given(
    shape=st.lists(st.integers(0, 5), max_size=3).map(tuple),
    dtype=st.sampled_from(["bool", "int8", "uint16", "float32", "float64", "complex128"]),
    fortran=st.booleans(),
)
def test_save_refuses_an_array_load_would_refuse(shape, dtype, fortran):
    a = np.zeros(shape, dtype=dtype, order="F" if fortran else "C")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with zipfile.ZipFile(io.save(folder / "probe.npz", {"w": a})) as zf:
            size = zf.getinfo("a0.npy").file_size
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(io, "MAX_MEMBER_BYTES", size)
            assert io.load(io.save(folder / "exact.npz", {"w": a}))[0]["w"].shape == shape
            mp.setattr(io, "MAX_MEMBER_BYTES", size - 1)
            with pytest.raises(ValueError, match=r"params\['w'\] is an array of \d+ bytes"):
                io.save(folder / "big.npz", {"w": a})
        assert not (folder / "big.npz").exists()
        assert not list(folder.glob("*.tmp"))


def test_save_of_an_oversized_tree_is_refused_before_the_folder_is_made(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "MAX_TREE_BYTES", 4096)
    with pytest.raises(ValueError, match="MAX_TREE_BYTES=4096, which load refuses"):
        io.save(tmp_path / "sub" / "c.npz", {"w": np.zeros(2)}, {"history": [0.5] * 1000})
    assert not (tmp_path / "sub").exists()


# ------------------------------------------------------------------------------ F14: xp and path arguments
BAD_XP = [
    "numpy",
    "array_api_strict",
    b"numpy",
    1,
    1.5,
    True,
    object(),
    {"asarray": np.asarray},
    [np],
]


@pytest.mark.parametrize("bad", BAD_XP, ids=repr)
def test_xp_that_is_not_a_namespace_is_a_type_error_naming_xp(tmp_path, bad):
    path = io.save(tmp_path / "x.npz", {"w": np.zeros(2)})
    expected = r"xp must be None or an array namespace module such as numpy or array_api_strict"
    with pytest.raises(TypeError, match=expected):
        io.load(path, xp=bad)
    with pytest.raises(TypeError, match=expected):  # checked before the file is looked at
        io.load(tmp_path / "missing.npz", xp=bad)
    gen = np.random.default_rng(0)
    before = gen.bit_generator.state
    with pytest.raises(TypeError, match=expected):
        MLP([2, 3]).init(rng=gen, xp=bad)
    assert gen.bit_generator.state == before  # nothing drawn


@pytest.mark.parametrize("good", [np, array_api_strict], ids=lambda m: m.__name__)
def test_namespace_modules_are_accepted(tmp_path, good):
    path = io.save(tmp_path / "x.npz", {"w": np.arange(3.0)})
    params, _ = io.load(path, xp=good)
    assert np.asarray(params["w"]).tolist() == [0.0, 1.0, 2.0]
    init = MLP([2, 3]).init(rng=0, xp=good)
    ref = MLP([2, 3]).init(rng=0)
    assert all(np.asarray(init[k]).tobytes() == np.asarray(ref[k]).tobytes() for k in ref)


@pytest.mark.parametrize("bad", [None, 3, ["a.npz"]], ids=repr)
def test_path_of_a_wrong_type_is_a_type_error_naming_path(bad):
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike"):
        io.save(bad, {"w": np.zeros(2)})
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike"):
        io.load(bad)
