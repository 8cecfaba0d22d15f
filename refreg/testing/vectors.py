"""The language-neutral test-vector format of ``tests/vectors/*.json``: encode, decode, validate.

A vector file is a JSON list of *cases* for one operation. A case is an object

``{"name": str, "op": str, "hyperparameters": {...}, "inputs": {...}, "outputs": {...}, "rtol": float,
"atol": float}``

``inputs`` and ``outputs`` map names to *arrays* or to objects of arrays (e.g. ``"params"`` ->
``{"layers.0.weight": array, ...}``, PyTorch's ``nn.Linear`` names and (out, in) layout). An array is

``{"dtype": "float64" | "float32" | "int64", "shape": [d0, d1, ...], "data": [...]}``

with ``data`` the row-major (C-order) flattening, ``len(data) = Π shape`` (``[]`` is a 0-d array with one
element). Floats are written so that they read back to the same bits: parse the JSON number as an IEEE double
(every JSON parser does) and, for ``"float32"``, round that double to float32; NaN and ±inf are the strings
``"nan"``, ``"inf"``, ``"-inf"``. A port passes a case when every output element satisfies
``|ours − theirs| <= atol + rtol·|theirs|`` (NaN matching NaN). ``tests/vectors/schema.json`` is the JSON
Schema of the format; :func:`validate_case` checks a case against it and checks what a schema cannot (the
length of ``data`` against ``shape``, the values against ``dtype``).

This module is a test utility; it is not used by any algorithm.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DTYPES",
    "decode_array",
    "decode_tree",
    "encode_array",
    "encode_tree",
    "read_cases",
    "validate_case",
    "validate_schema",
    "write_cases",
]

DTYPES = ("float64", "float32", "int64")
_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _encode_float(x: Any, dtype: str) -> float | str:
    """The shortest decimal that reads back (as a double, then rounded to ``dtype``) to the same bits."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if dtype == "float64":
        return float(x)  # json writes repr(float): the shortest round-trip decimal
    x32 = np.float32(x)
    short = float(np.format_float_positional(x32, unique=True, trim="-"))
    # guard against double rounding (decimal -> double -> float32); the exact double always reads back
    return short if np.float32(short).tobytes() == x32.tobytes() else float(x32)


def encode_array(a: Any) -> dict[str, Any]:
    """``{"dtype", "shape", "data"}`` of a NumPy array (or scalar) of a dtype in :data:`DTYPES`."""
    a = np.asarray(a)
    dtype = str(a.dtype)
    if dtype not in DTYPES:
        raise TypeError(f"array dtype must be one of {DTYPES}, got {dtype}")
    flat = a.reshape(-1)
    if dtype == "int64":
        data: list = [int(v) for v in flat]
    else:
        data = [_encode_float(float(v), dtype) for v in flat]
    return {"dtype": dtype, "shape": [int(s) for s in a.shape], "data": data}


def decode_array(obj: Mapping[str, Any]) -> np.ndarray:
    """The NumPy array of an encoded array (inverse of :func:`encode_array`, bit for bit)."""
    dtype, shape, data = obj["dtype"], tuple(obj["shape"]), obj["data"]
    if dtype == "int64":
        return np.asarray(data, dtype=np.int64).reshape(shape)
    values = [_SPECIAL[v] if isinstance(v, str) else float(v) for v in data]
    return np.asarray(values, dtype=np.float64).astype(dtype).reshape(shape)


def _is_array(obj: Any) -> bool:
    return isinstance(obj, Mapping) and set(obj) == {"dtype", "shape", "data"}


def encode_tree(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Encode a dict whose leaves are arrays (nested dicts allowed, e.g. ``params``)."""
    return {
        k: encode_tree(v) if isinstance(v, Mapping) else encode_array(v) for k, v in tree.items()
    }


def decode_tree(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Decode every array of an ``inputs``/``outputs`` object (nested objects stay dicts)."""
    return {k: decode_array(v) if _is_array(v) else decode_tree(v) for k, v in tree.items()}


def write_cases(path: str | Path, cases: list[dict[str, Any]]) -> None:
    """Write a vector file: one case per line, so that a changed case shows as a one-line diff."""
    lines = ",\n".join(json.dumps(c, allow_nan=False, ensure_ascii=False) for c in cases)
    Path(path).write_text(f"[\n{lines}\n]\n", encoding="utf-8")


def read_cases(path: str | Path) -> list[dict[str, Any]]:
    """The list of cases of a vector file (JSON as written; decode arrays with :func:`decode_tree`)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- validation
def validate_schema(instance: Any, schema: Mapping[str, Any], root: Mapping | None = None) -> None:
    """Check ``instance`` against a JSON Schema using the keywords ``tests/vectors/schema.json`` uses.

    Supported: ``$ref`` (to ``#/$defs/...``), ``type``, ``enum``, ``const``, ``required``, ``properties``,
    ``additionalProperties``, ``items``, ``minItems``, ``minimum``, ``minLength``, ``pattern`` and ``oneOf``.
    Any other keyword raises ``ValueError`` so that the schema cannot silently outgrow this checker.
    Raises ``ValueError`` naming the JSON path of the first violation.
    """
    _validate(instance, schema, root if root is not None else schema, "$")


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_KNOWN = {"$schema", "$id", "$defs", "title", "description", "$comment"}


def _validate(v: Any, s: Mapping[str, Any], root: Mapping[str, Any], path: str) -> None:
    unknown = set(s) - _KNOWN - set(_CHECKS)
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} not supported by validate_schema")
    for key, check in _CHECKS.items():
        if key in s:
            check(v, s[key], s, root, path)


def _ref(v, ref, s, root, path):
    if not ref.startswith("#/$defs/"):
        raise ValueError(f"only local #/$defs/ references are supported, got {ref!r}")
    _validate(v, root["$defs"][ref[len("#/$defs/") :]], root, path)


def _type(v, t, s, root, path):
    types = [t] if isinstance(t, str) else t
    if not any(_TYPES[name](v) for name in types):
        raise ValueError(f"{path}: expected {t}, got {type(v).__name__} {v!r:.60}")


def _fail_unless(ok: bool, path: str, msg: str) -> None:
    if not ok:
        raise ValueError(f"{path}: {msg}")


def _one_of(v, options, s, root, path):
    passed = 0
    errors = []
    for option in options:
        try:
            _validate(v, option, root, path)
            passed += 1
        except ValueError as err:
            errors.append(str(err))
    _fail_unless(passed == 1, path, f"must match exactly one of oneOf, matched {passed}: {errors}")


def _properties(v, props, s, root, path):
    if isinstance(v, dict):
        for k, sub in props.items():
            if k in v:
                _validate(v[k], sub, root, f"{path}.{k}")


def _additional(v, extra, s, root, path):
    if not isinstance(v, dict):
        return
    for k, value in v.items():
        if k in s.get("properties", {}):
            continue
        _fail_unless(extra is not False, path, f"unexpected property {k!r}")
        if isinstance(extra, Mapping):
            _validate(value, extra, root, f"{path}[{k!r}]")


def _items(v, sub, s, root, path):
    if isinstance(v, list):
        for i, item in enumerate(v):
            _validate(item, sub, root, f"{path}[{i}]")


_CHECKS = {
    "$ref": _ref,
    "type": _type,
    "enum": lambda v, e, s, r, p: _fail_unless(v in e, p, f"{v!r} not in {e}"),
    "const": lambda v, c, s, r, p: _fail_unless(v == c, p, f"{v!r} != {c!r}"),
    "required": lambda v, req, s, r, p: _fail_unless(
        not isinstance(v, dict) or all(k in v for k in req), p, f"missing one of {req}"
    ),
    "properties": _properties,
    "additionalProperties": _additional,
    "items": _items,
    "minItems": lambda v, n, s, r, p: _fail_unless(
        not isinstance(v, list) or len(v) >= n, p, f"needs >= {n} items"
    ),
    "minimum": lambda v, m, s, r, p: _fail_unless(
        isinstance(v, bool) or not isinstance(v, (int, float)) or v >= m, p, f"{v!r} < {m}"
    ),
    "minLength": lambda v, n, s, r, p: _fail_unless(
        not isinstance(v, str) or len(v) >= n, p, f"shorter than {n}"
    ),
    "pattern": lambda v, pat, s, r, p: _fail_unless(
        not isinstance(v, str) or re.search(pat, v) is not None, p, f"{v!r} !~ {pat}"
    ),
    "oneOf": _one_of,
}


def validate_case(case: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Check one case: the JSON Schema, then ``len(data) == Π shape`` and values matching ``dtype``."""
    validate_schema(case, {"$ref": "#/$defs/case", **{"$defs": schema["$defs"]}})
    for section in ("inputs", "outputs"):
        _check_arrays(case[section], f"{case['name']}.{section}")


def _check_arrays(tree: Mapping[str, Any], path: str) -> None:
    for k, v in tree.items():
        where = f"{path}.{k}"
        if not _is_array(v):
            _check_arrays(v, where)
            continue
        n = math.prod(v["shape"])
        _fail_unless(len(v["data"]) == n, where, f"{len(v['data'])} values for shape {v['shape']}")
        if v["dtype"] == "int64":
            ok = all(isinstance(x, int) and not isinstance(x, bool) for x in v["data"])
            _fail_unless(ok, where, "int64 data must be integers")
        for x in v["data"]:
            if isinstance(x, float) and v["dtype"] == "float32" and math.isfinite(x):
                _fail_unless(abs(x) < 3.5e38, where, f"{x!r} overflows float32")
