"""Hand-written nets and losses: ``MLP``, ``Transformer``, activations, ``refreg.nn.losses``."""

from refreg.nn import losses
from refreg.nn.activations import ACTIVATIONS, Activation
from refreg.nn.losses import LOSSES, accuracy, mse, softmax_cross_entropy
from refreg.nn.mlp import MLP, LinearCache, MLPCache, linear_backward, linear_forward
from refreg.nn.transformer import Transformer, TransformerCache

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MLP",
    "Activation",
    "LinearCache",
    "MLPCache",
    "Transformer",
    "TransformerCache",
    "accuracy",
    "linear_backward",
    "linear_forward",
    "losses",
    "mse",
    "softmax_cross_entropy",
]
