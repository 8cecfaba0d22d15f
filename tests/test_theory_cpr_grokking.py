"""Smoke test of theory/cpr_grokking.py on its tiny preset, and the delay bookkeeping of one run."""

from __future__ import annotations

import csv
import json

from theory import cpr_grokking


def test_tiny_preset_writes_figure_and_tables(tmp_path):
    out = cpr_grokking.main(tmp_path, preset="tiny")
    for ext in ("png", "svg", "csv", "json"):
        assert (tmp_path / f"cpr_grokking.{ext}").stat().st_size > 0
    with open(tmp_path / "cpr_grokking.csv") as f:
        rows = list(csv.DictReader(f))
    expected = {
        "method",
        "seed",
        "kappa_ratio",
        "train99_step",
        "val95_step",
        "delay",
        "grokked",
        "cpu_seconds",
    }
    assert expected <= set(rows[0])
    methods = {r["method"] for r in rows}
    assert methods == set(cpr_grokking.PRESETS["tiny"]["methods"]) | {"cpr_kappa_sweep"}
    data = json.loads((tmp_path / "cpr_grokking.json").read_text())
    assert {"runs", "curves"} <= set(data)
    (row,) = out["rows"]
    assert set(row) == {"figure", "claim", "paper", "measured"}


def test_run_records_delay_consistently():
    preset = dict(cpr_grokking.PRESETS["tiny"], max_steps=60)
    config = next(c for c in cpr_grokking.configs(preset, 1) if c["method"] == "adamw")
    result = cpr_grokking.run(config)
    assert result["steps_run"] <= 60
    if result["val95"] is not None and result["train99"] is not None:
        assert result["delay"] == result["val95"] - result["train99"]
    else:
        assert result["delay"] is None
    assert all(0.0 <= a <= 1.0 for a in result["curves"]["val_acc"])
    json.dumps(result)  # JSON-able, as the runner requires
