"""Sparse regularizers on weight matrices, magnitude pruning and masked fine-tuning.

The default, ``spatial_entropy``, is refreg's **reconstruction** of the scale-invariant sparse regularizer of
Bayandorian, "A Novel Sparse Regularizer" (arXiv 2301.07285, 2023). The paper's formula is not published in
anything at hand (only its abstract): refreg implements the natural regularizer that has every property the
abstract states -- it depends on the *spatial arrangement* of the weights in a matrix, it is an entropy, it is
differentiable, scale-invariant, cheap (two reductions), needs O(n_out + n_in) extra numbers and parallelizes. It is
not a verified copy of the paper's regularizer. The baselines (L1, L2, group lasso, Hoyer, Hoyer-Square,
Group Hoyer-Square) follow their published definitions.

Notation (PyTorch layout; docs/notation.md has the glossary of all three methods):

=========  ==============  =========================================================================
symbol     shape           meaning
=========  ==============  =========================================================================
W          (n_out, n_in)   one weight matrix; row i = output unit i, column j = input feature j
‖W‖₁       ()              ``Σ_ij |w_ij|``, the total magnitude
r          (n_out,)        row shares ``r_i = Σ_j |w_ij| / ‖W‖₁``
c          (n_in,)         column shares ``c_j = Σ_i |w_ij| / ‖W‖₁``
p          (n_out, n_in)   element shares ``p_ij = |w_ij| / ‖W‖₁``
H(q)       ()              Shannon entropy ``−Σ q log q`` with ``0 log 0 = 0``
λ          ()              the penalty coefficient (``alpha`` in :func:`penalty`)
sign(0)    --              ``0``: the subgradient chosen at the kink of ``|w|`` (zero weights get zero
                           gradient)
=========  ==============  =========================================================================

The formulas are derived in docs/derivations.md, "The spatial entropy: gradient and Euler identity".

Every regularizer is an object with ``value(W)``, ``grad(W)`` and ``value_and_grad(W)`` (exact closed-form
gradients, no autodiff) and an attribute ``scale_invariant``; ``REGULARIZERS`` maps names to them.
:func:`penalty` sums a regularizer over the weight matrices of a net, per layer or network-wide.
:func:`magnitude_mask`, :func:`apply_mask`, :func:`count_nonzero` and :func:`masked` prune and fine-tune;
:func:`structure` counts what a pruned net keeps (dead units, removable weights).
:class:`PooledSpatialEntropy` is a second, position-aware reconstruction for image input layers
(``docs/sparse_position_aware.md``); it takes the image layout, so it is not in ``REGULARIZERS``.
"""

from refreg.sparse.baselines import L1, L2, GroupHoyerSquare, GroupLasso, Hoyer, HoyerSquare
from refreg.sparse.dead_units import structure
from refreg.sparse.entropy import ElementEntropy, SpatialEntropy
from refreg.sparse.network import REGULARIZERS, SCOPES, get_regularizer, penalty, weight_names
from refreg.sparse.pooled import PooledSpatialEntropy, patch_matrix
from refreg.sparse.pruning import Masked, apply_mask, count_nonzero, magnitude_mask, masked
from refreg.sparse.regularizer import Regularizer

__all__ = [
    "L1",
    "L2",
    "REGULARIZERS",
    "SCOPES",
    "ElementEntropy",
    "GroupHoyerSquare",
    "GroupLasso",
    "Hoyer",
    "HoyerSquare",
    "Masked",
    "PooledSpatialEntropy",
    "Regularizer",
    "SpatialEntropy",
    "apply_mask",
    "count_nonzero",
    "get_regularizer",
    "magnitude_mask",
    "masked",
    "patch_matrix",
    "penalty",
    "structure",
    "weight_names",
]
