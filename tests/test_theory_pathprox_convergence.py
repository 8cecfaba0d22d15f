"""The `pathprox_convergence` figure script runs end to end on its tiny preset and writes its figure and data."""

from __future__ import annotations

import csv
import json

import matplotlib

matplotlib.use("Agg")

from theory import pathprox_convergence as figure

COLUMNS = ("dataset", "method", "seed", "iteration", "objective", "active_units", "train_loss")


def check(data):
    methods = {s["method"] for s in data["summary"]}
    assert methods == {"pathprox_sphere", "pathprox_joint", "sgd_weight_decay"}
    for s in data["summary"]:
        assert 0.0 <= s["final_active_units"] <= 100.0
        if s["method"] == "sgd_weight_decay":
            assert s["final_active_units"] == 100.0  # weight decay never zeroes a unit exactly
            assert s["iterations_to_target"] == s["iterations"]


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
    assert figure.NAME == "pathprox_convergence"
    assert set(figure.PRESETS) == {"tiny", "quick", "full"}
    assert figure.DESCRIPTION and figure.QUICK_SECONDS > 0
    configs = figure.configs(figure.PRESETS["tiny"], None)
    assert configs and all("seed" in c for c in configs)
    json.dumps(configs)
