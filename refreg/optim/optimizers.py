"""SGD, Adam and AdamW as pure ``(init, update)`` pairs, step for step the same as ``torch.optim``.

Notation: ``theta`` a parameter, ``g`` its gradient, ``t`` the 1-based step, ``lr`` the (scheduled) learning
rate of this step, ``m``/``v`` Adam's first/second moments, ``buf`` the momentum buffer.

An optimizer is a frozen object; ``init(params) -> state`` and
``update(grads, state, params) -> (new_params, new_state)`` never modify their arguments, so a call that
raises (bad keys, shapes, dtypes, a NaN gradient) leaves parameters and state exactly as they were.
State is a ``NamedTuple`` of a step counter and dicts of arrays keyed like ``params``:
``refreg.io.save``/``load`` round-trip it exactly.

``update(..., donate=True)`` is the opt-in in-place form (the caller gives up ``params`` and the state's
buffers, which receive the new values): the same numbers bit for bit, computed by the fused kernels of
:mod:`refreg.optim._fused` without allocating; see there for the rules.

With numba installed (the optional ``fast`` extra), Adam's pure and donated steps on NumPy float arrays run
the one-loop kernel of :mod:`refreg.optim._accel` instead: the same operations in the same order, bit for
bit the numbers of ``kernels.adam_kernel`` (tested), without NumPy's pass per operator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple, Protocol

from refreg._backend import elementwise, namespace_of_params
from refreg._validation import (
    check_bool,
    check_in_range,
    check_lr,
    check_nonnegative,
    check_positive,
)
from refreg.io import register_state
from refreg.optim import _accel
from refreg.optim._fused import adam_into, assign_into, check_donation, sgd_into
from refreg.optim.kernels import AdamStepCoefficients, adam_kernel, sgd_kernel
from refreg.optim.schedules import Schedule, current_lr
from refreg.optim.state_checks import check_params_and_grads, check_state_matches

__all__ = [
    "SGD",
    "Adam",
    "AdamState",
    "Optimizer",
    "SGDState",
    "adam",
    "adamw",
    "check_state_matches",
    "sgd",
]

Params = dict[str, Any]


class Optimizer(Protocol):
    """What every refreg optimizer (and wrapper such as CPR) provides."""

    def init(self, params: Mapping[str, Any]) -> Any:
        """The state before the first update (step 0, zero buffers)."""
        ...

    def update(
        self, grads: Mapping[str, Any], state: Any, params: Mapping[str, Any]
    ) -> tuple[Params, Any]:
        """One step: new parameters and new state; the arguments are not modified."""
        ...


@register_state("SGDState")
class SGDState(NamedTuple):
    """``step``: updates applied so far; ``momentum_buffer[name]``: torch's ``momentum_buffer``."""

    step: int
    momentum_buffer: dict[str, Any]


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``.

    .. math::
        d = g + wd·theta;\\quad buf_1 = d,\\ buf_t = momentum·buf_{t-1} + (1 - dampening)·d;\\\\
        d \\leftarrow d + momentum·buf_t \\text{ (nesterov) or } buf_t;\\quad theta \\leftarrow theta - lr·d

    (Sutskever et al. 2013; PyTorch's formulation, in which ``lr`` multiplies the buffer.)
    """

    lr: float | Schedule
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    def __post_init__(self):
        # Python floats and bools: a NumPy scalar hyperparameter (np.float64(0.9)) would promote float32
        # parameters and state to float64 under NumPy's promotion rules
        set_ = partial(object.__setattr__, self)
        set_("lr", _lr_value(self.lr))
        set_("momentum", check_in_range("momentum", self.momentum, 0.0, 1.0, closed="left"))
        set_("dampening", check_in_range("dampening", self.dampening, 0.0, 1.0, closed="both"))
        set_("nesterov", check_bool("nesterov", self.nesterov))
        set_("weight_decay", check_nonnegative("weight_decay", self.weight_decay))
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                "nesterov=True needs momentum > 0 and dampening = 0, "
                f"got momentum={self.momentum!r}, dampening={self.dampening!r}"
            )

    def init(self, params: Mapping[str, Any]) -> SGDState:
        """Step 0; a zero momentum buffer per parameter when ``momentum > 0``."""
        xp = namespace_of_params(params)
        buffers = {k: xp.zeros_like(p) for k, p in params.items()} if self.momentum else {}
        return SGDState(step=0, momentum_buffer=buffers)

    def update(
        self,
        grads: Mapping[str, Any],
        state: SGDState,
        params: Mapping[str, Any],
        *,
        donate: bool = False,
    ) -> tuple[Params, SGDState]:
        """One SGD step (see the class docstring); raises before computing on bad input.

        ``donate=True``: ``params`` and the momentum buffers are overwritten with the results and returned
        (bitwise the same values as the pure update; module docstring).
        """
        xp = check_params_and_grads(grads, params)
        step = check_state_matches(
            state, params if self.momentum else {}, SGDState, "momentum_buffer"
        )
        lr = current_lr(self.lr, step)
        kernel = partial(sgd_kernel, xp, self, lr, step == 0)
        if donate:
            return self._update_donated(xp, kernel, lr, step, grads, state, params)
        new_params, new_buffers = {}, {}
        for key, p in params.items():
            if self.momentum:
                new_params[key], new_buffers[key] = elementwise(
                    kernel, p, grads[key], state.momentum_buffer[key], n_out=2
                )
            else:
                new_params[key] = elementwise(kernel, p, grads[key])
        return new_params, SGDState(step=step + 1, momentum_buffer=new_buffers)

    def _update_donated(
        self, xp, kernel, lr, step, grads, state, params
    ) -> tuple[Params, SGDState]:
        """The SGD step written into ``params`` and the momentum buffers (speed path, :mod:`._fused`)."""
        buffers = state.momentum_buffer
        fused = check_donation(
            xp,
            grads,
            params,
            *((buffers,) if self.momentum else ()),
            names=("state.momentum_buffer",),
        )
        first = step == 0
        for key, p in params.items():
            buf = buffers[key] if self.momentum else None
            if fused:
                sgd_into(self, lr, first, p, grads[key], buf, p, buf)
            elif self.momentum:
                new_p, new_b = elementwise(kernel, p, grads[key], buf, n_out=2)
                assign_into(p, new_p)
                assign_into(buf, new_b)
            else:
                assign_into(p, elementwise(kernel, p, grads[key]))
        return dict(params), SGDState(step=step + 1, momentum_buffer=dict(buffers))


@register_state("AdamState")
class AdamState(NamedTuple):
    """``step``: updates applied so far; ``exp_avg``/``exp_avg_sq``: the moments m, v per parameter."""

    step: int
    exp_avg: dict[str, Any]
    exp_avg_sq: dict[str, Any]


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015, Alg. 1) with L2 or decoupled weight decay, as ``torch.optim.Adam``/``AdamW``.

    .. math::
        theta \\leftarrow (1 - lr·wd)·theta \\text{ (decoupled) or } g \\leftarrow g + wd·theta \\text{ (L2)};\\\\
        m \\leftarrow m + (1-β_1)(g - m);\\quad v \\leftarrow β_2 v + (1-β_2) g^2;\\\\
        theta \\leftarrow theta - \\frac{lr}{1-β_1^t}·\\frac{m}{\\sqrt{v}/\\sqrt{1-β_2^t} + eps}

    ``decoupled_weight_decay=True`` is AdamW (Loshchilov & Hutter 2019, Alg. 2, with PyTorch's lr-scaled decay).
    The arithmetic follows PyTorch's single-tensor kernel operation by operation (``lerp`` for m, bias
    corrections folded into the step size), so float64 trajectories agree to rounding. Not bit for bit: torch's
    vectorised CPU kernels fuse some multiply-adds (``lerp``, ``addcmul``, ``add`` with ``alpha``) and take
    ``sqrt(1 − β₂ᵗ)`` as Python's ``** 0.5``, where refreg rounds every operation and uses ``math.sqrt``
    (PORTING.md, "Adam / AdamW"). ``eps`` must be > 0 (torch accepts 0, which gives 0/0 for a coordinate
    whose gradients have all been 0).
    """

    lr: float | Schedule = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False

    def __post_init__(self):
        set_ = partial(object.__setattr__, self)  # Python floats: see SGD
        set_("lr", _lr_value(self.lr))
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        beta1 = check_in_range("betas[0]", self.betas[0], 0.0, 1.0, closed="left")
        beta2 = check_in_range("betas[1]", self.betas[1], 0.0, 1.0, closed="left")
        set_("betas", (beta1, beta2))
        # eps > 0, unlike torch's eps >= 0: with eps = 0 a coordinate whose gradients have all been 0 (a dead
        # unit, an unused embedding row) gets 0/0 = NaN
        set_("eps", check_positive("eps", self.eps))
        set_("weight_decay", check_nonnegative("weight_decay", self.weight_decay))
        set_(
            "decoupled_weight_decay",
            check_bool("decoupled_weight_decay", self.decoupled_weight_decay),
        )
        if self.decoupled_weight_decay and not callable(self.lr):
            _check_decay_factor(self.lr, self.weight_decay)

    def init(self, params: Mapping[str, Any]) -> AdamState:
        """Step 0 and zero moments m, v per parameter."""
        xp = namespace_of_params(params)
        return AdamState(
            step=0,
            exp_avg={k: xp.zeros_like(p) for k, p in params.items()},
            exp_avg_sq={k: xp.zeros_like(p) for k, p in params.items()},
        )

    def update(
        self,
        grads: Mapping[str, Any],
        state: AdamState,
        params: Mapping[str, Any],
        *,
        donate: bool = False,
        _square_sums: dict[str, Any] | None = None,
    ) -> tuple[Params, AdamState]:
        """One Adam/AdamW step (see the class docstring); raises before computing on bad input.

        ``donate=True``: ``params`` and the moments m, v are overwritten with the results and returned
        (bitwise the same values as the pure update; module docstring). ``_square_sums`` (CPR's speed path):
        a dict whose keys name parameters; with ``donate=True`` on the fused path each value is set to
        ``sum(theta_new * theta_new)``, bit for bit, computed during the step.
        """
        xp = check_params_and_grads(grads, params)
        step = check_state_matches(
            state, params, AdamState, "exp_avg", "exp_avg_sq", nonnegative=("exp_avg_sq",)
        )
        lr = current_lr(self.lr, step)
        if self.decoupled_weight_decay:
            _check_decay_factor(lr, self.weight_decay)
        t = step + 1
        beta1, beta2 = self.betas
        step_size = lr / (1.0 - beta1**t)
        bias_correction2_sqrt = math.sqrt(1.0 - beta2**t)
        new_params, new_m, new_v = {}, {}, {}
        decoupled = self.decoupled_weight_decay and self.weight_decay
        scalars = AdamStepCoefficients(
            decay=(1.0 - lr * self.weight_decay) if decoupled else None,
            l2=0.0 if decoupled else self.weight_decay,
            lerp_weight=1.0 - beta1,
            beta2=beta2,
            bias_correction2_sqrt=bias_correction2_sqrt,
            eps=self.eps,
            step_size=step_size,
        )
        kernel = partial(adam_kernel, xp, scalars)
        if donate:
            return _adam_donated(xp, kernel, scalars, t, grads, state, params, _square_sums)
        for key, p in params.items():
            g, m, v = grads[key], state.exp_avg[key], state.exp_avg_sq[key]
            if _accel.usable(p, g, m, v):  # numba installed: the same step in one loop (bitwise)
                new_params[key], new_m[key], new_v[key] = _accel.adam_step(scalars, p, g, m, v)
            else:
                new_params[key], new_m[key], new_v[key] = elementwise(kernel, p, g, m, v, n_out=3)
        return new_params, AdamState(step=t, exp_avg=new_m, exp_avg_sq=new_v)


def _lr_value(lr: Any) -> float | Schedule:
    checked = check_lr(lr)
    return lr if callable(lr) else checked


def _check_decay_factor(lr: float, weight_decay: float) -> None:
    """AdamW multiplies theta by ``1 - lr·wd``: above 1 the factor is negative and flips every weight."""
    if lr * weight_decay > 1.0:
        raise ValueError(
            f"weight_decay must satisfy lr·weight_decay <= 1 (AdamW's decay factor 1 - lr·wd would be "
            f"negative), got lr={lr!r}, weight_decay={weight_decay!r}"
        )


def _adam_donated(
    xp, kernel, scalars, t, grads, state, params, square_sums=None
) -> tuple[Params, AdamState]:
    """The Adam step written into ``params`` and the moments (speed path, :mod:`._fused`)."""
    m_all, v_all = state.exp_avg, state.exp_avg_sq
    fused = check_donation(
        xp, grads, params, m_all, v_all, names=("state.exp_avg", "state.exp_avg_sq")
    )
    for key, p in params.items():
        m, v = m_all[key], v_all[key]
        if fused:
            want = square_sums is not None and key in square_sums
            total = adam_into(scalars, p, grads[key], m, v, p, m, v, square_sum=want)
            if want:
                square_sums[key] = total
        else:
            new = elementwise(kernel, p, grads[key], m, v, n_out=3)
            for target, value in zip((p, m, v), new, strict=True):
                assign_into(target, value)
    return dict(params), AdamState(step=t, exp_avg=dict(m_all), exp_avg_sq=dict(v_all))


def sgd(
    lr: float | Schedule,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> SGD:
    """``torch.optim.SGD`` as a pure optimizer; see :class:`SGD`."""
    return SGD(lr, momentum, dampening, nesterov, weight_decay)


def adam(
    lr: float | Schedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> Adam:
    """``torch.optim.Adam`` (L2 weight decay added to the gradient); see :class:`Adam`."""
    return Adam(lr, betas, eps, weight_decay, decoupled_weight_decay=False)


def adamw(
    lr: float | Schedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
) -> Adam:
    """``torch.optim.AdamW`` (decoupled weight decay ``theta <- (1 - lr wd) theta``); see :class:`Adam`."""
    return Adam(lr, betas, eps, weight_decay, decoupled_weight_decay=True)
