"""The `pathprox_convergence` figure script runs end to end on its tiny preset and writes its figure and data."""

from __future__ import annotations

from figure_checks import run_tiny

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
    _, data = run_tiny(figure, tmp_path, COLUMNS)
    assert data["preset"] == figure.PRESETS["tiny"]
    check(data)


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
