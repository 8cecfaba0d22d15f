"""The `equivalence` figure script runs end to end on its tiny preset and writes its figure and data."""

from __future__ import annotations

import csv
import json

import matplotlib

matplotlib.use("Agg")

from theory import equivalence as figure

COLUMNS = (
    "path_norm",
    "weight_decay",
    "path_norm_balanced",
    "weight_decay_balanced",
    "output_change",
)


def check(data):
    m = data["measures"]
    assert m["rescaling_max_rel_gap"] < 1e-8
    assert m["min_rel_excess_before"] >= 0.0  # WD >= PN on every net
    assert m["max_rel_gap_balanced"] < 1e-12  # equal after balancing
    assert m["max_output_change"] < 1e-10
    assert m["delta_ratio"][0] < 1.0  # imbalance shrinks


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
    assert figure.NAME == "equivalence"
    assert set(figure.PRESETS) == {"tiny", "quick", "full"}
    assert figure.DESCRIPTION and figure.QUICK_SECONDS > 0
    configs = figure.configs(figure.PRESETS["tiny"], None)
    assert configs and all("seed" in c for c in configs)
    json.dumps(configs)
