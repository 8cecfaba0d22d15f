"""Smoke test of theory/cpr_constraint.py on its tiny preset: files and columns exist, numbers are sane."""

from __future__ import annotations

import csv
import json

from theory import cpr_constraint


def test_tiny_preset_writes_figure_and_tables(tmp_path):
    out = cpr_constraint.main(tmp_path, preset="tiny")
    for ext in ("png", "svg", "csv", "json"):
        assert (tmp_path / f"cpr_constraint.{ext}").stat().st_size > 0
    with open(tmp_path / "cpr_constraint.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"method", "seed", "test_acc", "cpu_seconds"} <= set(rows[0])
    assert any(c.startswith("max_rel_violation/") for c in rows[0])
    assert {r["method"] for r in rows} == set(cpr_constraint.PRESETS["tiny"]["methods"])
    ws = next(r for r in rows if r["method"] == "cpr_warm_start")
    assert float(ws["final_kappa/layers.0.weight"]) > 0  # the warm-start bound was set at step s
    data = json.loads((tmp_path / "cpr_constraint.json").read_text())
    assert len(data["curves"]) == len(rows)
    (row,) = out["rows"]
    assert set(row) == {"figure", "claim", "paper", "measured"}
