"""Smoke test of the sparse_tradeoff figure script on its tiny preset."""

from __future__ import annotations

import csv
import json

from theory import sparse_tradeoff


def test_tiny_preset_writes_figure_and_tables(tmp_path):
    out = sparse_tradeoff.main(tmp_path, preset="tiny")
    for suffix in (".png", ".svg", ".csv", ".json", "_ratios.csv"):
        assert (tmp_path / f"sparse_tradeoff{suffix}").stat().st_size > 0
    with open(tmp_path / "sparse_tradeoff.csv") as f:
        rows = list(csv.DictReader(f))
    assert {
        "optimizer",
        "method",
        "scope",
        "alpha",
        "stage",
        "kind",
        "threshold",
        "nnz",
        "acc",
    } <= set(rows[0])
    assert {r["method"] for r in rows} == {"dense", "spatial_entropy", "l1"}
    assert {r["stage"] for r in rows} == {"trained", "curve", "finetuned"}
    with open(tmp_path / "sparse_tradeoff_ratios.csv") as f:
        ratios = list(csv.DictReader(f))
    assert {
        "entropy",
        "baseline",
        "entropy_nnz",
        "baseline_nnz",
        "ratio_baseline_over_entropy",
    } <= set(ratios[0])
    summary = json.loads((tmp_path / "sparse_tradeoff.json").read_text())
    assert 0.0 < summary["dense"]["adam"]["acc"] <= 1.0
    assert out["rows"] and {"figure", "claim", "paper", "measured"} <= set(out["rows"][0])
    assert all(str(p).startswith(str(tmp_path)) for p in out["files"])


def test_configs_cover_the_open_questions():
    cfgs = sparse_tradeoff.configs(sparse_tradeoff.PRESETS["quick"])
    assert {c["optimizer"] for c in cfgs} == {"adam", "sgd"}
    assert {c["scope"] for c in cfgs if c["method"] == "spatial_entropy"} == {"layer", "network"}
    assert len({c["seed"] for c in cfgs}) >= 3
    assert all(c["finetune_abs"] and c["finetune_rel"] for c in cfgs)
