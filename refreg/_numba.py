"""refreg's optional compiled kernels (numba, the ``fast`` extra): the switch and the lazy compiler.

The NumPy code is refreg's reference everywhere. A few speed paths have a numba twin that performs the same
IEEE operations on the same operands in the same order (no fast-math, no reassociation, so no fused
multiply-add; NumPy's error model, so a division by zero gives inf or NaN as in NumPy instead of raising),
hence equal results bit for bit; each is tested against its NumPy lines and skipped without
numba. They run when numba imports and ``REFREG_NUMBA`` is not ``0``; :func:`set_enabled` switches them
off and on at run time (the benchmarks time both). Kernels are compiled on first use and cached on disk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["JIT_OPTIONS", "enabled", "kernels", "set_enabled", "version"]

# every kernel's compile options: cached on disk; no GIL held; NumPy's error model (module docstring)
JIT_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}

_STATE: dict[str, Any] = {"enabled": os.environ.get("REFREG_NUMBA", "1") != "0", "numba": None}
_BUILT: dict[Callable, dict[str, Any]] = {}


def set_enabled(flag: bool) -> bool:
    """Use the numba kernels (when numba imports) or not; returns the previous setting."""
    previous = _STATE["enabled"]
    _STATE["enabled"] = bool(flag)
    return previous


def _module() -> Any:
    if _STATE["numba"] is None:
        try:
            import numba
        except ImportError:
            numba = False
        _STATE["numba"] = numba
    return _STATE["numba"]


def enabled() -> bool:
    """True when the kernels are switched on, numba imports and its JIT is on (``NUMBA_DISABLE_JIT`` unset)."""
    return bool(_STATE["enabled"] and _module() and not _module().config.DISABLE_JIT)


def version() -> str | None:
    """numba's version, or None when it does not import."""
    return _module().__version__ if _module() else None


def kernels(build: Callable[[Callable], dict[str, Any]]) -> dict[str, Any] | None:
    """``build(jit)``'s kernels, compiled once, or None when switched off or without numba."""
    # off also under NUMBA_DISABLE_JIT: the kernels would run as Python, which the vector sum cannot
    if not enabled():
        return None
    built = _BUILT.get(build)
    if built is None:
        built = _BUILT[build] = build(_module().njit(**JIT_OPTIONS))
    return built
