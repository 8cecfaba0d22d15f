"""Smoke test of theory/cpr_grokking.py on its tiny preset, and the delay bookkeeping of one run."""

from __future__ import annotations

import csv
import json

from figure_checks import run_tiny

from theory import cpr_grokking


def test_tiny_preset_writes_figure_and_tables(tmp_path):
    expected = (
        "method",
        "seed",
        "kappa_ratio",
        "train99_step",
        "val95_step",
        "delay",
        "grokked",
        "cpu_seconds",
    )
    out, data = run_tiny(cpr_grokking, tmp_path, expected)
    with open(tmp_path / "cpr_grokking.csv") as f:
        rows = list(csv.DictReader(f))
    methods = {r["method"] for r in rows}
    assert methods == set(cpr_grokking.PRESETS["tiny"]["methods"]) | {"cpr_kappa_sweep"}
    assert {"runs", "curves"} <= set(data)
    assert len(out["rows"]) == 1


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
