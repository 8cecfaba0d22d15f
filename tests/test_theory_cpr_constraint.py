"""Smoke test of theory/cpr_constraint.py on its tiny preset: files and columns exist, numbers are sane, AdamW's
weight decay is chosen on validation."""

from __future__ import annotations

import csv

from figure_checks import run_tiny

from theory import cpr_constraint


def test_tiny_preset_writes_figure_and_tables(tmp_path):
    columns = ("method", "weight_decay", "selected", "seed", "val_acc", "test_acc", "cpu_seconds")
    out, data = run_tiny(cpr_constraint, tmp_path, columns)
    with open(tmp_path / "cpr_constraint.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(c.startswith("max_rel_violation/") for c in rows[0])
    assert {r["method"] for r in rows} == set(cpr_constraint.PRESETS["tiny"]["methods"])
    ws = next(r for r in rows if r["method"] == "cpr_warm_start")
    assert float(ws["final_kappa/layers.0.weight"]) > 0  # the warm-start bound was set at step s
    grid = data["adamw_grid"]
    assert [g["weight_decay"] for g in grid] == cpr_constraint.PRESETS["tiny"]["weight_decays"]
    best = max(grid, key=lambda g: g["val_acc"])
    assert [g["selected"] for g in grid] == [g is best for g in grid]
    chosen = {
        float(r["weight_decay"]) for r in rows if r["method"] == "adamw" and r["selected"] == "True"
    }
    assert chosen == {best["weight_decay"]}
    assert len(data["curves"]) == len(rows) - len(grid) * 2 + 2  # curves of the chosen AdamW only
    assert len(out["rows"]) == 1 and "±" in out["rows"][0]["measured"]
