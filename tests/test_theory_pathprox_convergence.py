"""The `pathprox_convergence` figure script runs end to end on its tiny preset and writes its figure and data."""

from __future__ import annotations

import csv
import json

import matplotlib

matplotlib.use("Agg")

from theory import pathprox_convergence as figure

COLUMNS = ("dataset", "method", "seed", "iteration", "objective", "active_units", "train_loss")


def check(data):
    methods = {s["method"] for s in data["summary"]}
    assert methods == {"pathprox_sphere", "pathprox_joint", "sgd_weight_decay"}
    for s in data["summary"]:
        assert 0.0 <= s["final_active_units"] <= 100.0
        if s["method"] == "sgd_weight_decay":
            assert s["final_active_units"] == 100.0  # weight decay never zeroes a unit exactly
            assert s["iterations_to_target"] == s["iterations"]


def test_tiny_preset_writes_figure_and_data(tmp_path):
    out = figure.main(tmp_path, preset="tiny")
    for suffix in ("png", "svg", "csv", "json"):
        path = tmp_path / f"{figure.NAME}.{suffix}"
        assert path.is_file() and path.stat().st_size > 0, path
    with open(tmp_path / f"{figure.NAME}.csv") as f:
        header = next(csv.reader(f))
    assert set(COLUMNS) <= set(header), header
    data = json.loads((tmp_path / f"{figure.NAME}.json").read_text())
    assert data["preset"] == figure.PRESETS["tiny"]
    assert out["rows"] and all(
        set(r) == {"figure", "claim", "paper", "measured"} for r in out["rows"]
    )
    check(data)


def test_protocol_constants():
    assert figure.NAME == "pathprox_convergence"
    assert set(figure.PRESETS) == {"tiny", "quick", "full"}
    assert figure.DESCRIPTION and figure.QUICK_SECONDS > 0
    configs = figure.configs(figure.PRESETS["tiny"], None)
    assert configs and all("seed" in c for c in configs)
    json.dumps(configs)


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
