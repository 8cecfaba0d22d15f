"""theory/grokking_transformer.py: tiny preset end to end, bitwise repeatability, censoring, the release's settings."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, replace

from figure_checks import run_tiny

from theory import grokking_transformer as gt


def test_tiny_preset_writes_figure_and_tables(tmp_path):
    expected = (
        "variant",
        "seed",
        "train99_step",
        "train99_censored",
        "val95_step",
        "val95_censored",
        "delay",
        "delay_censored",
        "final_val_acc",
        "cpu_seconds",
    )
    out, data = run_tiny(gt, tmp_path, expected)
    with open(tmp_path / f"{gt.NAME}.csv") as f:
        rows = list(csv.DictReader(f))
    tiny = gt.PRESETS["tiny"]
    assert {r["variant"] for r in rows} == set(tiny["variants"]) | {"cpr_1"}
    assert {"settings", "runs", "curves", "environment"} <= set(data)
    for key in (
        "p",
        "train_fraction",
        "d_model",
        "heads",
        "d_mlp",
        "batch_size",
        "lr",
        "betas",
        "init",
    ):
        assert key in data["settings"]
    assert data["environment"]["blas"] and data["environment"]["numpy"]
    assert len(out["rows"]) == 1


def test_same_run_is_bitwise_repeatable_and_censored_at_the_cap():
    config = next(c for c in gt.configs(gt.PRESETS["tiny"], 1) if c.variant == "cpr_0.8")
    first, second = gt.run(config), gt.run(config)
    assert first["curves"] == second["curves"]
    assert max(first["curves"]["lam/head.weight"]) > 0.0  # κ = 0.8·R(θ₀): the constraint acts
    json.dumps(first)  # JSON-able, as the runner requires
    # tiny runs 24 steps and cannot grok: thresholds censored at the cap, runs kept
    assert first["val95_censored"] and first["val95_step"] == config.max_steps
    assert first["delay"] == first["val95_step"] - first["train99_step"]
    assert first["environment"]["blas"][0]["num_threads"] == 1


def test_full_preset_is_the_release_setting():
    full = gt.PRESETS["full"]
    assert (full["p"], full["train_fraction"], full["batch_size"]) == (113, 0.3, 512)
    assert (full["d_model"], full["heads"], full["d_mlp"], full["layer_norm"]) == (
        128,
        4,
        512,
        False,
    )
    assert (full["lr"], full["betas"], full["max_steps"]) == (1e-3, [0.9, 0.98], 8000)
    variants = {c.variant: c for c in gt.configs(full, 1)}
    assert variants["adamw_0.1"].weight_decay == 0.1 and variants["cpr_0.8"].kappa_factor == 0.8
    assert {"adam", "rescale_0.8", "adamw_0.3", "adamw_1.0", "cpr_0.5", "cpr_1.5"} <= set(variants)
    assert len(gt.configs(full)) == 3 * len(variants)
    # the data split: int(0.3·113²) = 3,830 training pairs, as the release's random_split
    import numpy as np

    x_tr, y_tr, x_va, _ = gt.task(113, 0.3, np.random.default_rng(0))
    assert x_tr.shape == (3830, 3) and x_va.shape == (12769 - 3830, 3)
    assert (x_tr[:, 2] == 113).all() and ((x_tr[:, 0] + x_tr[:, 1]) % 113 == y_tr).all()
    net = gt.Transformer(114, 3, 128, 4, 512)
    assert (
        gt.release_stds(net, 113) == {}
    )  # vocabulary 114: the release's 1/sqrt(113) rule hits nothing


def test_config_is_frozen_and_hashable_by_its_fields():
    config = gt.configs(gt.PRESETS["tiny"], 1)[0]
    assert asdict(replace(config, seed=1))["seed"] == 1
    assert hash(config) == hash(replace(config))


def test_quick_thread_check_reruns_cpr_seed_0_with_two_threads():
    from theory import grokking_transformer

    runs = grokking_transformer.configs(grokking_transformer.PRESETS["quick"])
    reruns = [(r.variant, r.seed, r.blas_threads) for r in runs if r.blas_threads != 1]
    assert reruns == [("cpr_0.8", 0, 2)]
