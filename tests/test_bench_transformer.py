"""The transformer benchmark times the same model in both libraries: equal logits from equal parameters."""

from __future__ import annotations

import numpy as np
import pytest

from bench.transformer import torch_release_decoder
from refreg.nn import Transformer


@pytest.mark.parametrize("last_only", [False, True])
def test_torch_model_of_the_benchmark_is_refregs_model(last_only):
    torch = pytest.importorskip(
        "torch", reason="torch is the optional oracle extra (pip install 'refreg[oracle]')"
    )
    net = Transformer(14, 3, d_model=16, heads=4, d_mlp=24)
    params = net.init(rng=0)
    model = torch_release_decoder(torch, 14, 16, 4, 24, last_only=last_only).double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    x = np.random.default_rng(1).integers(0, 14, size=(5, 3))
    expected = model(torch.from_numpy(x.T.copy()))[-1].detach().numpy()
    np.testing.assert_allclose(net.predict(params, x), expected, rtol=1e-12, atol=1e-14)
