"""CPR's scalar arithmetic: λ, κ and the detector in float64, or rounded like the release's float32 scalars."""

from __future__ import annotations

from typing import Any

import numpy as np

SCALAR_DTYPES = ("float64", "float32")


def _round(x: float, dtype: str) -> float:
    """``x`` rounded to ``dtype`` ("float32" or "float64"), as a Python float (exact in both cases).

    One IEEE float32 operation equals the float64 result rounded to float32 (53 >= 2·24 + 2 bits), so rounding
    after each float64 operation emulates float32 scalar arithmetic exactly.
    """
    if dtype == "float32":
        with np.errstate(over="ignore"):
            return float(np.float32(x))
    return float(x)


def _dtype_name(x: Any, xp: Any) -> str:
    return "float32" if x.dtype == xp.float32 else "float64"
