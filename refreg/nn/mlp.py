"""A multilayer perceptron with hand-written forward and backward passes.

Notation (PyTorch layout, row-major batches):

==========  ==========================  =================================================
symbol      shape                       meaning
==========  ==========================  =================================================
X           (n, sizes[0])               input batch
W_i         (sizes[i+1], sizes[i])      ``params["layers.{i}.weight"]``; row k = unit k's incoming weights
b_i         (sizes[i+1],)               ``params["layers.{i}.bias"]``
Z_i         (n, sizes[i+1])             pre-activation ``A_{i-1} @ W_i.T + b_i`` (A_{-1} = X)
A_i         (n, sizes[i+1])             ``f(Z_i)``; the last layer has no activation (logits)
delta_i     (n, sizes[i+1])             ``dL/dZ_i``
==========  ==========================  =================================================

Backward (one chain-rule line each):
``dW_i = delta_i.T @ A_{i-1}``, ``db_i = Σ_n delta_i``, ``dA_{i-1} = delta_i @ W_i``,
``delta_{i-1} = dA_{i-1} * f'(Z_{i-1})``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from refreg._backend import (
    as_generator,
    check_device,
    default_namespace,
    float_dtype,
    get_namespace,
)
from refreg._validation import check_choice, check_positive
from refreg.nn._model import check_param_dict, model_value_and_grad
from refreg.nn.activations import ACTIVATIONS

__all__ = ["MLP", "LinearCache", "linear_backward", "linear_forward"]


class LinearCache(NamedTuple):
    """What a linear layer's backward pass needs: its input."""

    x: Any


def linear_forward(x: Any, W: Any, b: Any | None) -> tuple[Any, LinearCache]:
    """``Z = X @ W.T + b``.

    ``b`` is added in place into the product, so ``Z`` has the dtype of ``X @ W.T`` (``MLP`` refuses mixed
    dtypes; a direct caller with a float64 ``b`` and float32 ``X``, ``W`` gets float32). A layer function does
    no checks: ``X``, ``W`` and ``b`` must be arrays of one library (``MLP.forward`` checks that).

    Parameters
    ----------
    x : array of shape (n, n_in)
    W : array of shape (n_out, n_in)
    b : array of shape (n_out,) or None

    Returns
    -------
    z : array of shape (n, n_out)
    cache : LinearCache
    """
    z = x @ W.T
    if b is not None:
        z += b  # in place into the fresh product: the same sum without a second (n, n_out) array
    return z, LinearCache(x)


def linear_backward(
    cache: LinearCache, W: Any, dz: Any, need_dx: bool = True
) -> tuple[Any, Any, Any]:
    """Backward of ``Z = X @ W.T + b``: ``dX = dZ @ W``, ``dW = dZ.T @ X``, ``db = Σ_n dZ``.

    ``need_dx=False`` skips ``dX`` (returned as None): the first layer's input gradient is a third of that
    layer's backward work and a training step does not use it.

    Returns
    -------
    dx : array of shape (n, n_in), or None
    dW : array of shape (n_out, n_in)
    db : array of shape (n_out,)
    """
    xp = get_namespace(dz)
    return (dz @ W if need_dx else None), dz.T @ cache.x, xp.sum(dz, axis=0)


class MLPCache(NamedTuple):
    """Per layer: the linear cache (its input), the pre-activation Z and the activation A."""

    linear: tuple[LinearCache, ...]
    z: tuple[Any, ...]
    a: tuple[Any, ...]


class MLP:
    """Fully connected net ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    An activation follows every layer but the last, whose output is the logits / prediction.

    Parameters
    ----------
    sizes : sequence of int, length >= 2
        Widths from input to output.
    activation : {"relu", "tanh", "identity"}
        ``"identity"`` gives a linear net.
    bias : bool
        Whether the layers have biases.

    Examples
    --------
    >>> net = MLP([4, 8, 3])
    >>> params = net.init(rng=0)
    >>> sorted(params)
    ['layers.0.bias', 'layers.0.weight', 'layers.1.bias', 'layers.1.weight']
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", bias: bool = True):
        sizes = list(sizes) if not isinstance(sizes, (str, bytes)) else sizes
        if (
            not isinstance(sizes, list)
            or len(sizes) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
        ):
            raise ValueError(f"sizes must be a sequence of >= 2 positive ints, got {sizes!r}")
        check_choice("activation", activation, ACTIVATIONS)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        self.sizes = tuple(sizes)
        self.activation = activation
        self.bias = bias

    def __repr__(self) -> str:
        return f"MLP(sizes={list(self.sizes)}, activation={self.activation!r}, bias={self.bias})"

    @property
    def n_layers(self) -> int:
        """Number of linear layers, ``len(sizes) - 1``."""
        return len(self.sizes) - 1

    def weight_name(self, i: int) -> str:
        """Key of layer ``i``'s weight, ``"layers.{i}.weight"`` (PyTorch's naming)."""
        return f"layers.{i}.weight"

    def bias_name(self, i: int) -> str:
        """Key of layer ``i``'s bias, ``"layers.{i}.bias"``."""
        return f"layers.{i}.bias"

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Expected shape of every parameter, in order (weight, bias per layer)."""
        shapes: dict[str, tuple[int, ...]] = {}
        for i in range(self.n_layers):
            shapes[self.weight_name(i)] = (self.sizes[i + 1], self.sizes[i])
            if self.bias:
                shapes[self.bias_name(i)] = (self.sizes[i + 1],)
        return shapes

    def init(
        self,
        rng: Any = None,
        dtype: str = "float64",
        xp: Any = None,
        scale: float = 1.0,
        device: Any = None,
    ) -> dict[str, Any]:
        """PyTorch's default ``nn.Linear`` initialisation, drawn on the host.

        ``W_i, b_i ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (kaiming_uniform with a = sqrt(5)), cast to ``dtype``
        and moved to ``xp`` (on ``device``, default: the library's default device). ``scale`` multiplies the weights only (e.g. 12x for grokking, as in Omnigrok);
        biases keep the default range. The distribution is PyTorch's; the random stream is NumPy's.

        Random draws, so that a port can reproduce an initialization: ``gen = numpy.random.default_rng(rng)``
        for an int or None (a ``Generator`` is used as given, and advances); then for each layer
        ``i = 0, 1, ...`` in order, with ``bound = 1/sqrt(sizes[i])``:
        ``W_i = gen.uniform(-bound, bound, size=(sizes[i+1], sizes[i])) * scale`` (float64, row-major (out, in)),
        then, if ``bias``, ``b_i = gen.uniform(-bound, bound, size=(sizes[i+1],))``. Nothing else is drawn.
        """
        gen = as_generator(rng)
        scale = check_positive("scale", scale)
        xp = default_namespace(xp)
        dt = float_dtype(xp, dtype)
        on = check_device(xp, device)
        params: dict[str, Any] = {}
        for i in range(self.n_layers):
            fan_in = self.sizes[i]
            bound = 1.0 / math.sqrt(fan_in)
            w = gen.uniform(-bound, bound, size=(self.sizes[i + 1], fan_in)) * scale
            params[self.weight_name(i)] = xp.asarray(w, dtype=dt, **on)
            if self.bias:
                b = gen.uniform(-bound, bound, size=(self.sizes[i + 1],))
                params[self.bias_name(i)] = xp.asarray(b, dtype=dt, **on)
        return params

    def check_params(self, params: Mapping[str, Any]) -> Any:
        """Keys, shapes and a common float dtype; returns the namespace."""
        return check_param_dict(params, self.param_shapes())

    def forward(self, params: Mapping[str, Any], x: Any) -> tuple[Any, MLPCache]:
        """Output (logits) of shape (n, sizes[-1]) and the cache for :meth:`backward`."""
        xp = self.check_params(params)
        dtype = params[self.weight_name(0)].dtype
        get_namespace(x, params[self.weight_name(0)])
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"x must have shape (n, {self.sizes[0]}), got {tuple(x.shape)}")
        if x.dtype != dtype:
            raise TypeError(f"x must have the params' dtype {dtype}, got {x.dtype}")
        act = ACTIVATIONS[self.activation]
        linear, zs, as_ = [], [], []
        a = x
        for i in range(self.n_layers):
            z, cache = linear_forward(a, params[self.weight_name(i)], params.get(self.bias_name(i)))
            a = act.forward(z) if i < self.n_layers - 1 else z
            linear.append(cache)
            zs.append(z)
            as_.append(a)
        del xp
        return a, MLPCache(tuple(linear), tuple(zs), tuple(as_))

    def backward(
        self, params: Mapping[str, Any], cache: MLPCache, grad_out: Any
    ) -> tuple[dict[str, Any], Any]:
        """Gradients of a scalar loss L given ``grad_out = dL/d(output)``.

        Returns
        -------
        grads : dict with the keys of ``params``
        grad_x : array of shape (n, sizes[0]), ``dL/dX``
        """
        return self._backward(params, cache, grad_out, need_grad_x=True)

    def _backward(
        self, params: Mapping[str, Any], cache: MLPCache, grad_out: Any, need_grad_x: bool
    ) -> tuple[dict[str, Any], Any]:
        """:meth:`backward`; without ``need_grad_x`` the input gradient is not computed (None)."""
        out = cache.a[-1]
        if tuple(grad_out.shape) != tuple(out.shape):
            raise ValueError(
                f"grad_out must have the output's shape {tuple(out.shape)}, got {tuple(grad_out.shape)}"
            )
        act = ACTIVATIONS[self.activation]
        grads: dict[str, Any] = {}
        delta = grad_out
        for i in reversed(range(self.n_layers)):
            W = params[self.weight_name(i)]
            dx, dW, db = linear_backward(cache.linear[i], W, delta, need_dx=i > 0 or need_grad_x)
            grads[self.weight_name(i)] = dW
            if self.bias:
                grads[self.bias_name(i)] = db
            if i > 0:
                delta = act.backward(cache.z[i - 1], cache.a[i - 1], dx)
            else:
                grad_x = dx
        return {k: grads[k] for k in params}, grad_x

    def value_and_grad(
        self,
        params: Mapping[str, Any],
        x: Any,
        y: Any,
        loss: str | Callable[[Any, Any], tuple[Any, Any]] = "softmax_cross_entropy",
    ) -> tuple[Any, dict[str, Any]]:
        """``(L(forward(params, x), y), dL/dparams)``; ``loss`` is a name in ``LOSSES`` or a callable.

        Raises
        ------
        FloatingPointError
            NaN or inf in ``x``, in a parameter (named by its key), in float targets ``y``, or a loss that
            overflows; checked before the backward pass, so a NaN never reaches an optimizer as a number.
        """
        backward = functools.partial(self._backward, need_grad_x=False)
        return model_value_and_grad(self.forward, backward, params, x, y, loss, check_x=True)

    def predict(self, params: Mapping[str, Any], x: Any) -> Any:
        """The output alone (no cache kept)."""
        return self.forward(params, x)[0]
