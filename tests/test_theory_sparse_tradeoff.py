"""Smoke test of the sparse_tradeoff figure script on its tiny preset."""

from __future__ import annotations

import csv

from figure_checks import run_tiny

from theory import sparse_tradeoff


def test_tiny_preset_writes_figure_and_tables(tmp_path):
    columns = ("optimizer", "method", "scope", "alpha", "stage", "kind", "threshold", "nnz", "acc")
    out, summary = run_tiny(sparse_tradeoff, tmp_path, columns)
    assert (tmp_path / "sparse_tradeoff_ratios.csv").stat().st_size > 0
    with open(tmp_path / "sparse_tradeoff.csv") as f:
        rows = list(csv.DictReader(f))
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
    assert 0.0 < summary["dense"]["adam"]["acc"] <= 1.0
    assert out["rows"] and {"figure", "claim", "paper", "measured"} <= set(out["rows"][0])
    assert all(str(p).startswith(str(tmp_path)) for p in out["files"])


def test_configs_cover_the_open_questions():
    cfgs = sparse_tradeoff.configs(sparse_tradeoff.PRESETS["quick"])
    assert {c["optimizer"] for c in cfgs} == {"adam", "sgd"}
    assert {c["scope"] for c in cfgs if c["method"] == "spatial_entropy"} == {"layer", "network"}
    assert len({c["seed"] for c in cfgs}) >= 3
    assert all(c["finetune_abs"] and c["finetune_rel"] for c in cfgs)


def test_every_full_preset_method_runs():
    """One config per (method, scope) of the full preset, shrunk to one epoch of a 64-8-10 net."""
    full = sparse_tradeoff.PRESETS["full"]
    cfgs = sparse_tradeoff.configs(full, seeds=1)
    seen = set()
    for cfg in cfgs:
        key = (cfg["optimizer"], cfg["method"], cfg["scope"])
        if key in seen or cfg["optimizer"] != "sgd":
            continue
        seen.add(key)
        small = {**cfg, "hidden": [8], "epochs": 1, "finetune_epochs": 1}
        res = sparse_tradeoff.run(small)
        assert 0.0 <= res["acc_trained"] <= 1.0 and res["n_weights"] == 64 * 8 + 8 * 10
        assert all(p["nnz"] <= res["n_weights"] for p in res["finetuned"])
    methods = {m for _, m, _ in seen}
    assert methods == {"dense", *sparse_tradeoff.sparse.REGULARIZERS}
    assert {s for _, m, s in seen if m == "hoyer_square"} == {"layer", "network"}
