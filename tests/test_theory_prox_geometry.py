"""The `prox_geometry` figure script runs end to end on its tiny preset and writes its figure and data."""

from __future__ import annotations

import csv
import json

import matplotlib

matplotlib.use("Agg")

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
    out = figure.main(tmp_path, preset="tiny")
    for suffix in ("png", "svg", "csv", "json"):
        path = tmp_path / f"{figure.NAME}.{suffix}"
        assert path.is_file() and path.stat().st_size > 0, path
    with open(tmp_path / f"{figure.NAME}.csv") as f:
        header = next(csv.reader(f))
    assert set(COLUMNS) <= set(header), header
    data = json.loads((tmp_path / f"{figure.NAME}.json").read_text())
    assert data["preset"] == figure.PRESETS["tiny"]
    assert out["rows"] and all(
        set(r) == {"figure", "claim", "paper", "measured"} for r in out["rows"]
    )
    check(data)


def test_protocol_constants():
    assert figure.NAME == "prox_geometry"
    assert set(figure.PRESETS) == {"tiny", "quick", "full"}
    assert figure.DESCRIPTION and figure.QUICK_SECONDS > 0
    configs = figure.configs(figure.PRESETS["tiny"], None)
    assert configs and all("seed" in c for c in configs)
    json.dumps(configs)
