"""Save and load parameters and optimizer state to one ``.npz`` file, exactly and without pickle.

The state is a tree of ``NamedTuple``s, dicts, lists/tuples, Python scalars (int, float, bool, str, None) and
arrays. Arrays go into the archive bit for bit; the tree's shape and the scalars go into one JSON string
(``__tree__``), floats written with ``repr`` so they read back to the same bits. ``NamedTuple`` classes are
restored by their import path, and only from the ``refreg`` package (loading never imports foreign code).
A run resumed from ``load(save(...))`` is bitwise identical to one that never stopped.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from refreg._backend import is_array, to_numpy

__all__ = ["load", "save"]

_TREE_KEY = "__tree__"
_FORMAT = "refreg-checkpoint-1"


def _encode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        cls = type(obj)
        if not cls.__module__.startswith("refreg"):
            raise TypeError(
                f"state holds a NamedTuple from outside refreg: {cls.__module__}.{cls.__qualname__}"
            )
        return {
            "namedtuple": f"{cls.__module__}:{cls.__qualname__}",
            "fields": {f: _encode(getattr(obj, f), arrays) for f in obj._fields},
        }
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(
                f"state dicts must have str keys, got {[k for k in obj if not isinstance(k, str)]}"
            )
        return {"dict": [[k, _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"tuple" if isinstance(obj, tuple) else "list": [_encode(v, arrays) for v in obj]}
    if obj is None or isinstance(obj, (bool, int, str)):
        return {"value": obj}
    if isinstance(obj, float):
        return {"float": repr(obj)}
    if isinstance(obj, np.generic) or is_array(obj):
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(to_numpy(obj))
        return {"array": key, "numpy_scalar": isinstance(obj, np.generic)}
    raise TypeError(f"cannot save an object of type {type(obj).__name__} in a checkpoint")


def _decode(node: Any, arrays: Any, xp: Any) -> Any:
    if "namedtuple" in node:
        module_name, qualname = node["namedtuple"].split(":")
        if module_name != "refreg" and not module_name.startswith("refreg."):
            raise ValueError(f"checkpoint names a class outside refreg: {node['namedtuple']}")
        cls: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        return cls(**{f: _decode(v, arrays, xp) for f, v in node["fields"].items()})
    if "dict" in node:
        return {k: _decode(v, arrays, xp) for k, v in node["dict"]}
    if "tuple" in node:
        return tuple(_decode(v, arrays, xp) for v in node["tuple"])
    if "list" in node:
        return [_decode(v, arrays, xp) for v in node["list"]]
    if "value" in node:
        return node["value"]
    if "float" in node:
        return float(node["float"])
    if "array" in node:
        a = arrays[node["array"]]
        if node["numpy_scalar"]:
            return a[()]
        return a if xp is None else xp.asarray(a)
    raise ValueError(f"unreadable checkpoint node {node!r:.80}")


def save(path: str | os.PathLike, params: Any, state: Any = None) -> Path:
    """Write ``params`` (a dict of arrays) and ``state`` (any optimizer state) to ``path`` (``.npz``).

    The file is written to a temporary name and renamed, so an interrupted save never leaves a torn file.
    Returns the path written.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path must end in .npz, got {str(path)!r}")
    arrays: dict[str, np.ndarray] = {}
    tree = {"format": _FORMAT, "params": _encode(params, arrays), "state": _encode(state, arrays)}
    arrays[_TREE_KEY] = np.array(json.dumps(tree))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike, xp: Any = None) -> tuple[Any, Any]:
    """Read ``(params, state)`` written by :func:`save`; arrays as NumPy, or in namespace ``xp`` if given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    with np.load(path, allow_pickle=False) as archive:
        if _TREE_KEY not in archive.files:
            raise ValueError(f"{str(path)!r} is not a refreg checkpoint (no {_TREE_KEY} entry)")
        tree = json.loads(str(archive[_TREE_KEY][()]))
        if tree.get("format") != _FORMAT:
            raise ValueError(
                f"{str(path)!r} has checkpoint format {tree.get('format')!r}, expected {_FORMAT!r}"
            )
        arrays = {k: archive[k] for k in archive.files if k != _TREE_KEY}
    return _decode(tree["params"], arrays, xp), _decode(tree["state"], arrays, xp)
