"""Tests of magnitude pruning, masks, counting and masked fine-tuning (refreg.sparse)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import asnumpy

from refreg import MLP, adam, io, sgd, sparse


def _params(xp=np, seed=0):
    net = MLP([6, 5, 3])
    return net, net.init(rng=seed, xp=xp)


def test_magnitude_mask_absolute_and_relative():
    W = np.array([[0.5, -0.01, 0.0], [2.0, -0.3, 0.05]])
    params = {"w": W, "b": np.array([1e-9, 0.0])}
    masks = sparse.magnitude_mask(params, 0.05)
    assert list(masks) == ["w"]  # biases are not pruned by default
    np.testing.assert_array_equal(masks["w"], [[True, False, False], [True, True, True]])
    rel = sparse.magnitude_mask(params, 0.2, relative=True)  # keep |w| >= 0.2 * 2.0 = 0.4
    np.testing.assert_array_equal(rel["w"], [[True, False, False], [True, False, False]])
    pruned = sparse.apply_mask(params, rel)
    np.testing.assert_array_equal(pruned["w"], [[0.5, 0.0, 0.0], [2.0, 0.0, 0.0]])
    assert pruned["b"] is params["b"]
    np.testing.assert_array_equal(W[0], [0.5, -0.01, 0.0])  # input untouched
    assert sparse.count_nonzero(pruned) == 2 + 1
    assert sparse.count_nonzero(pruned, names=["w"]) == 2
    assert sparse.count_nonzero(params) == 5 + 1


def test_relative_mask_is_per_tensor():
    params = {"a": np.array([[1.0, 0.05]]), "b": np.array([[100.0, 5.0]])}
    masks = sparse.magnitude_mask(params, 0.1, relative=True)
    np.testing.assert_array_equal(masks["a"], [[True, False]])
    np.testing.assert_array_equal(masks["b"], [[True, False]])
    absolute = sparse.magnitude_mask(params, 0.1)
    np.testing.assert_array_equal(absolute["a"], [[True, False]])
    np.testing.assert_array_equal(absolute["b"], [[True, True]])


def test_mask_backends(xp):
    _, params = _params(xp)
    masks = sparse.magnitude_mask(params, 0.2)
    pruned = sparse.apply_mask(params, masks)
    host = {k: asnumpy(v) for k, v in params.items()}
    ref = sparse.apply_mask(host, sparse.magnitude_mask(host, 0.2))
    for k in ref:
        np.testing.assert_array_equal(asnumpy(pruned[k]), ref[k])
    assert sparse.count_nonzero(pruned) == sparse.count_nonzero(ref)


def test_prune_bad_input():
    params = {"w": np.ones((2, 2))}
    with pytest.raises(ValueError, match=r"threshold must be >= 0 and finite, got -0\.1"):
        sparse.magnitude_mask(params, -0.1)
    with pytest.raises(TypeError, match="relative must be a bool"):
        sparse.magnitude_mask(params, 0.1, relative="yes")
    with pytest.raises(ValueError, match=r"masks\['x'\] has no parameter"):
        sparse.apply_mask(params, {"x": np.ones((2, 2), dtype=bool)})
    with pytest.raises(TypeError, match=r"masks\['w'\] must be a bool array"):
        sparse.apply_mask(params, {"w": np.ones((2, 2))})
    with pytest.raises(ValueError, match=r"masks\['w'\] must have shape \(2, 2\)"):
        sparse.apply_mask(params, {"w": np.ones((2, 3), dtype=bool)})
    with pytest.raises(TypeError, match="optimizer must have init and update"):
        sparse.masked(object(), {})


def _batch(seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((16, 6)), rng.integers(0, 3, 16)


@pytest.mark.parametrize(
    "optimizer",
    [adam(1e-2), sgd(0.1, momentum=0.9), sgd(0.1, momentum=0.9, weight_decay=1e-2)],
    ids=["adam", "sgd-momentum", "sgd-momentum-wd"],
)
def test_pruned_weights_stay_exactly_zero(optimizer):
    """200 steps; the inner state starts *unmasked* (from dense training) to show that state masking matters."""
    net, params = _params()
    x, y = _batch()
    state = optimizer.init(params)
    for _ in range(5):  # dense training leaves momentum everywhere
        _, grads = net.value_and_grad(params, x, y)
        params, state = optimizer.update(grads, state, params)
    masks = sparse.magnitude_mask(params, 0.2)
    params = sparse.apply_mask(params, masks)
    n_kept = sparse.count_nonzero(params, names=list(masks))
    assert 0 < n_kept < sum(m.size for m in masks.values())
    # control: the bare optimizer with the same state moves pruned weights
    _, grads = net.value_and_grad(params, x, y)
    moved, _ = optimizer.update(sparse.apply_mask(grads, masks), state, params)
    assert any(np.any(moved[k][~m] != 0) for k, m in masks.items())

    opt = sparse.masked(optimizer, masks)
    first_loss = None
    for _ in range(200):
        loss, grads = net.value_and_grad(params, x, y)
        first_loss = float(loss) if first_loss is None else first_loss
        params, state = opt.update(grads, state, params)
        for k, m in masks.items():
            assert np.all(params[k][~m] == 0)
    for field in state._fields:
        buffers = getattr(state, field)
        if isinstance(buffers, dict):
            for k, m in masks.items():
                if k in buffers:
                    assert np.all(buffers[k][~m] == 0), (field, k)
    assert float(net.value_and_grad(params, x, y)[0]) < first_loss  # the survivors still learn
    assert sparse.count_nonzero(params, names=list(masks)) <= n_kept


def test_masked_init_masks_state_and_is_pure():
    _, params = _params()
    masks = sparse.magnitude_mask(params, 0.2)
    opt = sparse.masked(sgd(0.1, momentum=0.9), masks)
    state = opt.init(params)
    assert type(state).__name__ == "SGDState"
    snapshot = {k: v.copy() for k, v in params.items()}
    grads = {k: np.ones_like(v) for k, v in params.items()}
    new_params, _ = opt.update(grads, state, params)
    for k in params:
        np.testing.assert_array_equal(params[k], snapshot[k])
    assert np.all(new_params["layers.0.bias"] != snapshot["layers.0.bias"])  # unmasked keys train


def test_masked_adam_resume_is_bitwise(tmp_path):
    net, params = _params()
    x, y = _batch()
    params = sparse.apply_mask(params, masks := sparse.magnitude_mask(params, 0.15))
    opt = sparse.masked(adam(1e-2), masks)
    state = opt.init(params)
    for _ in range(3):
        params, state = opt.update(net.value_and_grad(params, x, y)[1], state, params)
    io.save(tmp_path / "ckpt.npz", params, state)
    loaded_params, loaded_state = io.load(tmp_path / "ckpt.npz")
    a, sa, b, sb = params, state, loaded_params, loaded_state
    for _ in range(4):
        a, sa = opt.update(net.value_and_grad(a, x, y)[1], sa, a)
        b, sb = opt.update(net.value_and_grad(b, x, y)[1], sb, b)
    for k in a:
        assert np.array_equal(a[k], b[k])
        assert np.array_equal(sa.exp_avg[k], sb.exp_avg[k])


def test_masked_backend_strict():
    import array_api_strict as xps

    _, params = _params(xps)
    masks = sparse.magnitude_mask(params, 0.2)
    opt = sparse.masked(adam(1e-2), masks)
    state = opt.init(params)
    grads = {k: xps.ones_like(v) for k, v in params.items()}
    new, state = opt.update(grads, state, params)
    for k, m in masks.items():
        assert np.all(asnumpy(new[k])[~asnumpy(m)] == 0)
