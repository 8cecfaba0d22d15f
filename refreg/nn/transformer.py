"""A decoder-only transformer with hand-written forward and backward passes (no autodiff).

The model of the CPR release's grokking example (``examples/train_grokking_task.py``, ``TransformerDecoder``):
token and position embeddings, ``n_layers`` blocks of causal multi-head self-attention and a ReLU MLP with
residual connections, optional LayerNorm (off by default), an unembedding; the output is the logits of the **last
position**, which the cross-entropy of the modular-arithmetic task reads (``cross_entropy(logits[-1], y)``).

Notation: ``n`` batch, ``T`` sequence length (<= ``seq_len``), ``d`` = ``d_model``, ``H`` heads, ``m`` = ``d_mlp``,
``V`` vocabulary. Tokens are batch-first ``(n, T)``; the release feeds PyTorch ``(T, n)`` (``batch_first=False``).

Parameters, named and laid out as the release's PyTorch module's ``state_dict`` (``nn.Linear`` weights (out, in),
``nn.Embedding`` weights (num, dim)), in its ``named_parameters()`` order:

===================================  ==========  ===============================================================
name                                 shape       role
===================================  ==========  ===============================================================
token_embeddings.weight              (V, d)      row v embeds token v
position_embeddings.weight           (seq_len,d) row i is added at position i
layers.{i}.ln_1.weight / .bias       (d,)        LayerNorm before attention (``layer_norm=True`` only)
layers.{i}.ln_2.weight / .bias       (d,)        LayerNorm before the MLP (``layer_norm=True`` only)
layers.{i}.attn.in_proj_weight       (3d, d)     ``nn.MultiheadAttention(d, H, bias=False)``: rows Q, K, V
layers.{i}.attn.out_proj.weight      (d, d)      its output projection (no bias)
layers.{i}.mlp.0.weight / .bias      (m, d), m   first MLP layer (``nn.Sequential`` index 0)
layers.{i}.mlp.2.weight / .bias      (d, m), d   second MLP layer (index 2; index 1 is the ReLU)
ln_f.weight / .bias                  (d,)        final LayerNorm (``layer_norm=True`` only)
head.weight                          (V, d)      unembedding, no bias
===================================  ==========  ===============================================================

Forward (one block; without LayerNorm ``X = h``)::

    h = E_tok[tokens] + E_pos[:T]
    X = ln_1(h) if layer_norm else h;   h = X + Attn(X)          (the release adds the residual to ln_1's output)
    h = h + W_2 relu(W_1 Y + b_1) + b_2,   Y = ln_2(h) if layer_norm else h
    logits = ln_f(h)[:, T-1] @ W_head.T                           (ln_f only with layer_norm)

Only the last position reaches the logits, so the last block's MLP, ``ln_2``, ``ln_f`` and the head run at that
position alone (the same numbers as running them everywhere and discarding the rest; 2/3 less MLP work for T = 3).
Attention and LayerNorm, with their backward passes: :mod:`refreg.nn.attention`. The embedding's backward is
``dE_tok = onehot(tokens).T @ dh`` (a matrix product instead of a scatter-add, so it is one array-API code path)
and ``dE_pos[:T] = Σ_n dh``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from refreg._backend import (
    as_generator,
    check_device,
    default_namespace,
    float_dtype,
    get_namespace,
    on_device_of,
)
from refreg.nn._model import check_param_dict, model_value_and_grad
from refreg.nn.activations import ACTIVATIONS
from refreg.nn.attention import (
    AttentionCache,
    LayerNormCache,
    causal_attention_backward,
    causal_attention_forward,
    layer_norm_backward,
    layer_norm_forward,
)

__all__ = ["BlockCache", "Transformer", "TransformerCache"]

_RELU = ACTIVATIONS["relu"]


class BlockCache(NamedTuple):
    """One block: LayerNorm caches (or None), attention cache, MLP input Y, pre-activation Z, activation relu(Z)."""

    ln_1: LayerNormCache | None
    attn: AttentionCache
    ln_2: LayerNormCache | None
    y: Any
    z: Any
    r: Any


class TransformerCache(NamedTuple):
    """Tokens, per-block caches, the final LayerNorm's cache (or None) and the last position's features (n, d)."""

    tokens: Any
    blocks: tuple[BlockCache, ...]
    ln_f: LayerNormCache | None
    last: Any


def _check_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


class Transformer:
    """Decoder-only transformer, logits of the last position (module docstring for the maths and names).

    Parameters
    ----------
    vocab_size : int >= 1
        V: token ids are in [0, V); the output has V logits.
    seq_len : int >= 1
        Longest sequence (rows of the position embedding).
    d_model : int
        d; must be divisible by ``heads``.
    heads : int
        H; each head has width d/H.
    d_mlp : int or None
        Hidden width m of the MLP block; default 4d (the release's ``dim * 4``).
    n_layers : int
        Number of blocks (the release's grokking model has 1).
    layer_norm : bool
        Pre-LayerNorm blocks and a final LayerNorm (eps ``ln_eps``); off by default, as in the release's run.

    Examples
    --------
    >>> net = Transformer(vocab_size=7, seq_len=3, d_model=8, heads=2)
    >>> params = net.init(rng=0)
    >>> list(params)[:3]
    ['token_embeddings.weight', 'position_embeddings.weight', 'layers.0.attn.in_proj_weight']
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        d_model: int = 128,
        heads: int = 4,
        d_mlp: int | None = None,
        n_layers: int = 1,
        layer_norm: bool = False,
        ln_eps: float = 1e-5,
    ):
        self.vocab_size = _check_int("vocab_size", vocab_size)
        self.seq_len = _check_int("seq_len", seq_len)
        self.d_model = _check_int("d_model", d_model)
        self.heads = _check_int("heads", heads)
        if d_model % heads != 0:
            raise ValueError(
                f"d_model must be divisible by heads (each head has width d_model/heads), got d_model = "
                f"{d_model} and heads = {heads}"
            )
        self.d_mlp = 4 * d_model if d_mlp is None else _check_int("d_mlp", d_mlp)
        self.n_layers = _check_int("n_layers", n_layers)
        if not isinstance(layer_norm, bool):
            raise TypeError(f"layer_norm must be a bool, got {layer_norm!r}")
        self.layer_norm = layer_norm
        if isinstance(ln_eps, bool) or not isinstance(ln_eps, (int, float)) or not ln_eps > 0:
            raise ValueError(f"ln_eps must be a positive float, got {ln_eps!r}")
        self.ln_eps = float(ln_eps)

    def __repr__(self) -> str:
        return (
            f"Transformer(vocab_size={self.vocab_size}, seq_len={self.seq_len}, d_model={self.d_model}, "
            f"heads={self.heads}, d_mlp={self.d_mlp}, n_layers={self.n_layers}, layer_norm={self.layer_norm})"
        )

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter's shape, in PyTorch's ``named_parameters()`` order of the release's module."""
        d, m, v = self.d_model, self.d_mlp, self.vocab_size
        shapes: dict[str, tuple[int, ...]] = {
            "token_embeddings.weight": (v, d),
            "position_embeddings.weight": (self.seq_len, d),
        }
        for i in range(self.n_layers):
            pre = f"layers.{i}."
            if self.layer_norm:
                for ln in ("ln_1", "ln_2"):
                    shapes[pre + ln + ".weight"] = (d,)
                    shapes[pre + ln + ".bias"] = (d,)
            shapes[pre + "attn.in_proj_weight"] = (3 * d, d)
            shapes[pre + "attn.out_proj.weight"] = (d, d)
            shapes[pre + "mlp.0.weight"] = (m, d)
            shapes[pre + "mlp.0.bias"] = (m,)
            shapes[pre + "mlp.2.weight"] = (d, m)
            shapes[pre + "mlp.2.bias"] = (d,)
        if self.layer_norm:
            shapes["ln_f.weight"] = (d,)
            shapes["ln_f.bias"] = (d,)
        shapes["head.weight"] = (v, d)
        return shapes

    def init(
        self,
        rng: Any = None,
        dtype: str = "float64",
        xp: Any = None,
        std: float | None = None,
        stds: Mapping[str, float] | None = None,
        device: Any = None,
    ) -> dict[str, Any]:
        """The release's grokking initialisation (``init_type='sqrt_dim'``), drawn on the host in float64.

        Every matrix (``ndim >= 2``, embeddings included) ~ normal(0, s²) with s = ``stds[name]`` if given, else
        ``std`` (default 1/sqrt(d_model)); biases = 0; LayerNorm weights = 1, biases = 0.

        Random draws: one ``Generator.standard_normal(shape)`` per matrix, in :meth:`param_shapes` order
        (token embedding, position embedding, then per block in_proj, out_proj, mlp.0, mlp.2, then head),
        each multiplied by its s; biases and LayerNorm parameters draw nothing. Then cast to ``dtype`` on ``xp``
        (on ``device``, default: the library's default device).
        """
        gen = as_generator(rng)
        xp = default_namespace(xp)
        dt = float_dtype(xp, dtype)
        on = check_device(xp, device)
        default = 1.0 / math.sqrt(self.d_model) if std is None else float(std)
        stds = dict(stds or {})
        shapes = self.param_shapes()
        unknown = sorted(set(stds) - set(shapes))
        if unknown:
            raise ValueError(
                f"stds names unknown parameters {unknown}; parameters are {list(shapes)}"
            )
        for name, s in [("std", default), *stds.items()]:
            if not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0):
                raise ValueError(f"{name} must be a positive finite float, got {s!r}")
        params: dict[str, Any] = {}
        for name, shape in shapes.items():
            if len(shape) >= 2:
                value = gen.standard_normal(shape) * stds.get(name, default)
                params[name] = xp.asarray(value, dtype=dt, **on)
            elif name.split(".")[-2].startswith("ln_") and name.endswith(".weight"):
                params[name] = xp.ones(shape, dtype=dt, **on)
            else:
                params[name] = xp.zeros(shape, dtype=dt, **on)
        return params

    def check_params(self, params: Mapping[str, Any]) -> Any:
        """Keys, shapes and one common float dtype; returns the namespace."""
        return check_param_dict(params, self.param_shapes())

    def _check_tokens(self, xp: Any, tokens: Any) -> None:
        if not xp.isdtype(tokens.dtype, "integral"):
            raise TypeError(f"tokens must be integer token ids, got dtype {tokens.dtype}")
        if tokens.ndim != 2 or not (1 <= tokens.shape[1] <= self.seq_len) or tokens.shape[0] < 1:
            raise ValueError(
                f"tokens must have shape (n >= 1, T) with 1 <= T <= seq_len = {self.seq_len}, "
                f"got {tuple(tokens.shape)}"
            )
        lo, hi = int(xp.min(tokens)), int(xp.max(tokens))
        if lo < 0 or hi >= self.vocab_size:
            raise ValueError(
                f"tokens must lie in [0, {self.vocab_size - 1}] (vocab_size {self.vocab_size}), "
                f"got min {lo}, max {hi}"
            )

    def forward(self, params: Mapping[str, Any], tokens: Any) -> tuple[Any, TransformerCache]:
        """Logits of the last position, shape (n, V), and the cache for :meth:`backward`."""
        xp = self.check_params(params)
        get_namespace(tokens, params["head.weight"])
        self._check_tokens(xp, tokens)
        n, t = tokens.shape
        d = self.d_model
        flat = xp.reshape(tokens, (-1,))
        emb = xp.reshape(xp.take(params["token_embeddings.weight"], flat, axis=0), (n, t, d))
        h = emb + params["position_embeddings.weight"][:t, :][None, :, :]
        blocks = []
        for i in range(self.n_layers):
            pre = f"layers.{i}."
            ln_1 = ln_2 = None
            if self.layer_norm:
                h, ln_1 = self._ln(params, pre + "ln_1", h)
            a, attn = causal_attention_forward(
                h,
                params[pre + "attn.in_proj_weight"],
                params[pre + "attn.out_proj.weight"],
                self.heads,
            )
            h = h + a
            if i == self.n_layers - 1:
                h = h[:, t - 1 :, :]  # no other position of the last block reaches the logits
            s = h.shape[1]
            y = h
            if self.layer_norm:
                y, ln_2 = self._ln(params, pre + "ln_2", h)
            z = xp.reshape(
                xp.reshape(y, (n * s, d)) @ params[pre + "mlp.0.weight"].T, (n, s, self.d_mlp)
            )
            z = z + params[pre + "mlp.0.bias"]
            r = _RELU.forward(z)
            out = xp.reshape(
                xp.reshape(r, (n * s, self.d_mlp)) @ params[pre + "mlp.2.weight"].T, (n, s, d)
            )
            h = h + (out + params[pre + "mlp.2.bias"])
            blocks.append(BlockCache(ln_1, attn, ln_2, y, z, r))
        ln_f = None
        if self.layer_norm:
            h, ln_f = self._ln(params, "ln_f", h)
        last = h[:, 0, :]
        logits = last @ params["head.weight"].T
        return logits, TransformerCache(tokens, tuple(blocks), ln_f, last)

    def _ln(self, params: Mapping[str, Any], name: str, x: Any) -> tuple[Any, LayerNormCache]:
        return layer_norm_forward(x, params[name + ".weight"], params[name + ".bias"], self.ln_eps)

    def backward(
        self, params: Mapping[str, Any], cache: TransformerCache, grad_out: Any
    ) -> tuple[dict[str, Any], Any]:
        """Gradients of a scalar loss L given ``grad_out = dL/dlogits`` (n, V).

        Returns
        -------
        grads : dict with the keys of ``params``
        grad_embedded : array of shape (n, T, d), ``dL/dh₀`` for the embedded input ``h₀ = E_tok[x] + E_pos``
        """
        xp = get_namespace(grad_out)
        n, t = cache.tokens.shape
        d, m = self.d_model, self.d_mlp
        if tuple(grad_out.shape) != (n, self.vocab_size):
            raise ValueError(
                f"grad_out must have the logits' shape {(n, self.vocab_size)}, got {tuple(grad_out.shape)}"
            )
        grads: dict[str, Any] = {"head.weight": grad_out.T @ cache.last}
        d_last = grad_out @ params["head.weight"]
        dh = d_last[:, None, :]  # (n, 1, d): the last block ran its MLP at position T-1 only
        if self.layer_norm:
            dh, grads["ln_f.weight"], grads["ln_f.bias"] = layer_norm_backward(
                cache.ln_f, params["ln_f.weight"], dh
            )
        for i in reversed(range(self.n_layers)):
            pre, blk = f"layers.{i}.", cache.blocks[i]
            s = dh.shape[1]
            # h_out = h_mid + W_2 relu(W_1 Y + b_1) + b_2
            dm = xp.reshape(dh, (n * s, d))
            grads[pre + "mlp.2.weight"] = dm.T @ xp.reshape(blk.r, (n * s, m))
            grads[pre + "mlp.2.bias"] = xp.sum(dm, axis=0)
            dr = dm @ params[pre + "mlp.2.weight"]
            z = xp.reshape(blk.z, (n * s, m))
            dz = _RELU.backward(z, xp.reshape(blk.r, (n * s, m)), dr)
            grads[pre + "mlp.0.weight"] = dz.T @ xp.reshape(blk.y, (n * s, d))
            grads[pre + "mlp.0.bias"] = xp.sum(dz, axis=0)
            dy = xp.reshape(dz @ params[pre + "mlp.0.weight"], (n, s, d))
            if self.layer_norm:
                dy, grads[pre + "ln_2.weight"], grads[pre + "ln_2.bias"] = layer_norm_backward(
                    blk.ln_2, params[pre + "ln_2.weight"], dy
                )
            dh = dh + dy
            if s < t:  # positions before T-1 of the last block's output feed nothing: zero gradient
                dh = xp.concat(
                    [xp.zeros((n, t - s, d), dtype=dh.dtype, **on_device_of(dh)), dh], axis=1
                )
            # h_mid = X + Attn(X)
            dx, grads[pre + "attn.in_proj_weight"], grads[pre + "attn.out_proj.weight"] = (
                causal_attention_backward(
                    blk.attn,
                    params[pre + "attn.in_proj_weight"],
                    params[pre + "attn.out_proj.weight"],
                    dh,
                )
            )
            dh = dh + dx
            if self.layer_norm:
                dh, grads[pre + "ln_1.weight"], grads[pre + "ln_1.bias"] = layer_norm_backward(
                    blk.ln_1, params[pre + "ln_1.weight"], dh
                )
        dpos = xp.sum(dh, axis=0)
        if t < self.seq_len:
            pad = xp.zeros((self.seq_len - t, d), dtype=dpos.dtype, **on_device_of(dpos))
            dpos = xp.concat([dpos, pad], axis=0)
        grads["position_embeddings.weight"] = dpos
        # as int64: an arange in a narrow token dtype wraps (uint8 256..299 are 0..43) and would give token k's
        # gradient to row 256 + k as well
        flat = xp.astype(xp.reshape(cache.tokens, (-1,)), xp.int64)
        ids = xp.arange(self.vocab_size, dtype=xp.int64, **on_device_of(flat))
        one_hot = flat[:, None] == ids[None, :]
        grads["token_embeddings.weight"] = xp.astype(one_hot, dh.dtype).T @ xp.reshape(
            dh, (n * t, d)
        )
        return {k: grads[k] for k in params}, dh

    def value_and_grad(
        self,
        params: Mapping[str, Any],
        x: Any,
        y: Any,
        loss: str | Callable[[Any, Any], tuple[Any, Any]] = "softmax_cross_entropy",
    ) -> tuple[Any, dict[str, Any]]:
        """``(L(forward(params, x), y), dL/dparams)``; by default the cross-entropy of the last position.

        Raises
        ------
        FloatingPointError
            NaN or inf in a parameter (named by its key) or a loss that overflows, before the backward pass.
        """
        # tokens are integer ids: no finiteness check on x (its type is checked by forward)
        return model_value_and_grad(self.forward, self.backward, params, x, y, loss, check_x=False)

    def predict(self, params: Mapping[str, Any], x: Any) -> Any:
        """The last position's logits alone (no cache kept)."""
        return self.forward(params, x)[0]
