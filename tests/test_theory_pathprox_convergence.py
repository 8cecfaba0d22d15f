"""The `pathprox_convergence` figure script runs end to end on its tiny preset and writes its figure and data."""

from __future__ import annotations

from figure_checks import run_tiny

from theory import pathprox_convergence as figure

COLUMNS = ("run", "seed", "iteration", "objective", "active_units", "active_rel", "train_loss")


def test_tiny_preset_writes_figure_and_data(tmp_path):
    _, data = run_tiny(figure, tmp_path, COLUMNS)
    assert data["preset"] == figure.PRESETS["tiny"]
    assert data["baseline_lr"] in figure.PRESETS["tiny"]["baseline_lrs"]
    runs = {s["run"] for s in data["summary"]}
    assert runs == {"pathprox_sphere", "pathprox_joint"} | {
        f"sgd_weight_decay@{lr:g}" for lr in figure.PRESETS["tiny"]["baseline_lrs"]
    }
    for s in data["summary"]:
        if s["final_objective"] == float("inf"):  # a diverged lr is recorded, never the baseline
            assert s["method"] == "sgd_weight_decay" and not s["baseline"]
            continue
        assert 0.0 <= s["active_rel"] <= s["active_exact"] + 1e-9 <= 100.0 + 1e-9
        assert 0.0 <= s["test_acc"] <= 1.0
        if s["method"] == "sgd_weight_decay":
            assert s["active_exact"] == 100.0  # weight decay never zeroes a unit exactly
        if s["baseline"]:
            assert s["ratio_to_baseline"] == 1.0
    assert sum(s["baseline"] for s in data["summary"]) == figure.PRESETS["tiny"]["seeds"]


def _result(method, lr, seed, objective):
    config = {"method": method, "lr": lr, "seed": seed}
    n = len(objective)
    return {
        "config": config,
        "iteration": [100 * i for i in range(n)],
        "objective": objective,
        "active_units": [100.0] * n,
        "active_rel": [50.0] * n,
        "train_loss": objective,
        "train_acc": [1.0] * n,
        "test_acc": 0.9,
        "converged": True,
        "seconds": 1.0,
    }


def test_baseline_is_the_best_lr_and_ratios_count_iterations():
    results = [
        _result("sgd_weight_decay", 0.1, 0, [5, 4, 3, 2.0]),
        _result(
            "sgd_weight_decay", 1.0, 0, [5, 3, 1.5, 1.0, 1.0]
        ),  # lower final objective: the baseline
        _result("pathprox_joint", 0.3, 0, [5, 1.0, 0.5]),
        _result("pathprox_sphere", 0.3, 0, [5, 4, 3]),
    ]
    summary, best_lr = figure._summaries(results)
    assert best_lr == 1.0
    by = {s["run"]: s for s in summary}
    assert (
        by["sgd_weight_decay@1"]["iterations_to_target"] == 300
    )  # first reaches its final 1.0 at 300
    assert by["pathprox_joint"]["ratio_to_baseline"] == 100 / 300
    assert by["pathprox_sphere"]["iterations_to_target"] is None  # censored: never reached
    agg = {a["run"]: a for a in figure._aggregate(summary)}
    assert agg["pathprox_sphere"]["ratio_mean"] is None


def test_factorized_layout_gradients_and_rescaling():
    """The authors' mlp_factorized built from MLP blocks: gradients vs finite differences, and the layer
    balance keeps its function (no ReLU between blocks, still positively homogeneous)."""
    import numpy as np

    from refreg.pathprox import balance_layers
    from refreg.testing import numerical_grad, relative_error

    net = figure.Factorized([3, 4, 5, 4, 3])
    params = net.init(rng=0)
    groups = net.groups()
    gen = np.random.default_rng(1)
    x, y = gen.standard_normal((6, 3)), gen.integers(0, 3, 6)
    _, grads = net.value_and_grad(params, x, y)
    numeric = numerical_grad(lambda p: float(net.value_and_grad(p, x, y)[0]), params)
    assert set(grads) == set(params)
    for key in params:
        assert relative_error(grads[key], numeric[key]) < 1e-7, key
    params["block0.layers.1.weight"] = params["block0.layers.1.weight"] * 7.0
    balanced = balance_layers(params, groups)
    assert relative_error(net.predict(balanced, x), net.predict(params, x)) < 1e-12


def test_standard_preset_runs_to_convergence_with_a_baseline_lr_sweep():
    from theory import pathprox_convergence as pc

    standard, full = pc.PRESETS["standard"], pc.PRESETS["full"]
    assert standard["iterations"] >= 30_000 and standard["window"] >= 10 * standard["eval_every"]
    assert standard["baseline_lrs"] == full["baseline_lrs"] and standard["seeds"] >= 3
    assert (full["width"], full["lam"], full["lr"], full["batch_size"]) == (400, 1e-4, 0.3, 200)


def test_side_checks_are_reported_apart_from_the_protocol(tmp_path):
    """The quick preset's side checks (sphere prox at width 32; seed 2 with 2 BLAS threads) are runs of their
    own: they never enter the summary, the aggregate or the baseline, and are listed under ``checks``."""
    quick = figure.configs(figure.PRESETS["quick"])
    checks = [c for c in quick if c.check]
    assert {(c.check, c.seed, c.width, c.blas_threads) for c in checks} == {
        ("width_32", 0, 32, 1),
        ("width_32", 1, 32, 1),
        ("width_32", 2, 32, 1),
        ("two_blas_threads", 2, 64, 2),
    }
    assert all(
        c.method == "pathprox_sphere" and c.lr == figure.PRESETS["quick"]["lr"] for c in checks
    )
    preset = dict(
        figure.PRESETS["tiny"],
        seeds=1,
        checks=[{"check": "narrow", "method": "pathprox_sphere", "width": 8, "seeds": [0]}],
    )
    results = [figure.run(c) for c in figure.configs(preset)]
    out = figure.report(preset, results, tmp_path)
    data = __import__("json").loads((tmp_path / f"{figure.NAME}.json").read_text())
    assert [(r["check"], r["width"], r["seed"]) for r in data["checks"]] == [("narrow", 8, 0)]
    assert len(data["summary"]) == 1 + len(preset["baseline_lrs"]) + 1  # sphere, joint, baselines
    assert "Side checks" in out["rows"][0]["measured"]
    assert (tmp_path / f"{figure.NAME}_checks.csv").is_file()
