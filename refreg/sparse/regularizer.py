"""The sparse-regularizer interface: a penalty R(W) on weight matrices with its exact gradient."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from refreg._backend import host_namespace
from refreg.sparse._matrices import (
    _check_matrices,
    _check_matrix,
)


class Regularizer:
    """Base class: a penalty ``R(W)`` on weight matrices with its exact gradient.

    Subclasses implement ``_compute(xp, Ws, need_grad) -> (value, grads or None)`` for a *list* of matrices
    treated as one pool (one normalisation over all of them); a single matrix is the list of one.

    Attributes
    ----------
    name : str
        The key in :data:`REGULARIZERS`.
    scale_invariant : bool
        ``R(cW) = R(W)`` for every ``c ≠ 0``; then ``⟨∇R(W), W⟩ = 0`` (Euler's identity, degree 0).
    """

    name: str = ""
    scale_invariant: bool = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _compute(self, xp: Any, Ws: Sequence[Any], need_grad: bool) -> tuple[Any, list | None]:
        raise NotImplementedError

    def value(self, W: Any) -> Any:
        """``R(W)`` as a 0-d array of ``W``'s namespace and dtype; ``W`` of shape (n_out, n_in)."""
        xp = host_namespace(_check_matrix("W", W))
        return self._compute(xp, [W], need_grad=False)[0]

    def grad(self, W: Any) -> Any:
        """``∇R(W)``, an array of shape (n_out, n_in) and ``W``'s dtype."""
        return self.value_and_grad(W)[1]

    def value_and_grad(self, W: Any) -> tuple[Any, Any]:
        """``(R(W), ∇R(W))`` in one pass; ``W`` of shape (n_out, n_in)."""
        xp = host_namespace(_check_matrix("W", W))
        value, grads = self._compute(xp, [W], need_grad=True)
        return value, grads[0]

    def value_and_grads(self, Ws: Sequence[Any]) -> tuple[Any, list[Any]]:
        """``R`` of the matrices ``Ws`` pooled into one (network-wide scope) and its gradient per matrix.

        For the additive regularizers (L1, L2, group lasso) this is the sum over matrices; for the others the
        sums inside ``R`` (mass, norms, marginals) run over all matrices together. See :func:`penalty`.
        """
        if isinstance(Ws, (str, bytes)) or not isinstance(Ws, Sequence) or len(Ws) == 0:
            raise TypeError(f"Ws must be a non-empty list of matrices, got {type(Ws).__name__}")
        xp = host_namespace(_check_matrices(Ws, [f"Ws[{i}]" for i in range(len(Ws))]))
        return self._compute(xp, list(Ws), need_grad=True)
