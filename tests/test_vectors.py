"""The test vectors in tests/vectors/: valid against their schema, and exactly what the library computes.

Regeneration: every case is rebuilt from refreg by ``tests/vectors/make_vectors.py`` and compared with the file.
Names, ops, hyperparameters, tolerances, shapes and dtypes must be identical, and so must the bits of every array
for the operations computed with IEEE-exact elementwise arithmetic and NumPy's own reductions (the optimizers and
the proximal operators): those give the same bits on every CPU. Operations that go through BLAS (matrix
products, dot products: the MLP, CPR's R = Σθ², the sparse marginals) or through NumPy's SIMD exp/log/tanh (the
MLP's losses and activations, the entropies, the layer balance) may differ in the last bits on another CPU:
OpenBLAS picks its kernel (and summation order) per CPU and NumPy dispatches its transcendental functions per
SIMD extension. For those the comparison is bitwise or within 16 units in the last place of the array's
largest magnitude; on the machine that wrote the files it is bitwise (``REFREG_VECTORS_BITWISE=1`` enforces it).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from refreg.testing.vectors import (
    decode_array,
    decode_tree,
    encode_array,
    read_cases,
    validate_case,
    validate_schema,
)

VECTORS = Path(__file__).parent / "vectors"
SCHEMA = json.loads((VECTORS / "schema.json").read_text())
FILES = sorted(VECTORS.glob("*.*.json"))
BITWISE_OPS = {
    "optim.sgd",
    "optim.adam",
    "optim.adamw",
    "pathprox.group_soft_threshold",
    "pathprox.project_unit_sphere",
    "pathprox.prox_norm_product",
    "pathprox.balance_units",
    "pathprox.path_norm",
}
REQUIRED_OPS = BITWISE_OPS | {
    "mlp.value_and_grad",
    "cpr.adam_cpr",
    "pathprox.balance_layers",
    "sparse.spatial_entropy",
    "sparse.element_entropy",
    "sparse.hoyer_square",
    "sparse.group_hoyer_square",
    "transformer.value_and_grad",
}
ULPS = 16


def _generator():
    spec = importlib.util.spec_from_file_location("make_vectors", VECTORS / "make_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def regenerated():
    return _generator().build()


def test_every_operation_has_a_file():
    ops = {p.name[: -len(".json")] for p in FILES}
    assert REQUIRED_OPS <= ops, sorted(REQUIRED_OPS - ops)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_file_is_valid(path):
    cases = read_cases(path)
    validate_schema(cases, SCHEMA)
    names = [c["name"] for c in cases]
    assert len(set(names)) == len(names), "case names must be unique within a file"
    for c in cases:
        validate_case(c, SCHEMA)
        assert c["op"] == path.stem, f"{c['name']}: op {c['op']!r} in {path.name}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_file_matches_jsonschema_reference_validator(path):
    """The hand-written checker agrees with the reference implementation of JSON Schema, where installed."""
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(read_cases(path), SCHEMA)


def test_validator_rejects_malformed_cases():
    good = read_cases(VECTORS / "optim.sgd.json")[0]
    bad_length = json.loads(json.dumps(good))
    bad_length["inputs"]["params"]["layers.0.bias"]["data"].append(1.0)
    bad_dtype = json.loads(json.dumps(good))
    bad_dtype["outputs"]["params"]["layers.0.bias"]["dtype"] = "float16"
    missing = {k: v for k, v in good.items() if k != "rtol"}
    bad_special = json.loads(json.dumps(good))
    bad_special["inputs"]["params"]["layers.0.bias"]["data"][0] = "NaN"
    for bad in (bad_length, bad_dtype, missing, bad_special):
        with pytest.raises(ValueError):
            validate_case(bad, SCHEMA)


def test_arrays_round_trip_bit_for_bit():
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [rng.standard_normal(200) * 10.0 ** rng.integers(-300, 300, 200), [0.0, -0.0, 5e-324]]
    )
    values32 = (rng.standard_normal(200) * 10.0 ** rng.integers(-45, 38, 200)).astype(np.float32)
    specials = np.array([np.nan, np.inf, -np.inf, 1.5])
    for a in (values, values32, specials, np.arange(-3, 3, dtype=np.int64)):
        back = decode_array(json.loads(json.dumps(encode_array(a))))
        assert back.dtype == a.dtype and back.tobytes() == a.tobytes()
    assert encode_array(specials)["data"][:3] == ["nan", "inf", "-inf"]
    # float32 values are written with the shortest float32 decimal, not the float64 expansion
    assert encode_array(np.float32(0.1))["data"] == [0.1]


def _compare(ours, theirs, op_name: str, where: str) -> None:
    assert set(ours) == set(theirs), where
    for key, value in theirs.items():
        here = f"{where}.{key}"
        if isinstance(value, dict):
            _compare(ours[key], value, op_name, here)
            continue
        mine = ours[key]
        assert mine.dtype == value.dtype and mine.shape == value.shape, here
        if mine.tobytes() == value.tobytes():
            continue
        strict = op_name in BITWISE_OPS or os.environ.get("REFREG_VECTORS_BITWISE") == "1"
        assert not strict, (
            f"{here}: not bit-identical to the file; if the change of the numbers is intended, run "
            "python tests/vectors/make_vectors.py and commit the files"
        )
        scale = float(np.max(np.abs(value), initial=0.0))
        tol = ULPS * np.finfo(value.dtype).eps * scale if value.dtype.kind == "f" else 0.0
        diff = np.abs(mine.astype(np.float64) - value.astype(np.float64))
        assert np.array_equal(np.isnan(mine), np.isnan(value)), here
        assert float(np.nanmax(diff, initial=0.0)) <= tol, (
            f"{here}: differs from the file by {np.nanmax(diff)}; if intended, run "
            "python tests/vectors/make_vectors.py and commit the files"
        )


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_vectors_regenerate_from_the_library(path, regenerated):
    """The file is what refreg computes today (see the module docstring for the comparison rule)."""
    stored = read_cases(path)
    fresh = regenerated[path.stem]
    assert [c["name"] for c in fresh] == [c["name"] for c in stored]
    for new, old in zip(fresh, stored, strict=True):
        for field in ("op", "hyperparameters", "rtol", "atol"):
            assert new[field] == old[field], f"{old['name']}: {field}"
        for section in ("inputs", "outputs"):
            # inputs are bit-exact everywhere: they are fixed decimals, not results
            ours = decode_tree(json.loads(json.dumps(new[section], allow_nan=False)))
            _compare(ours, decode_tree(old[section]), old["op"], f"{old['name']}.{section}")


def test_files_are_written_as_the_generator_writes_them(tmp_path, regenerated):
    """Byte-identical files on this machine: one case per line, shortest decimals (a diff shows a change)."""
    from refreg.testing.vectors import write_cases

    for op_name in ("optim.sgd", "pathprox.prox_norm_product"):
        write_cases(tmp_path / "x.json", regenerated[op_name])
        assert (tmp_path / "x.json").read_bytes() == (VECTORS / f"{op_name}.json").read_bytes()


def test_cpr_policies_differ_and_float32_scalars_are_float32():
    """Both scalar policies are in the file; the release's float32 policy stores λ, κ as float32 values."""
    cases = {c["name"]: c for c in read_cases(VECTORS / "cpr.adam_cpr.json")}
    for name, c in cases.items():
        policy = c["hyperparameters"]["scalar_dtype"]
        assert name.endswith(policy)
        out = decode_tree(c["outputs"])
        assert all(v.dtype == np.dtype(policy) for v in out["lam"].values())
        twin = cases[name[: -len(policy)] + ("float32" if policy == "float64" else "float64")]
        lam_twin = decode_tree(twin["outputs"])["lam"]
        assert any(
            not np.array_equal(v.astype(float), lam_twin[k].astype(float))
            for k, v in out["lam"].items()
        )


def test_mlp_vectors_include_a_zero_preactivation():
    """relu'(0) = 0 is exercised: some hidden pre-activation of every relu case is exactly 0."""
    for c in read_cases(VECTORS / "mlp.value_and_grad.json"):
        inputs = decode_tree(c["inputs"])
        p, x = inputs["params"], inputs["x"]
        z = x @ p["layers.0.weight"].T + p.get("layers.0.bias", 0.0)
        assert np.any(z == 0.0), c["name"]
        assert math.prod(x.shape[:1]) >= 3
