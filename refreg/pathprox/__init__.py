"""PathProx: proximal training of the norm-product (ℓ₂ path norm) objective, and its equivalence to weight decay.

L. Yang, J. Zhang, J. Shenouda, D. Papailiopoulos, K. Lee, R. D. Nowak, "PathProx: A Proximal Gradient
Algorithm for Weight Decay Regularized Deep Neural Networks" (arXiv 2210.03069; v1 "A Better Way to Decay:
Proximal Gradient Training Algorithms for Neural Nets", NeurIPS'22 OPT workshop), and the authors' code ``github.com/Leiay/PathProx`` (``regularize.py``, ``regularize_func.py``).

Notation (PyTorch layout; a *group* is a disjoint pair of consecutive layers ``(W, V)``; docs/notation.md has
the glossary of all three methods):

=============  ==================  ==============================================================
symbol         shape               meaning
=============  ==================  ==============================================================
W              (N, n_in)           the group's first layer; row ``w_k = W[k, :]`` = unit k's input
b              (N,)                W's bias; ``b_k`` is rescaled with ``w_k``
V              (n_out, N)          the group's second layer; column ``v_k = V[:, k]`` = unit k's output
P_g            scalar              group g's path norm ``Σ_k ||w_k||·||v_k||``
PN             scalar              the ℓ₂ path norm ``Σ_g P_g``
WD             scalar              the weight-decay penalty ``½ Σ_g (||W_g||² + ||V_g||²)``
lam            scalar              λ, the penalty coefficient
lr             scalar              η, the learning rate of the step
tau            scalar              τ, the prox threshold; ``τ = λ·η`` inside :func:`pathprox`
=============  ==================  ==============================================================

For ReLU units ``f(a w, a b, v / a) = f(w, b, v)`` (a > 0), and ``½(||w||² + ||v||²) ≥ ||w||·||v||`` with
equality iff ``||w|| = ||v||`` (AM-GM), so ``min_θ L + λ·WD = min_θ L + λ·PN`` and the two share their
minimizing functions (docs/derivations.md, "Weight decay and the norm product"). PathProx takes a gradient step on L, rescales the groups so that every
``P_g`` equals their geometric mean (function unchanged), and applies the prox of the non-smooth part of the
equivalent problem ``min L + λ Σ ||v_k|| s.t. ||w_k|| = 1``: project ``w_k`` onto the unit sphere and
group-soft-threshold ``v_k`` by ``τ = λ·η``, which sets whole units to exactly zero.

A porter starts at :class:`PathProx` (:meth:`PathProx.reference_update` is the algorithm box;
:meth:`PathProx.update` its fused speed path) and :mod:`refreg.pathprox.prox` (the operators).
"""

from refreg.pathprox.balance import balance_layers, balance_units
from refreg.pathprox.fused import fused_balance_then_prox
from refreg.pathprox.groups import Group, Groups, check_groups, pair_groups, unit_norms
from refreg.pathprox.optimizer import PathProx, PathProxState, pathprox, sgd_weight_decay
from refreg.pathprox.penalties import (
    active_units,
    path_norm,
    weight_decay_objective,
    weight_decay_penalty,
)
from refreg.pathprox.prox import (
    SPHERE_EPS,
    group_soft_threshold,
    project_unit_sphere,
    prox_norm_product,
)
from refreg.pathprox.reference import balance_then_prox

__all__ = [
    "SPHERE_EPS",
    "Group",
    "Groups",
    "PathProx",
    "PathProxState",
    "active_units",
    "balance_layers",
    "balance_then_prox",
    "balance_units",
    "check_groups",
    "fused_balance_then_prox",
    "group_soft_threshold",
    "pair_groups",
    "path_norm",
    "pathprox",
    "project_unit_sphere",
    "prox_norm_product",
    "sgd_weight_decay",
    "unit_norms",
    "weight_decay_objective",
    "weight_decay_penalty",
]
