"""The `prox_geometry` figure script runs end to end on its tiny preset and writes its figure and data."""

from __future__ import annotations

from figure_checks import run_tiny

from theory import prox_geometry as figure

COLUMNS = ("tau", "frac_w_zero", "frac_v_zero", "max_grid_excess", "max_scipy_excess")


def check(data):
    for row in data["joint"]:
        assert row["max_grid_excess"] <= 1e-12
        assert row["max_scipy_excess"] <= 1e-9
        assert row["max_stationarity_error"] <= 1e-10
        assert row["max_subgradient_violation"] <= 1e-12
    assert data["soft_threshold"]["max_moreau_error"] < 1e-12
    assert data["soft_threshold"]["max_expansion"] <= 1e-12


def test_tiny_preset_writes_figure_and_data(tmp_path):
    _, data = run_tiny(figure, tmp_path, COLUMNS)
    assert data["preset"] == figure.PRESETS["tiny"]
    check(data)
