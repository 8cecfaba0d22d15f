"""Backend helpers: namespaces, generators, and block-wise elementwise evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import asnumpy

from refreg import _backend
from refreg._backend import as_generator, elementwise, get_namespace


def _kernel(xp, a, b):
    return xp.sqrt(a * a + 1.0) / (b + 3.0), a - b


@pytest.mark.parametrize("size", [1, 7, 100, 1000, 4099])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_evaluation_is_bitwise_the_whole_evaluation(size, dtype, monkeypatch):
    monkeypatch.setattr(_backend, "CACHE_BLOCK", 64)
    rng = np.random.default_rng(size)
    a = rng.standard_normal((size, 3)).astype(dtype)
    b = rng.standard_normal((size, 3)).astype(dtype)
    xp = get_namespace(a)
    whole = _kernel(xp, a, b)
    blocked = elementwise(lambda x, y: _kernel(xp, x, y), a, b, n_out=2)
    for w, bl in zip(whole, blocked, strict=True):
        assert bl.shape == a.shape and bl.dtype == dtype
        np.testing.assert_array_equal(bl, w)
    a_before = a.copy()
    single = elementwise(lambda x: x * 2.0, a)
    np.testing.assert_array_equal(single, 2.0 * a_before)
    np.testing.assert_array_equal(a, a_before)


def test_elementwise_on_other_backends_runs_once(xp):
    a = xp.asarray(np.arange(10.0))
    calls = []

    def fn(x):
        calls.append(1)
        return x + 1.0

    out = elementwise(fn, a, block=2)
    np.testing.assert_array_equal(asnumpy(out), np.arange(10.0) + 1)
    assert len(calls) == (5 if xp is np else 1)


def test_generators_follow_spec_7():
    g = np.random.default_rng(3)
    assert as_generator(g) is g
    np.testing.assert_array_equal(as_generator(5).random(3), np.random.default_rng(5).random(3))
    assert isinstance(as_generator(None), np.random.Generator)
    with pytest.raises(TypeError, match=r"rng must be None, an int or a numpy\.random\.Generator"):
        as_generator(1.5)
    with pytest.raises(TypeError, match="rng must be"):
        as_generator(True)


def test_non_arrays_are_rejected():
    with pytest.raises(TypeError, match="expected an array, got list"):
        get_namespace([1.0, 2.0])


def test_all_finite_does_not_raise_on_underflow_under_errstate_raise():
    """The dot-product probe underflows for tiny finite entries; that is no error (nor a non-finite value)."""
    from refreg._backend import all_finite

    tiny = np.full(10, 1e-30, dtype=np.float32)
    with np.errstate(all="raise"):
        assert all_finite(tiny) and all_finite(tiny, nonnegative=True)
        assert not all_finite(np.array([1e-30, np.nan], dtype=np.float32))


def test_arrays_made_inside_stay_on_the_inputs_device():
    """Arrays created from shapes (ones, zeros, arange) or host data follow the inputs' device: on
    array_api_strict's second device (a stand-in for a second GPU) the nets, losses, regularizers, path norm
    and the training loop used to fail with "Arrays from two different devices" (audit finding)."""
    xs = pytest.importorskip("array_api_strict")
    import refreg
    from refreg import nn, pathprox, sparse, training
    from refreg.nn import MLP, Transformer

    dev = xs.Device("device1")
    net = MLP([6, 5, 4])
    params = net.init(rng=0, xp=xs, device=dev)
    assert all(v.device == dev for v in params.values())
    host = net.init(rng=0)
    cpu = xs.Device("CPU_DEVICE")
    assert all(np.asarray(params[k].to_device(cpu)).tobytes() == host[k].tobytes() for k in host)
    x = xs.asarray(np.linspace(-1, 1, 18).reshape(3, 6), device=dev)
    y = xs.asarray(np.array([0, 1, 3]), device=dev)
    value, grads = net.value_and_grad(params, x, y)
    assert value.device == dev and all(g.device == dev for g in grads.values())
    assert nn.softmax_cross_entropy(xs.asarray(np.ones((3, 4)), device=dev), y)[0].device == dev
    for name in ("spatial_entropy", "element_entropy", "l1"):
        assert sparse.penalty(params, name, 1e-3)[0].device == dev
    pooled = sparse.PooledSpatialEntropy((2, 3), (1, 3))
    assert pooled.value(params["layers.0.weight"]).device == dev
    groups = pathprox.pair_groups(net)
    assert pathprox.path_norm(params, groups)[0].device == dev
    tnet = Transformer(5, 3, d_model=4, heads=2)
    tparams = tnet.init(rng=0, xp=xs, device=dev)
    assert all(v.device == dev for v in tparams.values())
    tokens = xs.asarray(np.array([[0, 1, 4], [2, 3, 4]]), device=dev)
    tvalue, tgrads = tnet.value_and_grad(tparams, tokens, xs.asarray(np.array([1, 0]), device=dev))
    assert tvalue.device == dev and all(g.device == dev for g in tgrads.values())
    opt = refreg.sgd(0.1)
    new, _, _ = training.train_epoch(net, opt, params, opt.init(params), x, y, 2, rng=0)
    assert all(v.device == dev for v in new.values())


def test_init_refuses_a_device_the_library_does_not_have():
    from refreg.nn import MLP, Transformer

    with pytest.raises(ValueError, match=r"device 'cuda:1' is not a device of"):
        MLP([3, 2]).init(rng=0, device="cuda:1")
    with pytest.raises(ValueError, match=r"device 'cuda:1' is not a device of"):
        Transformer(5, 3, d_model=4, heads=2).init(rng=0, device="cuda:1")


def test_on_device_of_passes_nothing_for_numpy_arrays_and_scalars():
    from refreg._backend import on_device_of

    assert on_device_of(np.ones(2)) == {} and on_device_of(np.float64(1.0)) == {}
