"""Shared fixtures: the ``xp`` backend fixture and hypothesis profiles.

``xp`` runs a test on NumPy, on ``array_api_strict`` (the strict stand-in for a GPU array library on a machine
without one) and on CuPy when a CUDA device is present; the CuPy case skips with its reason otherwise.
Hypothesis profiles (``HYPOTHESIS_PROFILE``): ``dev`` (default, fast, random), ``ci`` (derandomized: the
same examples on every run, so CI is reproducible; set by ``.ci/run``), ``intense`` (1,000 examples).
The terminal summary reports how many hypothesis examples the run executed (passing test cases over all
phases, from hypothesis' own statistics).
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from refreg._backend import to_numpy

CI_MAX_EXAMPLES = 200

settings.register_profile(
    "dev", max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=CI_MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "intense", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


NO_CUPY = "CuPy is not installed (pip install 'refreg[gpu]' on a machine with a CUDA GPU)"


def _cupy_or_skip():
    try:
        import cupy
    except ImportError:
        pytest.skip(NO_CUPY)  # the gpu extra is not installed
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("CuPy is installed but no CUDA device is present")
    except Exception as err:  # CUDA driver missing or broken
        pytest.skip(f"CuPy is installed but CUDA is unavailable: {err}")
    return cupy


BACKEND_NAMES = ["numpy", "array_api_strict", "cupy"]


def namespace(name: str):
    """The array module for a backend name (skips CuPy without a GPU)."""
    if name == "numpy":
        return np
    if name == "array_api_strict":
        import array_api_strict

        return array_api_strict
    return _cupy_or_skip()


@pytest.fixture(params=BACKEND_NAMES)
def xp(request):
    """The array module to create inputs with: numpy, array_api_strict, or cupy (GPU only)."""
    return namespace(request.param)


def asnumpy(x):
    """Host copy of an array from any backend, for assertions."""
    return np.asarray(to_numpy(x))


@pytest.fixture
def to_np():
    return asnumpy


# "N passing examples" (older hypothesis) or "N passing, M failing" (newer): the statistics text is not a
# stable format, so match the number before "passing" only
_PASSING = re.compile(r"(\d+) passing\b")
_EXAMPLES = {"tests": 0, "examples": 0}


def pytest_runtest_teardown(item):
    stats = getattr(item, "hypothesis_statistics", None)
    if stats:
        _EXAMPLES["tests"] += 1
        _EXAMPLES["examples"] += sum(int(n) for n in _PASSING.findall(stats))


def pytest_terminal_summary(terminalreporter):
    if _EXAMPLES["tests"]:
        profile = settings.get_current_profile_name()
        terminalreporter.write_line(
            f"hypothesis: {_EXAMPLES['examples']} examples in {_EXAMPLES['tests']} property tests "
            f"(profile {profile!r})"
        )
