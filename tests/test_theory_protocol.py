"""Every figure script follows the protocol that `python -m theory figures` drives (theory/__init__.py)."""

from __future__ import annotations

import dataclasses
import importlib
import json

import pytest

from theory import FIGURES


@pytest.mark.parametrize("name", FIGURES)
def test_figure_script_follows_the_protocol(name):
    figure = importlib.import_module(f"theory.{name}")
    assert figure.NAME == name
    assert {"tiny", "quick", "full"} <= set(figure.PRESETS)
    assert isinstance(figure.DESCRIPTION, str) and figure.DESCRIPTION
    assert figure.QUICK_SECONDS > 0
    for preset in ("tiny", "quick"):
        config = figure.PRESETS[preset]
        configs = figure.configs(config if dataclasses.is_dataclass(config) else dict(config), None)
        assert configs
        for c in configs:
            if dataclasses.is_dataclass(c):
                assert c.__dataclass_params__.frozen and hasattr(c, "seed")
                c = dataclasses.asdict(c)
            assert "seed" in c
            json.dumps(c)  # JSON-able: hashed for the cache, sent to workers
    assert callable(figure.run) and callable(figure.report) and callable(figure.main)


def test_one_value_has_no_interval_and_a_diverged_run_no_mean():
    """A single seed's 95 % interval is undefined (NaN), never ± 0; a non-finite value has no finite mean."""
    import math

    from theory._common import format_ci, mean_ci

    mean, half = mean_ci([0.25])
    assert mean == 0.25 and math.isnan(half)
    assert format_ci(mean, half, ".2f", 100) == "25.00 (one run, no interval)"
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302652729911275 * 1.0 / math.sqrt(3))
    assert format_ci(mean, half, ".1f") == "2.0 ± 2.5"
    assert mean_ci([1.0, math.inf])[0] == math.inf and math.isnan(mean_ci([1.0, math.nan])[0])


def test_every_runner_pins_blas_to_one_thread():
    """``run_sequential`` (each script's ``main``) pins BLAS as the parallel runner does: the summation order,
    and with it, e.g., whether the sphere prox diverges in seed 2, depends on the thread count."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    from theory._common import pinned_run

    class Module:
        @staticmethod
        def run(config):
            return [
                p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"
            ]

    assert pinned_run(Module, None) and set(pinned_run(Module, None)) == {1}
    assert set(pinned_run(Module, None, threads=2)) == {2}


def test_mean_ci_keeps_the_sign_of_inf_and_handles_no_value():
    import math
    import warnings

    from theory._common import mean_ci

    assert mean_ci([-math.inf, 1.0])[0] == -math.inf
    assert math.isnan(mean_ci([math.inf, -math.inf])[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean, half = mean_ci([])
    assert math.isnan(mean) and math.isnan(half)
