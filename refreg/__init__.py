"""refreg: reference implementations of regularizers beyond weight decay, in NumPy (CuPy on a GPU).

- ``refreg.nn``: MLP with hand-written forward/backward passes, activations, losses.
- ``refreg.optim``: SGD, Adam, AdamW as pure ``(init, update)`` pairs; learning-rate schedules.
- ``refreg.io``: exact ``.npz`` checkpoints of parameters and optimizer state.
- ``refreg.data``: modular addition, teacher-student, bundled digits, local MNIST.
- ``refreg.training``: the shared minibatch loop.
"""

from refreg import data, io, nn, optim, training
from refreg.nn import MLP
from refreg.optim import adam, adamw, sgd

__version__ = "0.1.0"

__all__ = ["MLP", "adam", "adamw", "data", "io", "nn", "optim", "sgd", "training"]
