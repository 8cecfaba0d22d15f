import numpy as np

from refreg import MLP, adamw


def test_training_lowers_the_loss():
    net = MLP([4, 8, 3])
    params = net.init(rng=0)
    x = np.random.default_rng(0).standard_normal((16, 4))
    y = np.arange(16) % 3
    opt = adamw(1e-2)
    state = opt.init(params)
    first, _ = net.value_and_grad(params, x, y)
    for _ in range(50):
        _, grads = net.value_and_grad(params, x, y)
        params, state = opt.update(grads, state, params)
    last, _ = net.value_and_grad(params, x, y)
    assert float(last) < 0.8 * float(first)
