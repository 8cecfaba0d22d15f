"""Checkpoints from anyone: every malformed or malicious file raises ValueError and executes nothing.

Each crafted file is a valid zip of ``.npy`` members whose ``__tree__`` or members break one rule of
``refreg.io``. The malicious ones carry a payload (``os.system``, a pickle's ``__reduce__``) that would create
a sentinel file if anything were executed; the tests assert the file never appears.
"""

from __future__ import annotations

import io as _io
import json
import os
import zipfile

import numpy as np
import pytest

from refreg import io, optim

FORMAT = "refreg-checkpoint-2"


def npy_bytes(a, allow_pickle=False) -> bytes:
    buf = _io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=allow_pickle)
    return buf.getvalue()


def write(path, tree, members=None, *, raw=None, compress=False, tree_fmt=None):
    """A zip with ``__tree__`` = JSON of ``tree`` (plus ``format``), array ``members`` and ``raw`` bytes."""
    if isinstance(tree, dict) and "format" not in tree and tree_fmt is None:
        tree = {"format": FORMAT, **tree}
    text = tree if isinstance(tree, str) else json.dumps(tree)
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as zf:
        zf.writestr("__tree__.npy", npy_bytes(np.array(text)))
        for key, a in (members or {}).items():
            zf.writestr(key + ".npy", npy_bytes(a))
        for name, data in (raw or {}).items():
            zf.writestr(name, data)
    return path


class Payload:
    """Unpickling this runs ``touch sentinel``."""

    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def leaf(key="a0"):
    return {"array": key}


def sgd_state(**fields):
    base = {"step": {"value": 0}, "momentum_buffer": {"dict": []}}
    base.update(fields)
    return {"namedtuple": "SGDState", "fields": {k: v for k, v in base.items() if v is not None}}


def system_call(name, sentinel):
    return {"namedtuple": name, "fields": {"command": {"value": f"touch {sentinel}"}}}


CASES = {
    # names that would import or follow attributes under the old mechanism
    "foreign module": lambda s: (
        {"params": {"value": None}, "state": system_call("os:system", s)},
        {},
    ),
    "refreg module path": lambda s: (
        {"params": {"value": None}, "state": system_call("refreg.io:os.system", s)},
        {},
    ),
    "dotted name": lambda s: (
        {"params": {"value": None}, "state": system_call("os.system", s)},
        {},
    ),
    "dunder name": lambda s: (
        {"params": {"value": None}, "state": system_call("SGDState.__new__", s)},
        {},
    ),
    "builtins": lambda s: (
        {"params": {"value": None}, "state": system_call("__builtins__", s)},
        {},
    ),
    "old import path": lambda s: (
        {
            "params": {"value": None},
            "state": {**sgd_state(), "namedtuple": "refreg.optim:SGDState"},
        },
        {},
    ),
    "old format": lambda s: (
        {
            "format": "refreg-checkpoint-1",
            "params": {"value": None},
            "state": system_call("refreg.io:os.system", s),
        },
        {},
    ),
    # fields
    "unknown field": lambda s: (
        {"params": {"value": None}, "state": sgd_state(x={"value": 1})},
        {},
    ),
    "missing field": lambda s: ({"params": {"value": None}, "state": sgd_state(step=None)}, {}),
    "fields not an object": lambda s: (
        {"params": {"value": None}, "state": {"namedtuple": "SGDState", "fields": []}},
        {},
    ),
    # node types
    "node is a list": lambda s: ({"params": [], "state": {"value": None}}, {}),
    "node of two kinds": lambda s: ({"params": {"value": 1, "float": "1.0"}, "state": None}, {}),
    "unknown kind": lambda s: ({"params": {"pickle": "x"}, "state": {"value": None}}, {}),
    "dict not a list": lambda s: (
        {"params": {"dict": {"w": leaf()}}, "state": {"value": None}},
        {},
    ),
    "dict item no pair": lambda s: ({"params": {"dict": [["w"]]}, "state": {"value": None}}, {}),
    "dict key not str": lambda s: (
        {"params": {"dict": [[1, leaf()]]}, "state": {"value": None}},
        {},
    ),
    "duplicate dict key": lambda s: (
        {"params": {"dict": [["w", {"value": 1}], ["w", {"value": 2}]]}, "state": {"value": None}},
        {},
    ),
    "value is an object": lambda s: ({"params": {"value": {"a": 1}}, "state": {"value": None}}, {}),
    "float not a string": lambda s: ({"params": {"float": 0.1}, "state": {"value": None}}, {}),
    "float not canonical": lambda s: (
        {"params": {"float": " 1_0.0"}, "state": {"value": None}},
        {},
    ),
    "float overflows": lambda s: ({"params": {"float": "1e400"}, "state": {"value": None}}, {}),
    "nan bits of a number": lambda s: (
        {"params": {"nan_bits": "3ff0000000000000"}, "state": {"value": None}},
        {},
    ),
    "nan bits not hex": lambda s: (
        {"params": {"nan_bits": "x" * 16}, "state": {"value": None}},
        {},
    ),
    "tree not an object": lambda s: ("[1, 2]", {}),
    "tree missing state": lambda s: ({"format": FORMAT, "params": {"value": None}}, {}),
    "tree not JSON": lambda s: ("{not json", {}),
    "tree nested too deep": lambda s: (
        {"params": json.loads('{"list": [' * 200 + "]}" * 200), "state": {"value": None}},
        {},
    ),
    "JSON nested past recursion": lambda s: (
        '{"format": "' + FORMAT + '", "params": ' + "[" * 100_000 + "]" * 100_000 + "}",
        {},
    ),
    # members
    "unreferenced member": lambda s: (
        {"params": {"value": None}, "state": {"value": None}},
        {"a0": np.zeros(2)},
    ),
    "doubly referenced member": lambda s: (
        {"params": {"list": [leaf(), leaf()]}, "state": {"value": None}},
        {"a0": np.zeros(2)},
    ),
    "missing member": lambda s: ({"params": leaf("a7"), "state": {"value": None}}, {}),
    "member named like the tree": lambda s: (
        {"params": leaf("__tree__"), "state": {"value": None}},
        {},
    ),
    "member key not a string": lambda s: ({"params": {"array": 0}, "state": {"value": None}}, {}),
    "scalar with a shape": lambda s: (
        {"params": {"numpy_scalar": "a0"}, "state": {"value": None}},
        {"a0": np.zeros(2)},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_crafted_checkpoint_raises_value_error_and_runs_nothing(case, tmp_path):
    sentinel = tmp_path / "pwned"
    tree, members = CASES[case](sentinel)
    path = write(
        tmp_path / "evil.npz", tree, members, tree_fmt="given" if "format" in str(tree) else None
    )
    with pytest.raises(ValueError, match="not a valid refreg checkpoint"):
        io.load(path)
    assert not sentinel.exists()


def test_pickled_member_is_never_unpickled(tmp_path):
    sentinel = tmp_path / "pwned"
    obj = np.empty(1, dtype=object)
    obj[0] = Payload(sentinel)
    path = write(
        tmp_path / "evil.npz",
        {"params": leaf(), "state": {"value": None}},
        raw={"a0.npy": npy_bytes(obj, allow_pickle=True)},
    )
    with pytest.raises(ValueError, match="dtype object"):
        io.load(path)
    assert not sentinel.exists()


def test_member_whose_header_promises_more_data_than_it_has(tmp_path):
    data = bytearray(npy_bytes(np.zeros(4)))
    big = npy_bytes(np.zeros((10**6,)))[
        : len(data) - 32
    ]  # header of a 10**6 array, 0 bytes of data
    for raw in (bytes(data[:-8]), big):
        path = write(
            tmp_path / "short.npz",
            {"params": leaf(), "state": {"value": None}},
            raw={"a0.npy": raw},
        )
        with pytest.raises(ValueError, match="bytes of data"):
            io.load(path)


def test_compressed_members_and_foreign_members_are_refused(tmp_path):
    ok = {"params": leaf(), "state": {"value": None}}
    with pytest.raises(ValueError, match="compressed"):
        io.load(write(tmp_path / "c.npz", ok, {"a0": np.zeros(10**5)}, compress=True))
    with pytest.raises(ValueError, match=r"unique \.npy"):
        io.load(write(tmp_path / "f.npz", ok, {"a0": np.zeros(2)}, raw={"run.sh": b"rm -rf /"}))


def test_member_count_and_tree_size_are_bounded(tmp_path, monkeypatch):
    io.save(tmp_path / "ok.npz", {f"w{i}": np.zeros(1) for i in range(5)})
    monkeypatch.setattr(io, "MAX_MEMBERS", 3)
    with pytest.raises(ValueError, match="more than MAX_MEMBERS"):
        io.load(tmp_path / "ok.npz")
    with pytest.raises(ValueError, match="at most 3 arrays"):
        io.save(tmp_path / "big.npz", {f"w{i}": np.zeros(1) for i in range(5)})
    monkeypatch.setattr(io, "MAX_MEMBERS", 100)
    monkeypatch.setattr(io, "MAX_TREE_BYTES", 200)
    with pytest.raises(ValueError, match="more than MAX_TREE_BYTES"):
        io.load(tmp_path / "ok.npz")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04garbage", npy_bytes(np.zeros(3))])
def test_files_that_are_not_zip_archives(tmp_path, content):
    (tmp_path / "x.npz").write_bytes(content)
    with pytest.raises(ValueError, match="not a valid refreg checkpoint"):
        io.load(tmp_path / "x.npz")


def test_truncated_checkpoint(tmp_path):
    path = io.save(
        tmp_path / "t.npz", {"w": np.arange(1000.0)}, optim.sgd(0.1).init({"w": np.zeros(1)})
    )
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a valid refreg checkpoint"):
            io.load(path)


def test_registry_accepts_only_namedtuples_under_plain_unique_names():
    for bad in ("a.b", "__x", "x__y", "_x", "", "1x", "a:b"):
        with pytest.raises(ValueError, match="name must be an identifier"):
            io.register_state(bad)
    with pytest.raises(ValueError, match="already registered"):
        io.register_state("SGDState")(optim.AdamState)
    with pytest.raises(TypeError, match="NamedTuple class"):
        io.register_state("NotATuple")(dict)
    assert io.registered_states()["AdamState"] is optim.AdamState
