"""The PathProx optimizer (SGD step, layer balance, prox) and its SGD + weight-decay baseline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, NamedTuple

from refreg._backend import all_finite, zero_d_array
from refreg._validation import (
    check_bool,
    check_choice,
    check_grads,
    check_in_range,
    check_lr,
)
from refreg.io import register_state
from refreg.optim.schedules import Schedule, current_lr
from refreg.optim.state_checks import check_state_matches
from refreg.pathprox.balance import _check_chain
from refreg.pathprox.fused import fused_balance_then_prox
from refreg.pathprox.groups import (
    Groups,
    Params,
    _check_finite_params,
    _check_groups_type,
    _check_lam,
    check_groups,
)
from refreg.pathprox.reference import balance_then_prox
from refreg.pathprox.unchecked import unchecked_update


@register_state("PathProxState")
class PathProxState(NamedTuple):
    """``step``: updates applied so far; ``momentum_buffer[name]``: torch's SGD buffer (empty if momentum 0)."""

    step: int
    momentum_buffer: dict[str, Any]


_PROX = ("sphere", "joint", "none")


@dataclass(frozen=True)
class PathProx:
    """PathProx (``prox="sphere"``/``"joint"``) and its SGD + weight-decay baseline (``prox="none"``).

    One update (the authors' ``regularize.py``; docs/derivations.md, "PathProx, one step"), with ``η`` the
    current learning rate:

    1. ``d = ∇L + λ·W`` for the "other" weights (and, for ``prox="none"``, every grouped weight too);
       biases are decayed only with ``regularize_bias``: then the other layers' biases and every pair's V
       bias (which no prox touches; the authors' ``collect_other_norm``), and for ``prox="none"`` the pairs'
       W biases too (the authors' "wd" baseline counts the V biases a second time, in
       ``collect_grouped_norm``; refreg decays them once); torch-style momentum on d;
       ``θ ← θ − η·d``.
    2. ``layer_balance`` (and no ``regularize_bias``): :func:`balance_layers`.
    3. prox with ``τ = λ·η``: ``"sphere"``: :func:`project_unit_sphere` on ``(W, b)`` then
       :func:`group_soft_threshold` of the columns of V; ``"joint"``: :func:`prox_norm_product` on
       ``(W, V)`` (``[W, b]`` with ``regularize_bias``).

    :meth:`reference_update` is this box line by line (:mod:`refreg.pathprox.reference`); :meth:`update`, the
    one to train with, fuses steps 2 and 3 into one rescaling of each array (:mod:`refreg.pathprox.fused`;
    equal up to rounding); on NumPy without momentum it takes the finiteness checks from the unit norms
    (bitwise the same results). Use :func:`pathprox` and :func:`sgd_weight_decay` to build one.
    """

    state_type = PathProxState  # not a field: the state class, for refreg.pathprox.unchecked

    lr: float | Schedule
    lam: float
    groups: Groups
    momentum: float = 0.0
    prox: str = "sphere"
    layer_balance: bool = True
    regularize_bias: bool = False

    def __post_init__(self):
        # Python floats: a NumPy-scalar hyperparameter would promote float32 parameters to float64
        set_ = partial(object.__setattr__, self)
        lr = check_lr(self.lr)
        set_("lr", self.lr if callable(self.lr) else lr)
        set_("lam", _check_lam(self.lam))
        set_("momentum", check_in_range("momentum", self.momentum, 0.0, 1.0, closed="left"))
        check_choice("prox", self.prox, _PROX)
        _check_groups_type(self.groups)
        for name in ("layer_balance", "regularize_bias"):
            set_(name, check_bool(name, getattr(self, name)))

    def init(self, params: Mapping[str, Any]) -> PathProxState:
        """A fresh state: step 0 and zero momentum buffers (none when momentum is 0)."""
        xp = check_groups(params, self.groups)
        buffers = {k: xp.zeros_like(p) for k, p in params.items()} if self.momentum else {}
        return PathProxState(step=0, momentum_buffer=buffers)

    @cached_property
    def _decayed_set(self) -> frozenset[str]:
        return frozenset(self._decayed_keys())

    def _decayed_keys(self) -> list[str]:
        keys = list(self.groups.other)
        if self.prox == "none":
            keys += [k for pair in self.groups.pairs for k in (pair.w, pair.v)]
        if self.regularize_bias:
            keys += list(self.groups.other_biases)
            # every pair's V bias too: no prox touches it, and the authors' collect_other_norm decays it
            keys += [p.v_bias for p in self.groups.pairs if p.v_bias is not None]
            if self.prox == "none":
                keys += [p.w_bias for p in self.groups.pairs if p.w_bias is not None]
        return keys

    def update(
        self, grads: Mapping[str, Any], state: PathProxState, params: Mapping[str, Any]
    ) -> tuple[Params, PathProxState]:
        """One PathProx step, steps 2–3 fused (the speed path); equal to :meth:`reference_update` up to rounding.

        Returns ``(new_params, new_state)``; the arguments are not modified and a failed call changes nothing.
        """
        # 1. θ ← θ − η·(∇L + λ·θ_decayed); 2–3. layer balance, then the prox with τ = λη: one rescaling per
        # array (refreg.pathprox.fused)
        new_params = unchecked_update(self, grads, state, params)
        if new_params is not None:
            return new_params, PathProxState(step=state.step + 1, momentum_buffer={})
        return self._step(grads, state, params, fused_balance_then_prox)

    def reference_update(
        self, grads: Mapping[str, Any], state: PathProxState, params: Mapping[str, Any]
    ) -> tuple[Params, PathProxState]:
        """One PathProx step as the algorithm box states it (Yang et al. 2022; the authors' README and
        ``regularize.py``): each line one public operator (:mod:`refreg.pathprox.reference`).

        .. math::
            θ ← θ − η(∇L + λθ_{other});\\quad θ ← \\text{balance\\_layers}(θ);\\quad
            (w_k, v_k) ← \\text{prox}_{τ}(w_k, v_k),\\ τ = λη

        Same arguments, checks and state as :meth:`update`; slower (one pass per operator).
        """
        # 1. θ ← θ − η·(∇L + λ·θ_decayed); 2. layer balance; 3. the prox with τ = λη on every unit
        return self._step(grads, state, params, balance_then_prox)

    def _step(
        self,
        grads: Mapping[str, Any],
        state: PathProxState,
        params: Mapping[str, Any],
        balance_then_prox_fn: Any,
    ) -> tuple[Params, PathProxState]:
        """Checks, the gradient step, then ``balance_then_prox_fn`` (reference or fused) with τ = λη."""
        xp, lr, balance = self._check(grads, state, params)
        new_params, buffers = self._gradient_step(xp, grads, state, params, lr)
        if self.prox != "none":
            try:
                new_params = balance_then_prox_fn(
                    xp,
                    new_params,
                    self.groups,
                    self.lam * lr,
                    prox=self.prox,
                    balance=balance,
                    regularize_bias=self.regularize_bias,
                )
            except FloatingPointError as err:  # finite inputs (checked): our own step overflowed
                _raise_if_overflowed(new_params, lr, err)
                raise
        return new_params, PathProxState(step=state.step + 1, momentum_buffer=buffers)

    def _check(
        self, grads: Mapping[str, Any], state: PathProxState, params: Mapping[str, Any]
    ) -> tuple[Any, float, bool]:
        """Validate the arguments; returns ``(xp, η_t, whether to balance)``."""
        xp = check_groups(params, self.groups)
        check_grads(grads, params)
        _check_finite_params(params, xp)
        check_state_matches(
            state, params if self.momentum else {}, PathProxState, "momentum_buffer"
        )
        balance = self.layer_balance and not self.regularize_bias and self.prox != "none"
        if balance:
            _check_chain(params, self.groups)
        return xp, current_lr(self.lr, state.step), balance

    def _gradient_step(
        self,
        xp: Any,
        grads: Mapping[str, Any],
        state: PathProxState,
        params: Mapping[str, Any],
        lr: float,
    ) -> tuple[Params, dict[str, Any]]:
        """``d = ∇L + λθ`` on the decayed keys, ``buf ← momentum·buf + d`` (torch SGD), ``θ ← θ − η·d``."""
        decayed = set(self._decayed_keys())
        new_params, new_buffers = {}, {}
        for key, p in params.items():
            d = grads[key]
            if key in decayed and self.lam:
                d = d + self.lam * p
            if self.momentum:
                if (
                    state.step == 0
                ):  # the first buffer is d, as in torch, but never the caller's array
                    buf = xp.asarray(d, copy=True) if d is grads[key] else d
                else:
                    buf = self.momentum * state.momentum_buffer[key] + d
                new_buffers[key] = buf
                d = buf
            # -(lr d) + p is bitwise p - lr d; adding in place into our own temporary saves one array
            step = d * (-lr)
            step += p
            new_params[key] = zero_d_array(step)
            if key in new_buffers:
                new_buffers[key] = zero_d_array(new_buffers[key])
        return new_params, new_buffers


def _raise_if_overflowed(new_params: Params, lr: float, err: Exception) -> None:
    """``FloatingPointError`` naming the first result of the gradient step ``θ − lr·d`` that is not finite.

    The params and gradients were checked finite, so such a result is the step's own overflow (lr·d or the
    momentum buffer beyond the float max), not the caller's values."""
    for key, p in new_params.items():
        if not all_finite(p):
            raise FloatingPointError(
                f"the update overflowed: params[{key!r}] − lr·d is not finite with lr={lr!r} (the params "
                "and gradients are finite); lower lr or the gradient scale"
            ) from err


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
        Treat ``[w_k, b_k]`` as the unit's input vector, and decay the other layers' biases and every pair's
        V bias.

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
        At ``update``: a NaN or inf in a gradient or parameter (the message names its key), or a gradient
        step ``θ − lr·d`` that overflows from finite inputs ("the update overflowed", naming the key and lr).
        A failed update leaves params and state untouched.

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
