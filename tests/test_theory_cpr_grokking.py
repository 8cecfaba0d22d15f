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


def test_thread_check_reruns_are_reported_apart(tmp_path):
    """The quick preset reruns AdamW wd 1 and CPR k = 0.8 with 2 BLAS threads; the reruns never enter the
    figure's statistics and are compared with their 1-thread runs under ``thread_check``."""
    quick = cpr_grokking.configs(cpr_grokking.PRESETS["quick"])
    reruns = [c for c in quick if c.blas_threads != 1]
    assert {(c.variant, c.seed, c.blas_threads) for c in reruns} == {
        (v, s, 2) for v in ("adamw_1", "cpr_0.8") for s in range(3)
    }
    preset = dict(
        cpr_grokking.PRESETS["tiny"],
        max_steps=40,
        thread_check={"variants": ["cpr_0.8"], "blas_threads": 2},
    )
    results = [cpr_grokking.run(c) for c in cpr_grokking.configs(preset)]
    out = cpr_grokking.report(preset, results, tmp_path)
    data = __import__("json").loads((tmp_path / f"{cpr_grokking.NAME}.json").read_text())
    assert len(data["runs"]) == len(results) - 1
    (row,) = data["thread_check"]
    assert (row["variant"], row["seed"], row["blas_threads"]) == ("cpr_0.8", 0, 2)
    assert row["delay_shift"] == row["delay"] - row["delay_1_thread"]
    assert "BLAS threads" in out["rows"][0]["measured"]
