"""The hand-written transformer: gradients against central differences (float64, hypothesis-drawn sizes, NumPy and
array-api-strict), against PyTorch autograd on the release's module, its initialisation, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import asnumpy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from refreg.nn import Transformer
from refreg.testing import numerical_grad, relative_error

# central differences at eps = 1e-6 in float64 agree with an exact gradient to ~1e-9 relative, plus round-off
GRAD_TOL = 1e-7


@st.composite
def models_and_batches(draw):
    heads = draw(st.integers(1, 3))
    head_width = draw(st.integers(1, 3))
    seq_len = draw(st.integers(1, 3))
    net = Transformer(
        vocab_size=draw(st.integers(2, 6)),
        seq_len=seq_len,
        d_model=heads * head_width,
        heads=heads,
        d_mlp=draw(st.integers(1, 4)),
        n_layers=draw(st.integers(1, 2)),
        layer_norm=draw(st.booleans()),
    )
    t = draw(st.integers(1, seq_len))
    n = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    return net, n, t, seed


def _random_params(net, rng):
    """The init plus noise on every parameter (biases and LayerNorm too, so none sits at a special value)."""
    params = net.init(rng=rng, std=0.8)
    return {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}


def _min_abs_preactivation(net, params, x):
    _, cache = net.forward(params, x)
    return min(float(np.min(np.abs(asnumpy(b.z)))) for b in cache.blocks)


# at most 20 examples in every profile: each is a full central-difference sweep (seconds on array_api_strict)
@settings(
    max_examples=min(settings.default.max_examples, 20),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=models_and_batches())
def test_gradients_match_central_differences(xp, case):
    net, n, t, seed = case
    rng = np.random.default_rng(seed)
    params = _random_params(net, rng)
    x = rng.integers(0, net.vocab_size, size=(n, t))
    y = rng.integers(0, net.vocab_size, size=n)
    # keep every ReLU pre-activation away from the kink, where the derivative jumps
    assume(_min_abs_preactivation(net, params, x) > 1e-3)
    xs, ys = xp.asarray(x), xp.asarray(y)

    def loss_of(p):
        return float(net.value_and_grad({k: xp.asarray(v) for k, v in p.items()}, xs, ys)[0])

    value, grads = net.value_and_grad({k: xp.asarray(v) for k, v in params.items()}, xs, ys)
    numeric = numerical_grad(loss_of, params)
    roundoff = 1e-8 * max(1.0, abs(float(value)))
    finer = None
    for key in params:
        g = asnumpy(grads[key])
        assert g.shape == params[key].shape and g.dtype == np.float64
        error = float(np.max(np.abs(g - numeric[key]), initial=0.0))
        scale = max(float(np.max(np.abs(g), initial=0.0)), 1e-8)
        if error > GRAD_TOL * scale + roundoff:
            # an ill-conditioned draw (LayerNorm over d_model = 2 nearly equal entries has third
            # derivatives ~1e8, so eps = 1e-6 leaves an O(eps²) truncation error of 1e-4): a correct
            # gradient then gets ~100x closer at eps = 1e-7 (down to the 10x larger round-off of that
            # step), a wrong one does not
            finer = finer or numerical_grad(loss_of, params, eps=1e-7)
            fine_error = float(np.max(np.abs(g - finer[key]), initial=0.0))
            assert fine_error <= max(error / 30, 10 * roundoff), (key, error, fine_error, scale)
            assert fine_error <= 1e-5 * scale, (key, error, fine_error, scale)


def _release_module(torch, net):
    """The release's ``TransformerDecoder`` (examples/train_grokking_task.py), its width m as a parameter."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            d = net.d_model
            if net.layer_norm:
                self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, net.heads, bias=False)
            self.mlp = nn.Sequential(nn.Linear(d, net.d_mlp), nn.ReLU(), nn.Linear(net.d_mlp, d))

        def forward(self, x):
            mask = torch.triu(torch.full((len(x), len(x)), -math.inf, dtype=x.dtype), diagonal=1)
            if net.layer_norm:
                x = self.ln_1(x)
            x = x + self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]
            return x + self.mlp(self.ln_2(x) if net.layer_norm else x)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embeddings = nn.Embedding(net.vocab_size, net.d_model)
            self.position_embeddings = nn.Embedding(net.seq_len, net.d_model)
            self.layers = nn.ModuleList([Block() for _ in range(net.n_layers)])
            if net.layer_norm:
                self.ln_f = nn.LayerNorm(net.d_model)
            self.head = nn.Linear(net.d_model, net.vocab_size, bias=False)

        def forward(self, x):  # x: (T, n), as the release feeds it
            h = self.token_embeddings(x)
            h = h + self.position_embeddings(torch.arange(x.shape[0]).unsqueeze(-1)).expand_as(h)
            for layer in self.layers:
                h = layer(h)
            return self.head(self.ln_f(h) if net.layer_norm else h)

    return Decoder().double()


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize(("heads", "t"), [(1, 3), (4, 3), (2, 2)])
def test_matches_torch_autograd_on_the_release_module(layer_norm, heads, t):
    torch = pytest.importorskip(
        "torch", reason="torch is the optional oracle extra (pip install 'refreg[oracle]')"
    )
    net = Transformer(13, 3, d_model=8, heads=heads, d_mlp=12, n_layers=2, layer_norm=layer_norm)
    module = _release_module(torch, net)
    assert [k for k, _ in module.named_parameters()] == list(net.param_shapes())
    rng = np.random.default_rng(heads)
    params = _random_params(net, rng)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    x = rng.integers(0, 13, size=(6, t))
    y = rng.integers(0, 13, size=6)
    logits = module(torch.from_numpy(x).T)[-1]
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    loss.backward()
    out, _ = net.forward(params, x)
    value, grads = net.value_and_grad(params, x, y)
    # the same operations in another order: agreement to float64 round-off, relative to each array's scale
    assert relative_error(out, logits.detach().numpy()) <= 1e-13
    assert relative_error(value, loss.item()) <= 1e-13
    for key, p in module.named_parameters():
        assert relative_error(grads[key], p.grad.numpy()) <= 1e-12, key


def test_init_draws_one_normal_per_matrix_in_parameter_order():
    net = Transformer(11, 3, d_model=8, heads=2, layer_norm=True)
    params = net.init(rng=5, stds={"head.weight": 0.25})
    gen = np.random.default_rng(5)
    for key, shape in net.param_shapes().items():
        if len(shape) >= 2:
            std = 0.25 if key == "head.weight" else 1 / math.sqrt(8)
            np.testing.assert_array_equal(params[key], gen.standard_normal(shape) * std)
        elif key.split(".")[-2].startswith("ln_") and key.endswith("weight"):
            assert np.all(params[key] == 1.0)
        else:
            assert np.all(params[key] == 0.0)
    assert net.init(rng=5)["layers.0.mlp.0.weight"].shape == (32, 8)


def test_float32_stays_float32(xp):
    net = Transformer(5, 3, d_model=4, heads=2)
    params = net.init(rng=0, dtype="float32", xp=xp)
    x = xp.asarray(np.array([[0, 1, 4], [2, 3, 4]]))
    value, grads = net.value_and_grad(params, x, xp.asarray(np.array([1, 0])))
    assert value.dtype == xp.float32
    assert all(g.dtype == xp.float32 for g in grads.values())


def test_d_model_not_divisible_by_heads_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"d_model must be divisible by heads.*d_model = 10 and heads = 4"
    ):
        Transformer(7, 3, d_model=10, heads=4)
    with pytest.raises(ValueError, match="heads must be an int >= 1"):
        Transformer(7, 3, d_model=8, heads=0)


def test_bad_tokens_and_params_are_rejected_before_computing():
    net = Transformer(5, 3, d_model=4, heads=2)
    params = net.init(rng=0)
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 4\].*max 5"):
        net.forward(params, np.array([[0, 1, 5]]))
    with pytest.raises(ValueError, match="1 <= T <= seq_len = 3"):
        net.forward(params, np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(TypeError, match="integer token ids"):
        net.forward(params, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="missing"):
        net.forward(
            {k: v for k, v in params.items() if k != "head.weight"}, np.zeros((1, 3), dtype=int)
        )
    bad = dict(params, **{"head.weight": params["head.weight"] * np.nan})
    with pytest.raises(FloatingPointError, match=r"head\.weight"):
        net.value_and_grad(bad, np.zeros((1, 3), dtype=int), np.zeros(1, dtype=int))
    with pytest.raises(ValueError, match="stds names unknown"):
        net.init(rng=0, stds={"head": 0.1})
    with pytest.raises(ValueError, match="std must be a positive"):
        net.init(rng=0, std=-1.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16])
def test_narrow_integer_tokens_with_a_large_vocabulary(dtype):
    """Token ids of any integer dtype give the int64 gradients, also with a vocabulary larger than the dtype
    holds: an ``arange(V)`` in uint8 wraps at 256 and gave row 256 + k of the embedding gradient token k's
    gradient too (found by an audit against torch)."""
    net = Transformer(300, 3, d_model=4, heads=2)
    params = net.init(np.random.default_rng(0))
    tokens = np.array([[1, 5, 100], [6, 2, 3]])
    labels = np.array([7, 120])
    value, grads = net.value_and_grad(params, tokens, labels)
    narrow_value, narrow = net.value_and_grad(params, tokens.astype(dtype), labels.astype(dtype))
    assert narrow_value == value
    for k in grads:
        np.testing.assert_array_equal(narrow[k], grads[k], err_msg=k)
    rows = np.flatnonzero(np.any(grads["token_embeddings.weight"] != 0, axis=1))
    assert set(rows.tolist()) <= {1, 2, 3, 5, 6, 100}
