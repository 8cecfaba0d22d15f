"""The `equivalence` figure script runs end to end on its tiny preset and writes its figure and data."""

from __future__ import annotations

from figure_checks import run_tiny

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
    _, data = run_tiny(figure, tmp_path, COLUMNS)
    assert data["preset"] == figure.PRESETS["tiny"]
    check(data)
