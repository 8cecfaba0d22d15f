"""CPR: constrained parameter regularization (Franke et al., NeurIPS 2024, arXiv 2311.09058).

J. K. H. Franke, M. Hefenbrock, G. Koehler, F. Hutter, "Improving Deep Learning Optimization through Constrained
Parameter Regularization", NeurIPS 2024 (arXiv 2311.09058; v1 "Constrained Parameter Regularization"), and the
authors' release ``pytorch-cpr`` 0.3.1 (``AdamCPR``).

CPR replaces weight decay by one inequality constraint per regularized parameter tensor and enforces it with a
Lagrange multiplier that a dual (augmented-Lagrangian) step updates after every optimizer step.

Notation (docs/notation.md has the glossary of all three methods):

=============  ===============================================================================================
symbol         meaning
=============  ===============================================================================================
θ_j            one regularized parameter tensor (any shape, n_j entries); code ``params[name]``
R(θ_j)         the constrained measure: ``l2`` Σθ², ``l1`` Σ|θ|, ``huber`` Σ huber_1(θ), ``std`` unbiased std
κ_j            the bound of the constraint ``R(θ_j) <= κ_j`` (in the units of R); code ``kappa``
λ_j            the multiplier λ_j >= 0 of that constraint; code ``lam``
μ              the dual step size (the release's ``kappa_update``); per-tensor rate μ/n_j except for ``std``
t              the tensor's own 1-based step counter
=============  ===============================================================================================

One update (paper Algorithm 1, as the released pytorch-cpr 0.3.1 orders it; :meth:`CPR.update`):

1. ``θ ← θ + Opt(∇L)``: the base optimizer's step (e.g. Adam, no weight decay);
2. for each regularized tensor, at the post-step θ_j:
   ``λ_j ← max(0, λ_j + (μ/n_j)·(R(θ_j) − κ_j))`` then ``θ_j ← θ_j − λ_j·∇R(θ_j)``;
3. κ_j set by the strategy (:mod:`~refreg.cpr.kappa`: Kappa-WS after step s, Kappa-IP at an inflection point).

λ is updated first and used in the same step; the constraint step bypasses the base optimizer's moments and is not
scaled by the learning rate (unless ``reg_by_lr``). The paper states the update at θ_t; the release (and this
module) evaluates R and ∇R at the post-step θ_{t+1}, and ∇R = 2θ for ``l2`` (R = Σθ², not ½‖θ‖²).
The λ-update is the projected dual ascent of the augmented Lagrangian (paper Appendix A; derived in
docs/derivations.md, "CPR's multiplier update from the augmented Lagrangian").

A porter starts at :mod:`refreg.cpr.optimizer` (:meth:`CPR.update` is the algorithm box), then the κ strategies
(:mod:`~refreg.cpr.kappa`, :mod:`~refreg.cpr.detector`) and, to match the release bit for bit,
:class:`~refreg.cpr.scalars.Float32ReleaseScalars`.
"""

from refreg.cpr.constraint import constraint_step, fast_measure_value, plain_constraint_step
from refreg.cpr.detector import GROWTH_FLOOR, DetectorState, inflection_point_step
from refreg.cpr.factories import adam_cpr, cpr
from refreg.cpr.kappa import (
    KAPPA_INITS,
    KAPPA_UNSET,
    Dependent,
    InflectionPoint,
    KappaInit,
    Uniform,
    WarmStart,
    kappa_strategy,
)
from refreg.cpr.measures import MEASURES, measure_grad, measure_value
from refreg.cpr.optimizer import CPR, CPRState
from refreg.cpr.scalars import (
    SCALAR_DTYPES,
    Float32ReleaseScalars,
    Float64Scalars,
    ScalarPolicy,
    round_to_dtype,
    scalar_policy,
)
from refreg.cpr.selection import default_regularize, select_regularized

__all__ = [
    "CPR",
    "GROWTH_FLOOR",
    "KAPPA_INITS",
    "KAPPA_UNSET",
    "MEASURES",
    "SCALAR_DTYPES",
    "CPRState",
    "Dependent",
    "DetectorState",
    "Float32ReleaseScalars",
    "Float64Scalars",
    "InflectionPoint",
    "KappaInit",
    "ScalarPolicy",
    "Uniform",
    "WarmStart",
    "adam_cpr",
    "constraint_step",
    "cpr",
    "default_regularize",
    "fast_measure_value",
    "inflection_point_step",
    "kappa_strategy",
    "measure_grad",
    "measure_value",
    "plain_constraint_step",
    "round_to_dtype",
    "scalar_policy",
    "select_regularized",
]
