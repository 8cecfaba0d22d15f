"""theory/cpr_grokking.py on its tiny preset: files, the AdamW/CPR grid, censoring at the cap, repeatability."""

from __future__ import annotations

import csv
import json

from figure_checks import run_tiny

from theory import cpr_grokking


def test_tiny_preset_writes_figure_and_tables(tmp_path):
    expected = (
        "variant",
        "seed",
        "weight_decay",
        "kappa_factor",
        "train99_step",
        "val95_step",
        "delay",
        "delay_censored",
        "grokked",
        "cpu_seconds",
    )
    out, data = run_tiny(cpr_grokking, tmp_path, expected)
    with open(tmp_path / "cpr_grokking.csv") as f:
        rows = list(csv.DictReader(f))
    tiny = cpr_grokking.PRESETS["tiny"]
    expected_variants = {f"adamw_{wd:g}" for wd in tiny["weight_decays"]}
    expected_variants |= {f"cpr_{k:g}" for k in tiny["kappa_factors"]}
    assert {r["variant"] for r in rows} == expected_variants
    assert {"settings", "runs", "curves", "environment"} <= set(data)
    assert len(out["rows"]) == 1


def test_run_is_repeatable_and_censors_at_the_cap():
    preset = dict(cpr_grokking.PRESETS["tiny"], max_steps=40)
    config = next(c for c in cpr_grokking.configs(preset, 1) if c.kappa_factor > 0)
    result = cpr_grokking.run(config)
    assert result["curves"] == cpr_grokking.run(config)["curves"]  # same run, same machine: bitwise
    assert result["steps_run"] <= 40
    assert result["delay"] == result["val95_step"] - result["train99_step"]
    if result["val95_censored"]:
        assert result["val95_step"] == 40 and result["delay_censored"]
    assert all(0.0 <= a <= 1.0 for a in result["curves"]["val_acc"])
    json.dumps(result)  # JSON-able, as the runner requires


def test_quick_preset_compares_adamw_decays_with_the_cpr_sweep_at_one_lr():
    quick = cpr_grokking.PRESETS["quick"]
    assert {0.1, 0.3, 1.0} <= set(quick["weight_decays"]) and quick["seeds"] >= 3
    runs = cpr_grokking.configs(quick)
    assert len({c.lr for c in runs}) == 1
