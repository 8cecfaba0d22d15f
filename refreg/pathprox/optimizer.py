"""The PathProx optimizer (SGD step, layer balance, prox) and its SGD + weight-decay baseline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from refreg._validation import (
    check_choice,
    check_grads,
    check_in_range,
    check_lr,
)
from refreg.optim.optimizers import check_state_matches
from refreg.optim.schedules import Schedule, current_lr
from refreg.pathprox.balance import _check_chain, _layer_scales
from refreg.pathprox.groups import (
    Groups,
    Params,
    _check_finite_params,
    _check_lam,
    _unit_norms,
    check_groups,
)
from refreg.pathprox.prox import SPHERE_EPS, _norm_product_factors, _shrink_factor


class PathProxState(NamedTuple):
    """``step``: updates applied so far; ``momentum_buffer[name]``: torch's SGD buffer (empty if momentum 0)."""

    step: int
    momentum_buffer: dict[str, Any]


_PROX = ("sphere", "joint", "none")


@dataclass(frozen=True)
class PathProx:
    """PathProx (``prox="sphere"``/``"joint"``) and its SGD + weight-decay baseline (``prox="none"``).

    One update (the authors' ``regularize.py``, spec 2), with ``γ`` the current learning rate:

    1. ``d = ∇L + λ·W`` for the "other" weights (and, for ``prox="none"``, every grouped weight too);
       biases are decayed only with ``regularize_bias``; torch-style momentum on d;
       ``θ ← θ − γ·d``.
    2. ``layer_balance`` (and no ``regularize_bias``): :func:`balance_layers`.
    3. prox with ``τ = λ·γ``: ``"sphere"``: :func:`project_unit_sphere` on ``(W, b)`` then
       :func:`group_soft_threshold` of the columns of V; ``"joint"``: :func:`prox_norm_product` on
       ``(W, V)`` (``[W, b]`` with ``regularize_bias``).

    Steps 2 and 3 are fused into one rescaling of each array (same values as the composition up to
    rounding). Use :func:`pathprox` and :func:`sgd_weight_decay` to build one.
    """

    lr: float | Schedule
    lam: float
    groups: Groups
    momentum: float = 0.0
    prox: str = "sphere"
    layer_balance: bool = True
    regularize_bias: bool = False

    def __post_init__(self):
        check_lr(self.lr)
        _check_lam(self.lam)
        check_in_range("momentum", self.momentum, 0.0, 1.0, closed="left")
        check_choice("prox", self.prox, _PROX)
        if not isinstance(self.groups, Groups):
            raise TypeError(
                f"groups must be a refreg.pathprox.Groups, got {type(self.groups).__name__}"
            )
        for name in ("layer_balance", "regularize_bias"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")

    def init(self, params: Mapping[str, Any]) -> PathProxState:
        """A fresh state: step 0 and zero momentum buffers (none when momentum is 0)."""
        xp = check_groups(params, self.groups)
        buffers = {k: xp.zeros_like(p) for k, p in params.items()} if self.momentum else {}
        return PathProxState(step=0, momentum_buffer=buffers)

    def _decayed_keys(self) -> list[str]:
        keys = list(self.groups.other)
        if self.prox == "none":
            keys += [k for pair in self.groups.pairs for k in (pair.w, pair.v)]
        if self.regularize_bias:
            keys += list(self.groups.other_biases)
            if self.prox == "none":
                keys += [p.w_bias for p in self.groups.pairs if p.w_bias is not None]
        return keys

    def update(
        self, grads: Mapping[str, Any], state: PathProxState, params: Mapping[str, Any]
    ) -> tuple[Params, PathProxState]:
        """``(new_params, new_state)``; the arguments are not modified and a failed call changes nothing."""
        xp = check_groups(params, self.groups)
        check_grads(grads, params)
        _check_finite_params(params)
        check_state_matches(
            state, params if self.momentum else {}, PathProxState, "momentum_buffer"
        )
        balance = self.layer_balance and not self.regularize_bias and self.prox != "none"
        if balance:
            _check_chain(params, self.groups)
        lr = current_lr(self.lr, state.step)

        decayed = set(self._decayed_keys())
        new_params, new_buffers = {}, {}
        for key, p in params.items():
            d = grads[key]
            if key in decayed and self.lam:
                d = d + self.lam * p
            if self.momentum:
                buf = d if state.step == 0 else self.momentum * state.momentum_buffer[key] + d
                new_buffers[key] = buf
                d = buf
            # -(lr d) + p is bitwise p - lr d; adding in place into our own temporary saves one array
            step = d * (-lr)
            step += p
            new_params[key] = step
        if self.prox != "none":
            new_params = self._prox_step(xp, new_params, self.lam * lr, balance)
        return new_params, PathProxState(step=state.step + 1, momentum_buffer=new_buffers)

    def _prox_step(self, xp: Any, params: Params, tau: float, balance: bool) -> Params:
        """Layer balance then the prox, fused into one rescaling per array (rows of W, columns of V, biases).

        Balance multiplies V_g's columns by ``s_g/s_{g-1}`` and W_g's bias by ``s_{g-1}``; the prox then
        multiplies row k of W_g by ``fw_k`` and column k of V_g by ``fv_k``, both computed from the balanced
        norms (W's norms are not changed by the balance). ``params`` must be this update's own fresh arrays:
        they are rescaled in place.
        """
        groups, n_pairs = self.groups, len(self.groups.pairs)
        norms = _unit_norms(xp, params, groups, self.regularize_bias)
        balanced = balance and n_pairs > 1
        if balanced:
            scales = _layer_scales(xp, [xp.sum(nw * nv) for nw, nv in norms])
        out = dict(params)
        for g, (pair, (nw, nv)) in enumerate(zip(groups.pairs, norms, strict=True)):
            column: Any = 1.0
            bias_factor: Any = 1.0
            if balanced:
                prev = scales[g - 1] if g else 1.0
                column, bias_factor = scales[g] / prev, prev
                nv = nv * column
                if pair.v_bias is not None and g + 1 < n_pairs:
                    out[pair.v_bias] = params[pair.v_bias] * scales[g]
            if self.prox == "sphere":
                fw = 1.0 / xp.clip(nw, min=SPHERE_EPS)
                fv = _shrink_factor(xp, nv, tau)
            else:
                fw, fv = _norm_product_factors(xp, nw, nv, tau)
            if self.prox == "sphere" or self.regularize_bias:
                # the bias follows its row; the joint prox leaves an unregularized bias alone
                bias_factor = bias_factor * fw
            # in place: these arrays are the fresh results of this update's SGD step, owned here
            out[pair.w] *= fw[:, None]
            out[pair.v] *= (fv * column)[None, :]
            if pair.w_bias is not None and (balanced or not isinstance(bias_factor, float)):
                out[pair.w_bias] *= bias_factor
        return out


def pathprox(
    lr: float | Schedule,
    lam: float,
    *,
    groups: Groups,
    momentum: float = 0.0,
    prox: str = "sphere",
    layer_balance: bool = True,
    regularize_bias: bool = False,
) -> PathProx:
    """PathProx as an optimizer with ``init(params)`` / ``update(grads, state, params)``.

    Proximal SGD on ``L + λ Σ_g Σ_k ||w_k||·||v_k|| + λ/2 Σ_other ||W||²`` (arXiv 2210.03069; the authors'
    ``regularize.py``): SGD step, layer balance, then the prox with ``τ = λ·lr_t`` (see :class:`PathProx`).

    Parameters
    ----------
    lr : float > 0 or schedule ``t -> lr``
    lam : float >= 0
        λ; the authors use 1e-4 (MNIST) and 1e-3 (CIFAR-10).
    groups : Groups
        From :func:`pair_groups`.
    momentum : float in [0, 1)
        The authors use 0.
    prox : {"sphere", "joint"}
        "sphere": the authors' projection of w onto ``||w|| = 1`` and group soft-threshold of v;
        "joint": the exact prox of ``τ||w||·||v||`` (:func:`prox_norm_product`).
    layer_balance : bool
        Apply :func:`balance_layers` before the prox (skipped with ``regularize_bias``, as the authors).
    regularize_bias : bool
        Treat ``[w_k, b_k]`` as the unit's input vector and decay the other layers' biases.

    Returns
    -------
    PathProx
        ``init(params) -> PathProxState``; ``update(grads, state, params) -> (params, state)``.

    Raises
    ------
    ValueError
        ``lr <= 0``, ``lam < 0``, momentum outside [0, 1), an unknown ``prox``; at ``update``: groups that do
        not match the params (keys, shapes), non-consecutive pairs with ``layer_balance``.
    TypeError
        ``groups`` is not a :class:`Groups`; at ``update``: a wrong state type, mixed dtypes.
    FloatingPointError
        At ``update``: a NaN or inf in a gradient or parameter (the message names its key). A failed update
        leaves params and state untouched.

    Examples
    --------
    >>> from refreg import MLP
    >>> net = MLP([4, 8, 3])
    >>> params = net.init(rng=0)
    >>> opt = pathprox(0.3, 1e-4, groups=pair_groups(net))
    >>> state = opt.init(params)
    """
    check_choice("prox", prox, ("sphere", "joint"))
    return PathProx(lr, lam, groups, momentum, prox, layer_balance, regularize_bias)


def sgd_weight_decay(
    lr: float | Schedule, lam: float, *, groups: Groups, momentum: float = 0.0
) -> PathProx:
    """The authors' baseline on the same pipeline: SGD on ``L + λ/2·Σ ||W||²`` over every weight (no biases).

    ``θ ← θ − lr·(∇L + λ·W)`` (``--with-loss-term`` in ``regularize.py``); no balance, no prox. Returns a
    :class:`PathProx` with ``prox="none"``, so both methods share validation, momentum and state.
    """
    return PathProx(lr, lam, groups, momentum, "none", False, False)
