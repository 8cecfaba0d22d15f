"""Smoke test of theory/cpr_constraint.py on its tiny preset: files and columns exist, numbers are sane."""

from __future__ import annotations

import csv

from figure_checks import run_tiny

from theory import cpr_constraint


def test_tiny_preset_writes_figure_and_tables(tmp_path):
    out, data = run_tiny(cpr_constraint, tmp_path, ("method", "seed", "test_acc", "cpu_seconds"))
    with open(tmp_path / "cpr_constraint.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"method", "seed", "test_acc", "cpu_seconds"} <= set(rows[0])
    assert any(c.startswith("max_rel_violation/") for c in rows[0])
    assert {r["method"] for r in rows} == set(cpr_constraint.PRESETS["tiny"]["methods"])
    ws = next(r for r in rows if r["method"] == "cpr_warm_start")
    assert float(ws["final_kappa/layers.0.weight"]) > 0  # the warm-start bound was set at step s
    assert len(data["curves"]) == len(rows)
    assert len(out["rows"]) == 1
