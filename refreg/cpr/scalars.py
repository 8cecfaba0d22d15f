"""CPR's scalar arithmetic policies: λ, κ, μ/n and the detector in float64, or rounded as the release's float32.

CPR keeps a few scalars per tensor: the multiplier λ, the bound κ, the dual rate μ/n and the inflection-point
detector's averages. The textbook algorithm computes them exactly (:class:`Float64Scalars`, the default). The
released pytorch-cpr 0.3.1 stores them as float32 tensors even for float64 parameters; a port that must match
its numbers bit for bit reproduces :class:`Float32ReleaseScalars`. A policy is passed to
:func:`refreg.cpr.cpr` (``scalar_dtype="float64"`` or ``"float32"``, or a policy object) and used only in the
places listed in its methods, so the algorithm itself (``CPR.update``) reads the same for both.

Why rounding after each float64 operation emulates float32 exactly: one IEEE float32 operation equals the
float64 result of the same operation rounded to float32, because 53 >= 2·24 + 2 bits (double rounding is
innocuous for +, −, ×, ÷ and sqrt at these widths).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

__all__ = [
    "SCALAR_DTYPES",
    "Float32ReleaseScalars",
    "Float64Scalars",
    "ScalarPolicy",
    "round_to_dtype",
    "scalar_policy",
]

SCALAR_DTYPES = ("float64", "float32")


def round_to_dtype(x: float, dtype: str) -> float:
    """``x`` rounded to ``dtype`` ("float32" or "float64"), returned as a Python float (exact in both cases).

    Overflow to ±inf in float32 is silent, as in the release's float32 tensors.
    """
    if dtype == "float32":
        with np.errstate(over="ignore"):
            return float(np.float32(x))
    return float(x)


def dtype_name(x: Any, xp: Any) -> str:
    """ "float32" for a float32 array, else "float64": the dtype the release computes ``R − κ`` in."""
    return "float32" if x.dtype == xp.float32 else "float64"


class ScalarPolicy(Protocol):
    """The scalar operations of CPR whose rounding a port must reproduce (see the module docstring)."""

    name: ClassVar[str]

    def round(self, x: float) -> float:
        """A scalar stored in the state (κ, μ/n, a detector average) in this policy's dtype."""
        ...

    def dual_ascent(
        self,
        lam: float,
        value: float,
        kappa: float,
        rate: float,
        param_dtype: str,
        increment_rounded: bool = True,
    ) -> float:
        """The multiplier update ``max(0, λ + rate·(R − κ))`` (docs/derivations.md, "CPR's multiplier").

        ``increment_rounded``: where the release's increment ``rate·(R − κ)`` is a 0-dim tensor (its
        single-tensor path; the l2 and Huber branches of its multi-tensor path), torch rounds it to λ's
        float32 before adding; where it has shape [1] (the std and l1 branches of the multi-tensor path, which
        Kappa-IP runs on) the sum is taken in the parameters' dtype and rounded once (False): checked
        against the release for std (``tests/test_cpr_release.py``); for l1 read from its code, since its
        multi-tensor l1 step uses θ for sign θ and no trajectory can be compared.
        """
        ...

    def ema(self, average: float, decay: float, sample: float) -> float:
        """``decay·average + (1 − decay)·sample``, the inflection-point detector's average of ‖θ‖."""
        ...

    def relative_growth(self, current: float, previous: float) -> float:
        """``(current − previous) / current`` (NaN for ``current = 0``), the detector's growth over S steps."""
        ...


@dataclass(frozen=True)
class Float64Scalars:
    """The textbook algorithm: every CPR scalar in float64, no rounding (``scalar_dtype="float64"``).

    For float64 parameters all of CPR's arithmetic is then float64; for float32 parameters R(θ) is computed in
    float32 and the scalars in float64.
    """

    name: ClassVar[str] = "float64"

    def round(self, x: float) -> float:
        return float(x)

    def dual_ascent(
        self,
        lam: float,
        value: float,
        kappa: float,
        rate: float,
        param_dtype: str,
        increment_rounded: bool = True,
    ) -> float:
        return max(0.0, lam + rate * (value - kappa))

    def ema(self, average: float, decay: float, sample: float) -> float:
        return decay * average + (1.0 - decay) * sample

    def relative_growth(self, current: float, previous: float) -> float:
        return (current - previous) / current if current != 0.0 else math.nan


@dataclass(frozen=True)
class Float32ReleaseScalars:
    """The released pytorch-cpr 0.3.1's float32 scalars, bit for bit (``scalar_dtype="float32"``).

    ``fl32(x)`` is rounding to float32 and ``fl_p(x)`` rounding to the parameters' dtype:

    - stored scalars: ``κ = fl32(κ)``, ``μ/n = fl32(μ/n)``, Kappa-kI₀ ``κ = fl32(fl32(k)·fl32(R(θ₀)))``;
    - the multiplier: ``λ ← max(0, fl32(λ + fl32(fl_p(fl_p(R − κ)·(μ/n)))))`` (``R − κ`` and the product are
      computed in the parameters' dtype, as torch promotes a float32 0-d tensor against a float64 one); on the
      release's multi-tensor std and l1 branches (Kappa-IP with those measures) ``λ ← max(0,
      fl32(fl_p(λ + fl_p(fl_p(R − κ)·(μ/n)))))``, one rounding to float32 (``increment_rounded=False``);
    - the detector: ``e ← fl32(fl32(e·fl32(d)) + fl32(1 − d)·fl32(‖θ‖))`` (torch's ``mul_`` then ``add_``
      with one rounding each), growth ``fl32(fl32(e − e_prev)/e)``, the 1 % floor ``fl32(0.01)``.
    """

    name: ClassVar[str] = "float32"

    def round(self, x: float) -> float:
        return round_to_dtype(x, "float32")

    def dual_ascent(
        self,
        lam: float,
        value: float,
        kappa: float,
        rate: float,
        param_dtype: str,
        increment_rounded: bool = True,
    ) -> float:
        violation = round_to_dtype(value - kappa, param_dtype)
        increment = round_to_dtype(violation * rate, param_dtype)
        if increment_rounded:  # a 0-dim increment: torch computes λ + increment in λ's float32
            increment = self.round(increment)
        # else a [1]-shaped one: λ + increment in the parameters' dtype (float32 + float64 promotes), one rounding
        return max(0.0, self.round(round_to_dtype(lam + increment, param_dtype)))

    def ema(self, average: float, decay: float, sample: float) -> float:
        decayed = self.round(average * self.round(decay))
        return self.round(decayed + self.round(1.0 - decay) * self.round(sample))

    def relative_growth(self, current: float, previous: float) -> float:
        if current == 0.0:
            return math.nan
        return self.round(self.round(current - previous) / current)


_POLICIES: dict[str, ScalarPolicy] = {
    "float64": Float64Scalars(),
    "float32": Float32ReleaseScalars(),
}


def scalar_policy(scalar_dtype: str | ScalarPolicy) -> ScalarPolicy:
    """The policy for ``scalar_dtype`` ("float64" or "float32"), or the policy object itself.

    Raises
    ------
    ValueError
        An unknown name; the message lists the valid ones.
    """
    if isinstance(scalar_dtype, (Float64Scalars, Float32ReleaseScalars)):
        return scalar_dtype
    if not isinstance(scalar_dtype, str) or scalar_dtype not in _POLICIES:
        raise ValueError(
            f"scalar_dtype must be one of {list(SCALAR_DTYPES)} or a scalar policy "
            f"(Float64Scalars(), Float32ReleaseScalars()), got {scalar_dtype!r}"
        )
    return _POLICIES[scalar_dtype]
