"""Save and load parameters and optimizer state to one ``.npz`` file, exactly, without pickle or imports.

The state is a tree of registered ``NamedTuple``s, dicts with str keys, lists/tuples, Python scalars (int,
float, bool, str, None), NumPy scalars and arrays. Arrays and NumPy scalars go into the archive bit for bit
(as ``.npy`` members); the tree's shape and the Python scalars go into one JSON string (``__tree__``), floats
written with ``repr`` (NaN as its 64 bits, keeping sign and payload), so they read back to the same bits.
A run resumed from ``load(save(...))`` is bitwise identical to one that never stopped.

Loading is safe on a file from anyone. A ``NamedTuple`` is stored under the stable name its class registered
with :func:`register_state`; decoding looks that name up in the registry and checks the field names exactly.
It never imports a module or follows an attribute, so a checkpoint can name nothing but a registered state
class. Every node, member and size is checked; anything unexpected (an unknown name or field, a member the
tree does not reference or references twice, an object array, too many members, an oversized tree, an
encrypted or compressed member, a member larger than its limit or than the file itself) raises ``ValueError``
before any object is built. Every size the zip directory declares is checked against the limits and against
the file's real length before a byte of any member is read, so a small file cannot make ``load`` allocate
more than the file holds. :func:`save` checks the same limits, so it never writes a file ``load`` refuses.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from refreg._backend import check_namespace, is_array, to_numpy
from refreg._validation import check_path

__all__ = [
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "MAX_TREE_BYTES",
    "load",
    "register_state",
    "registered_states",
    "save",
]

_TREE_KEY = "__tree__"
_FORMAT = "refreg-checkpoint-2"
MAX_MEMBERS = 100_000
"""Most arrays a checkpoint may hold (a bound against archive bombs; a large net has a few hundred)."""
MAX_TREE_BYTES = 64 * 2**20
"""Largest ``__tree__`` member accepted, in bytes of its ``.npy`` (UTF-32: 4 bytes per JSON character)."""
MAX_MEMBER_BYTES = 2**34
"""Largest array member accepted, in bytes of its ``.npy`` (header included): 16 GiB, far above any array
refreg trains; ``load`` also refuses members larger than the file that holds them."""
_MAX_DEPTH = 64
_ARRAY_KINDS = "biufc"  # bool, int, uint, float, complex: stored as raw bits, never as objects
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

_REGISTRY: dict[str, type] = {}
_NAME_OF: dict[type, str] = {}


def register_state(name: str) -> Callable[[type], type]:
    """Class decorator: allow the ``NamedTuple`` class in checkpoints under the stable ``name``.

    ``name`` is a plain identifier (letters, digits, underscores; no dots, no leading underscore), unique
    across refreg, and must never change once checkpoints exist: it is what the file stores, not the import
    path, so modules can move without breaking old checkpoints.

    >>> from typing import NamedTuple
    >>> @register_state("DocExampleState")
    ... class DocExampleState(NamedTuple):
    ...     step: int
    """
    if not isinstance(name, str) or not _NAME.match(name) or "__" in name:
        raise ValueError(
            f"name must be an identifier (letters, digits, single underscores), got {name!r}"
        )

    def decorate(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
            raise TypeError(f"register_state expects a NamedTuple class, got {cls!r}")
        if _REGISTRY.get(name, cls) is not cls:
            raise ValueError(f"state name {name!r} is already registered for {_REGISTRY[name]!r}")
        if _NAME_OF.get(cls, name) != name:
            raise ValueError(f"{cls.__qualname__} is already registered as {_NAME_OF[cls]!r}")
        _REGISTRY[name] = cls
        _NAME_OF[cls] = name
        return cls

    return decorate


def registered_states() -> dict[str, type]:
    """A copy of the registry: stable name -> state class."""
    return dict(_REGISTRY)


# ------------------------------------------------------------------------------------------------- encoding
def _npy_bytes(a: np.ndarray) -> int:
    """Size of ``a`` as a ``.npy`` member, header included: the number ``load`` compares with its limits."""
    buf = BytesIO()
    header = np.lib.format.header_data_from_array_1_0(a)
    try:
        np.lib.format.write_array_header_1_0(buf, header)
    except ValueError:  # a header over 64 KiB (a very long shape): np.savez then writes version 2.0
        np.lib.format.write_array_header_2_0(buf, header)
    return len(buf.getvalue()) + a.nbytes


def _encode(obj: Any, arrays: dict[str, np.ndarray], where: str, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where}: state is nested deeper than {_MAX_DEPTH} levels")
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        cls = type(obj)
        if cls not in _NAME_OF:
            raise TypeError(
                f"{where} holds a NamedTuple that is not registered for checkpoints: "
                f"{cls.__module__}.{cls.__qualname__} (decorate it with refreg.io.register_state)"
            )
        return {
            "namedtuple": _NAME_OF[cls],
            "fields": {
                f: _encode(getattr(obj, f), arrays, f"{where}.{f}", depth + 1) for f in obj._fields
            },
        }
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where}: state dicts must have str keys, got {bad!r:.80}")
        return {
            "dict": [[k, _encode(v, arrays, f"{where}[{k!r}]", depth + 1)] for k, v in obj.items()]
        }
    if type(obj) in (list, tuple):
        kind = "tuple" if isinstance(obj, tuple) else "list"
        return {kind: [_encode(v, arrays, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj)]}
    # NumPy scalars first: np.float64 is a subclass of float, np.bool_ of nothing Python knows
    if isinstance(obj, np.generic) or is_array(obj):
        a = np.asarray(to_numpy(obj))
        if a.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(
                f"{where}: cannot save an array of dtype {a.dtype} "
                "(only bool, int, uint, float, complex)"
            )
        size = _npy_bytes(a)
        if size > MAX_MEMBER_BYTES:  # load would refuse it: refuse it before writing anything
            raise ValueError(
                f"{where} is an array of {size} bytes as a .npy member, more than "
                f"MAX_MEMBER_BYTES={MAX_MEMBER_BYTES}, which load refuses"
            )
        key = f"a{len(arrays)}"
        arrays[key] = a
        return {"numpy_scalar" if isinstance(obj, np.generic) else "array": key}
    if obj is None or type(obj) in (bool, int, str):
        return {"value": obj}
    if type(obj) is float:
        if obj != obj:  # NaN: repr drops the sign and payload, so store the bits
            return {"nan_bits": struct.pack(">d", obj).hex()}
        return {"float": repr(obj)}
    raise TypeError(f"{where}: cannot save an object of type {type(obj).__name__} in a checkpoint")


# ------------------------------------------------------------------------------------------------- decoding
_KINDS = (
    "namedtuple",
    "dict",
    "list",
    "tuple",
    "value",
    "float",
    "nan_bits",
    "array",
    "numpy_scalar",
)


def _check_members(zf: zipfile.ZipFile, archive_bytes: int) -> None:
    """Every member's flags and declared sizes, checked before any member is read.

    The sizes come from the zip directory, which whoever wrote the file controls; a stored (uncompressed)
    member's data lies in the file itself, so together the members can hold no more than the file's length.
    """
    total = 0
    for info in zf.infolist():
        name = info.filename
        is_tree = name == _TREE_KEY + ".npy"
        limit = MAX_TREE_BYTES if is_tree else MAX_MEMBER_BYTES
        if info.flag_bits & 0x1:  # zipfile would raise RuntimeError asking for a password
            raise ValueError(f"member {name!r} is encrypted; refreg writes plain members only")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(f"member {name!r} is compressed; refreg writes stored members only")
        if info.file_size > limit:
            what = f"{_TREE_KEY} is" if is_tree else f"member {name!r} declares"
            limit_name = "MAX_TREE_BYTES" if is_tree else "MAX_MEMBER_BYTES"
            raise ValueError(f"{what} {info.file_size} bytes, more than {limit_name}={limit}")
        if info.compress_size != info.file_size:
            raise ValueError(
                f"member {name!r} is stored but declares {info.file_size} bytes of data in "
                f"{info.compress_size} bytes of archive"
            )
        total += info.file_size
        if total > archive_bytes:
            raise ValueError(
                f"member {name!r} declares {info.file_size} bytes; with the members before it that is "
                f"{total} bytes, more than the whole file's {archive_bytes}"
            )


def _read_member(zf: zipfile.ZipFile, name: str, kinds: str) -> np.ndarray:
    """One ``.npy`` member, read with a size known before reading: its header must match its length.

    ``_check_members`` has bounded the declared length; at most that many bytes plus one are read, so a
    directory that lies about the length cannot make this read more.
    """
    info = zf.getinfo(name)
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"member {name!r} has .npy version {version}")
            if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None:
                raise ValueError(f"member {name!r} has dtype {dtype}, expected a number type")
            count = 1
            for s in shape:
                count *= int(s)
            nbytes = count * dtype.itemsize
            if f.tell() + nbytes != info.file_size:
                raise ValueError(
                    f"member {name!r}: its header {shape} {dtype} needs {nbytes} bytes of data, "
                    f"the member has {info.file_size - f.tell()}"
                )
            data = f.read(nbytes + 1)
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        # the member's bytes do not match the directory (a bad CRC, a stream that ends early): name it
        raise ValueError(f"member {name!r} is damaged ({type(err).__name__}: {err})") from None
    if len(data) != nbytes:
        raise ValueError(
            f"member {name!r} holds {len(data)} bytes of data, its header says {nbytes}"
        )
    a = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return a.copy(order="K")


class _Decoder:
    """Walks the JSON tree, checking every node; each archive member must be used exactly once."""

    def __init__(self, zf: zipfile.ZipFile, members: set[str], xp: Any):
        self.zf, self.unused, self.xp = zf, set(members), xp

    def member(self, key: Any, where: str) -> np.ndarray:
        if not isinstance(key, str) or key not in self.unused:
            raise ValueError(
                f"node {where} names array {key!r:.60}, which is missing or referenced twice"
            )
        self.unused.discard(key)
        return _read_member(self.zf, key + ".npy", _ARRAY_KINDS)

    def __call__(self, node: Any, where: str, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueError(f"checkpoint tree is nested deeper than {_MAX_DEPTH} levels")
        kinds = [k for k in node if k in _KINDS] if isinstance(node, dict) else []
        if len(kinds) != 1:
            raise ValueError(f"node {where} must be a JSON object of one kind, got {node!r:.60}")
        kind = kinds[0]
        if set(node) != ({"namedtuple", "fields"} if kind == "namedtuple" else {kind}):
            raise ValueError(f"node {where} has keys {sorted(node)!r:.80}")
        value = node[kind]
        if kind == "namedtuple":
            return self.namedtuple(value, node["fields"], where, depth)
        if kind == "dict":
            if not isinstance(value, list):
                raise ValueError(f"node {where}: 'dict' must be a list of pairs")
            out = {}
            for item in value:
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                    raise ValueError(f"node {where}: dict item {item!r:.60} is no pair")
                if item[0] in out:
                    raise ValueError(f"node {where}: duplicate dict key {item[0]!r:.60}")
                out[item[0]] = self(item[1], f"{where}[{item[0]!r}]", depth + 1)
            return out
        if kind in ("list", "tuple"):
            if not isinstance(value, list):
                raise ValueError(f"node {where}: {kind!r} must be a JSON list")
            items = [self(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
            return tuple(items) if kind == "tuple" else items
        if kind == "value":
            if value is not None and type(value) not in (bool, int, str):
                raise ValueError(f"node {where}: bad value {value!r:.60}")
            return value
        if kind == "float":
            try:
                x = float(value) if isinstance(value, str) else None
            except ValueError:
                x = None
            if x is None or repr(x) != value:  # only what repr writes: exact and canonical
                raise ValueError(f"node {where}: bad float {value!r:.60}")
            return x
        if kind == "nan_bits":
            x = None
            if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{16}", value):
                x = struct.unpack(">d", bytes.fromhex(value))[0]
            if x is None or x == x:
                raise ValueError(f"node {where}: bad NaN bits {value!r:.60}")
            return x
        a = self.member(value, where)
        if kind == "numpy_scalar":
            if a.ndim != 0:
                raise ValueError(f"node {where}: NumPy scalar of shape {a.shape}")
            return a[()]
        return a if self.xp is None else self.xp.asarray(a)

    def namedtuple(self, name: Any, fields: Any, where: str, depth: int) -> Any:
        cls = _REGISTRY.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ValueError(
                f"node {where} names state class {name!r:.80}, which is not registered; "
                f"known: {sorted(_REGISTRY)}"
            )
        if not isinstance(fields, dict):
            raise ValueError(f"node {where}: 'fields' must be a JSON object")
        missing = [f for f in cls._fields if f not in fields]
        unknown = [f for f in fields if f not in cls._fields]
        if missing or unknown:
            raise ValueError(
                f"node {where} ({name}) has missing fields {missing}, unknown {unknown!r:.80}"
            )
        values = {f: self(fields[f], f"{where}.{f}", depth + 1) for f in cls._fields}
        return cls(**values)


def save(path: str | os.PathLike, params: Any, state: Any = None) -> Path:
    """Write ``params`` (a dict of arrays) and ``state`` (any optimizer state) to ``path`` (``.npz``).

    The file is written to a temporary name and renamed, so an interrupted save never leaves a torn file.
    Every limit :func:`load` enforces is checked first, so ``save`` either writes a file that ``load``
    accepts or raises without writing anything. Returns the path written.

    Raises
    ------
    TypeError
        ``path`` is not a str or path; or the tree holds something a checkpoint cannot store exactly: an
        unregistered NamedTuple, an object (or string/structured) array, a dict with non-str keys, or any
        other type. The message names where in ``params``/``state`` it is.
    ValueError
        ``path`` does not end in ``.npz``; the tree is nested deeper than 64 levels; it holds more than
        ``MAX_MEMBERS`` arrays, an array larger than ``MAX_MEMBER_BYTES``, or so many Python scalars that
        its JSON ``__tree__`` would be larger than ``MAX_TREE_BYTES`` (store long sequences of numbers as
        arrays).
    """
    path = check_path("path", path)
    if path.suffix != ".npz":
        raise ValueError(f"path must end in .npz, got {str(path)!r}")
    arrays: dict[str, np.ndarray] = {}
    tree = {
        "format": _FORMAT,
        "params": _encode(params, arrays, "params"),
        "state": _encode(state, arrays, "state"),
    }
    if len(arrays) > MAX_MEMBERS:
        raise ValueError(f"a checkpoint holds at most {MAX_MEMBERS} arrays, got {len(arrays)}")
    text = np.array(json.dumps(tree, allow_nan=False))
    size = _npy_bytes(text)
    if size > MAX_TREE_BYTES:  # load would refuse the file: refuse it before writing anything
        raise ValueError(
            f"params and state encode to a {_TREE_KEY} of {size} bytes, more than "
            f"MAX_TREE_BYTES={MAX_TREE_BYTES}, which load refuses; store long sequences of numbers "
            "as arrays, not as lists of Python scalars"
        )
    arrays[_TREE_KEY] = text
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


def _read_tree(zf: zipfile.ZipFile) -> dict:
    if _TREE_KEY + ".npy" not in zf.namelist():
        raise ValueError(f"not a refreg checkpoint (no {_TREE_KEY} entry)")
    raw = _read_member(zf, _TREE_KEY + ".npy", "U")
    if raw.ndim != 0:
        raise ValueError(f"{_TREE_KEY} must be a 0-d string, got shape {raw.shape}")
    try:
        tree = json.loads(str(raw[()]))
    except (json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{_TREE_KEY} is not valid JSON ({type(err).__name__})") from None
    if not isinstance(tree, dict) or set(tree) != {"format", "params", "state"}:
        raise ValueError(f"{_TREE_KEY} must hold exactly format, params, state")
    if tree["format"] != _FORMAT:
        raise ValueError(f"checkpoint format {tree['format']!r:.40}, expected {_FORMAT!r}")
    return tree


def load(path: str | os.PathLike, xp: Any = None) -> tuple[Any, Any]:
    """Read ``(params, state)`` written by :func:`save`; arrays as NumPy, or in namespace ``xp`` if given.

    Before any member is read, every size the zip directory declares is checked against ``MAX_TREE_BYTES``,
    ``MAX_MEMBER_BYTES`` and the file's real length; then the tree and every member are checked as the
    module docstring describes. Nothing in the file is executed or imported.

    Raises
    ------
    TypeError
        ``path`` is not a str or path, or ``xp`` is not None or an array namespace module (a module's name
        such as ``"numpy"`` is refused: pass the module).
    FileNotFoundError
        No file at ``path``.
    OSError
        The file exists but cannot be opened (e.g. no read permission).
    ValueError
        The file is not a well-formed refreg checkpoint (see the module docstring): a damaged, encrypted,
        compressed or oversized archive or member included; the message names the file. Nothing is executed.
    """
    path = check_path("path", path)
    xp = check_namespace(xp)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    # opened here, outside the try: failing to open the file is an OSError about the file system, while
    # every error after this point comes from the file's content
    with open(path, "rb") as fh:
        try:
            out = _load_archive(fh, xp)
        except (
            ValueError,
            zipfile.BadZipFile,
            EOFError,  # a member shorter than its header
            zlib.error,
            OSError,  # a damaged directory can make zipfile seek before the file's start
            RuntimeError,  # zipfile's "encrypted, password required" (also checked explicitly)
            NotImplementedError,  # zipfile's "compression method not supported" (also checked)
        ) as err:
            reason = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
            raise ValueError(f"{str(path)!r} is not a valid refreg checkpoint: {reason}") from None
    return out


def _load_archive(fh: Any, xp: Any) -> tuple[Any, Any]:
    """``(params, state)`` from the open checkpoint ``fh``; raises on any malformed content."""
    archive_bytes = os.fstat(fh.fileno()).st_size
    with zipfile.ZipFile(fh) as zf:
        names = zf.namelist()
        if len(names) > MAX_MEMBERS + 1:
            raise ValueError(f"{len(names)} members, more than MAX_MEMBERS + 1 = {MAX_MEMBERS + 1}")
        if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
            raise ValueError(f"members must be unique .npy arrays, got {names!r:.80}")
        _check_members(zf, archive_bytes)
        tree = _read_tree(zf)
        decode = _Decoder(zf, {n[:-4] for n in names} - {_TREE_KEY}, xp)
        out = decode(tree["params"], "params"), decode(tree["state"], "state")
        if decode.unused:
            raise ValueError(f"arrays the tree does not reference: {sorted(decode.unused)!r:.80}")
    return out
