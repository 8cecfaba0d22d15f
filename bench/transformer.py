"""The transformer training step: refreg's hand-written model beside the same model in PyTorch (CPU, 1 thread)."""

from __future__ import annotations

import math

import numpy as np

from bench.harness import Comparison, compare


def torch_release_decoder(
    torch, vocab: int, d: int, heads: int, d_mlp: int, seq_len: int = 3, last_only: bool = False
):
    """The CPR release's ``TransformerDecoder`` (1 layer, no LayerNorm), parameter names as refreg's.

    ``last_only``: the MLP block and the head run at the last position only, as refreg computes them (the loss
    reads that position alone); otherwise at every position, as the release does.
    """
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(d, heads, bias=False)
            self.mlp = nn.Sequential(nn.Linear(d, d_mlp), nn.ReLU(), nn.Linear(d_mlp, d))

        def forward(self, x):
            mask = torch.triu(torch.full((len(x), len(x)), -math.inf, dtype=x.dtype), diagonal=1)
            x = x + self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]
            if last_only:
                x = x[-1:]
            return x + self.mlp(x)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embeddings = nn.Embedding(vocab, d)
            self.position_embeddings = nn.Embedding(seq_len, d)
            self.layers = nn.ModuleList([Block()])
            self.head = nn.Linear(d, vocab, bias=False)

        def forward(self, x):  # (T, n), as the release feeds it
            h = self.token_embeddings(x)
            h = h + self.position_embeddings(torch.arange(x.shape[0]).unsqueeze(-1)).expand_as(h)
            for layer in self.layers:
                h = layer(h)
            return self.head(h)

    return Decoder()


def transformer_training_step(quick: bool = False, p: int = 113, batch: int = 512) -> Comparison:
    """Forward + backward + AdamW on the release's grokking model (d 128, 4 heads, MLP 512), float32, 1 thread.

    Both start from the same parameters and train on the same batch of ``a b =`` sequences. ``torch-cpu`` is the
    release's module (MLP and head at all 3 positions); ``torch-cpu-last-position`` does refreg's work (MLP and
    head at the last position only, the one the loss reads).
    """
    from threadpoolctl import threadpool_limits

    from bench.benchmarks import has_torch

    with threadpool_limits(limits=1):
        if not has_torch():
            return _step(quick, p, batch, None)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _step(quick, p, batch, torch)
        finally:
            torch.set_num_threads(threads)


def _step(quick: bool, p: int, batch: int, torch) -> Comparison:
    import refreg
    from refreg.nn import Transformer

    net = Transformer(p + 1, 3, d_model=128, heads=4, d_mlp=512)
    params = net.init(rng=0, dtype="float32")
    opt = refreg.adamw(1e-3, (0.9, 0.98), weight_decay=0.1)
    holder = {"params": params, "state": opt.init(params)}
    rng = np.random.default_rng(1)
    x = np.stack([rng.integers(0, p, batch), rng.integers(0, p, batch), np.full(batch, p)], axis=1)
    y = (x[:, 0] + x[:, 1]) % p

    def refreg_step():
        _, grads = net.value_and_grad(holder["params"], x, y)
        holder["params"], holder["state"] = opt.update(grads, holder["state"], holder["params"])

    variants = {"refreg-numpy": refreg_step}
    baseline = "refreg-numpy"
    if torch is not None:
        tx, ty = torch.from_numpy(x.T.copy()), torch.from_numpy(y)

        def torch_step_fn(last_only):
            model = torch_release_decoder(torch, p + 1, 128, 4, 512, last_only=last_only)
            model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in params.items()})
            topt = torch.optim.AdamW(
                model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.1
            )

            def torch_step():
                topt.zero_grad()
                torch.nn.functional.cross_entropy(model(tx)[-1], ty).backward()
                topt.step()

            return torch_step

        variants = {
            "torch-cpu": torch_step_fn(False),
            "torch-cpu-last-position": torch_step_fn(True),
            "refreg-numpy": refreg_step,
        }
        baseline = "torch-cpu"
    name = f"transformer step (p {p}, d 128, 4 heads, MLP 512), batch {batch}, 1 thread"
    return compare(name, variants, baseline, repeats=10 if quick else 30)
