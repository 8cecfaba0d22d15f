"""The pieces of a transformer block, each a ``*_forward`` returning a cache and a ``*_backward`` written out.

Notation: ``n`` batch, ``T`` sequence length, ``d`` model width, ``H`` heads, ``e = d/H`` head width.
Every array is batch-first, ``(n, T, d)``; a weight ``W`` has PyTorch's ``nn.Linear`` layout (out, in).

Causal multi-head self-attention (``nn.MultiheadAttention(d, H, bias=False)`` with a causal mask)::

    [Q | K | V] = X @ W_in.T                         W_in: (3d, d), rows [0:d] -> Q, [d:2d] -> K, [2d:3d] -> V
    Q_h, K_h, V_h = the h-th block of e columns     each (n, T, e), stacked as (n, H, T, e)
    S_h = Q_h @ K_h.T / sqrt(e),  S_h[i, j] = -inf for j > i   (position i attends to positions <= i)
    P_h = softmax(S_h) over j;  O_h = P_h @ V_h;  O = [O_1 | ... | O_H];  A = O @ W_out.T    W_out: (d, d)

Backward, one chain-rule line each (softmax: dS = P ∘ (dP − rowsum(dP ∘ P))):
``dO = dA @ W_out``, ``dW_out = Σ dA.T @ O``, ``dP = dO_h @ V_h.T``, ``dV_h = P_h.T @ dO_h``,
``dS = P ∘ (dP − Σ_j dP ∘ P)``, ``dQ_h = dS @ K_h / sqrt(e)``, ``dK_h = dS.T @ Q_h / sqrt(e)``,
``dW_in = Σ d[Q|K|V].T @ X``, ``dX = d[Q|K|V] @ W_in``. Masked entries have P = 0, hence dS = 0.

LayerNorm over the last axis (``nn.LayerNorm(d)``, eps 1e-5, biased variance)::

    Y = gamma ∘ X̂ + beta,  X̂ = (X − mean X) / sqrt(var X + eps)
    dX = (dX̂ − mean(dX̂) − X̂ ∘ mean(dX̂ ∘ X̂)) / sqrt(var X + eps),  dX̂ = dY ∘ gamma,  dgamma = Σ dY ∘ X̂,  dbeta = Σ dY
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from refreg._backend import get_namespace, on_device_of

__all__ = [
    "AttentionCache",
    "LayerNormCache",
    "causal_attention_backward",
    "causal_attention_forward",
    "layer_norm_backward",
    "layer_norm_forward",
]


class AttentionCache(NamedTuple):
    """Input X (n, T, d), Q/K/V (n, H, T, e) each, probabilities P (n, H, T, T), head outputs O (n, T, d)."""

    x: Any
    q: Any
    k: Any
    v: Any
    p: Any
    o: Any


def _heads(xp: Any, z: Any, heads: int) -> Any:
    """(n, T, d) -> (n, H, T, e): column block h of width e becomes head h."""
    n, t, d = z.shape
    return xp.permute_dims(xp.reshape(z, (n, t, heads, d // heads)), (0, 2, 1, 3))


def _merge(xp: Any, z: Any) -> Any:
    """(n, H, T, e) -> (n, T, H·e), the inverse of :func:`_heads`."""
    n, h, t, e = z.shape
    return xp.reshape(xp.permute_dims(z, (0, 2, 1, 3)), (n, t, h * e))


def _swap(xp: Any, z: Any) -> Any:
    """Transpose the last two axes."""
    axes = (*range(z.ndim - 2), z.ndim - 1, z.ndim - 2)
    return xp.permute_dims(z, axes)


def _flat(xp: Any, z: Any) -> Any:
    """(n, T, k) -> (n·T, k)."""
    return xp.reshape(z, (-1, z.shape[-1]))


def causal_attention_forward(
    x: Any, w_in: Any, w_out: Any, heads: int
) -> tuple[Any, AttentionCache]:
    """Causal multi-head self-attention without biases (module docstring).

    Parameters
    ----------
    x : array of shape (n, T, d)
    w_in : array of shape (3d, d), PyTorch's ``in_proj_weight``
    w_out : array of shape (d, d), PyTorch's ``out_proj.weight``
    heads : int dividing d

    Returns
    -------
    a : array of shape (n, T, d)
    cache : AttentionCache
    """
    xp = get_namespace(x, w_in, w_out)
    n, t, d = x.shape
    qkv = xp.reshape(_flat(xp, x) @ w_in.T, (n, t, 3 * d))
    q = _heads(xp, qkv[:, :, :d], heads)
    k = _heads(xp, qkv[:, :, d : 2 * d], heads)
    v = _heads(xp, qkv[:, :, 2 * d :], heads)
    scores = (q @ _swap(xp, k)) * (1.0 / math.sqrt(d // heads))
    # j > i is the future: masked to -inf, so exp gives exactly 0 there (row max is the finite diagonal's or less)
    steps = xp.arange(t, **on_device_of(scores))
    future = steps[None, :] > steps[:, None]
    scores = xp.where(future, xp.full_like(scores, -math.inf), scores)
    exp = xp.exp(scores - xp.max(scores, axis=-1, keepdims=True))
    probs = exp / xp.sum(exp, axis=-1, keepdims=True)
    o = _merge(xp, probs @ v)
    a = xp.reshape(_flat(xp, o) @ w_out.T, (n, t, d))
    return a, AttentionCache(x, q, k, v, probs, o)


def causal_attention_backward(
    cache: AttentionCache, w_in: Any, w_out: Any, da: Any
) -> tuple[Any, Any, Any]:
    """Backward of :func:`causal_attention_forward` given ``da = dL/dA`` (n, T, d).

    Returns
    -------
    dx : array of shape (n, T, d)
    dw_in : array of shape (3d, d)
    dw_out : array of shape (d, d)
    """
    xp = get_namespace(da)
    n, t, d = da.shape
    heads = cache.q.shape[1]
    da_flat = _flat(xp, da)
    dw_out = da_flat.T @ _flat(xp, cache.o)
    do = _heads(xp, xp.reshape(da_flat @ w_out, (n, t, d)), heads)
    p = cache.p
    dp = do @ _swap(xp, cache.v)
    dv = _swap(xp, p) @ do
    ds = p * (dp - xp.sum(dp * p, axis=-1, keepdims=True))
    scale = 1.0 / math.sqrt(d // heads)
    dq = (ds @ cache.k) * scale
    dk = (_swap(xp, ds) @ cache.q) * scale
    dqkv = xp.concat([_merge(xp, dq), _merge(xp, dk), _merge(xp, dv)], axis=-1)
    dqkv_flat = _flat(xp, dqkv)
    dw_in = dqkv_flat.T @ _flat(xp, cache.x)
    dx = xp.reshape(dqkv_flat @ w_in, (n, t, d))
    return dx, dw_in, dw_out


class LayerNormCache(NamedTuple):
    """Normalised input X̂ and 1/sqrt(var + eps), both broadcastable to (..., d)."""

    x_hat: Any
    inv_std: Any


def layer_norm_forward(
    x: Any, gamma: Any, beta: Any, eps: float = 1e-5
) -> tuple[Any, LayerNormCache]:
    """``gamma ∘ (X − mean X)/sqrt(var X + eps) + beta`` over the last axis (biased variance, as PyTorch)."""
    xp = get_namespace(x, gamma, beta)
    centred = x - xp.mean(x, axis=-1, keepdims=True)
    inv_std = 1.0 / xp.sqrt(xp.mean(centred * centred, axis=-1, keepdims=True) + eps)
    x_hat = centred * inv_std
    return x_hat * gamma + beta, LayerNormCache(x_hat, inv_std)


def layer_norm_backward(cache: LayerNormCache, gamma: Any, dy: Any) -> tuple[Any, Any, Any]:
    """Backward of :func:`layer_norm_forward`: ``(dX, dgamma, dbeta)`` (module docstring)."""
    xp = get_namespace(dy)
    dx_hat = dy * gamma
    x_hat = cache.x_hat
    dx = (
        dx_hat
        - xp.mean(dx_hat, axis=-1, keepdims=True)
        - x_hat * xp.mean(dx_hat * x_hat, axis=-1, keepdims=True)
    ) * cache.inv_std
    d = dy.shape[-1]
    dgamma = xp.sum(xp.reshape(dy * x_hat, (-1, d)), axis=0)
    dbeta = xp.sum(xp.reshape(dy, (-1, d)), axis=0)
    return dx, dgamma, dbeta
