"""A PyTorch port of three refreg operations, written from PORTING.md alone (no refreg import).

- :func:`adam_cpr_init` / :func:`adam_cpr_step`: AdamCPR (PORTING.md section 3), both scalar policies;
- :func:`prox_norm_product`: the exact joint prox of τ‖w‖·‖v‖ (section 4);
- :func:`spatial_entropy`: the spatial entropy and its hand-written gradient (section 5).

Tensors are float64 ``torch.Tensor`` in PyTorch's ``nn.Linear`` layout; no autograd is used.
``tests/test_torch_port.py`` checks every function against ``tests/vectors/``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import torch

KAPPA_UNSET = 1e6


def fl32(x: float) -> float:
    """``x`` rounded to the nearest float32 (C's double -> float conversion, ties to even)."""
    return struct.unpack("f", struct.pack("f", x))[0]


# ------------------------------------------------------------------------------------------------- AdamCPR
@dataclass
class CPRState:
    step: dict[str, int]
    m: dict[str, torch.Tensor]
    v: dict[str, torch.Tensor]
    lam: dict[str, float] = field(default_factory=dict)
    kappa: dict[str, float] = field(default_factory=dict)
    ema: dict[str, float] = field(default_factory=dict)
    ema_prev: dict[str, float] = field(default_factory=dict)
    growth_prev: dict[str, float] = field(default_factory=dict)


def measure(theta: torch.Tensor, kind: str) -> float:
    if kind == "l2":
        return float((theta * theta).sum())
    if kind == "l1":
        return float(theta.abs().sum())
    if kind == "huber":
        a = theta.abs()
        return float(torch.where(a < 1, 0.5 * (theta * theta), a - 0.5).sum())
    return float(theta.std(correction=1))


def measure_grad(theta: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "l2":
        return 2.0 * theta
    if kind == "l1":
        return torch.sign(theta)
    if kind == "huber":
        return torch.where(theta.abs() < 1, theta, torch.sign(theta))
    n, std = theta.numel(), theta.std(correction=1)
    if not std > 0:  # a constant tensor: the subgradient 0
        return torch.zeros_like(theta)
    d = 2.0 * (theta - theta.mean())
    return (d - 2.0 * d.mean()) / (n - 1) / (2.0 * std)


def adam_cpr_init(params: dict[str, torch.Tensor], h: dict) -> CPRState:
    """λ = 0 and κ = Initialize(θ₀) for every tensor named in ``h["regularize"]``."""
    r = fl32 if h["scalar_dtype"] == "float32" else float
    state = CPRState(
        step=dict.fromkeys(params, 0),
        m={k: torch.zeros_like(p) for k, p in params.items()},
        v={k: torch.zeros_like(p) for k, p in params.items()},
    )
    for k in h["regularize"]:
        init, param = h["kappa_init"], h["kappa_init_param"]
        if init == "uniform":
            kappa = r(param)
        elif init == "dependent":
            kappa = r(r(param) * r(measure(params[k], h["measure"])))
        elif init == "warm_start":
            kappa = 0.0
        else:
            kappa = KAPPA_UNSET
        state.kappa[k] = kappa
        state.lam[k] = state.ema[k] = state.ema_prev[k] = state.growth_prev[k] = 0.0
    return state


def adam_cpr_step(
    params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], state: CPRState, h: dict
) -> dict[str, torch.Tensor]:
    """One AdamCPR update; returns new params and updates ``state`` in place."""
    lr, (b1, b2), eps = h["lr"], h["betas"], h["eps"]
    f32 = h["scalar_dtype"] == "float32"
    r = fl32 if f32 else float
    new = {}
    # 1. Adam, no weight decay
    for k, p in params.items():
        t = state.step[k] = state.step[k] + 1
        g = grads[k]
        state.m[k] = torch.lerp(state.m[k], g, 1.0 - b1)
        state.v[k] = b2 * state.v[k] + (1.0 - b2) * g * g
        denom = state.v[k].sqrt() / math.sqrt(1.0 - b2**t) + eps
        new[k] = p + (-(lr / (1.0 - b1**t)) * state.m[k]) / denom
    # 2. the constraint step, λ first
    s = h["kappa_init_param"] if h["kappa_init"] == "warm_start" else 0
    lr_c = lr if h["reg_by_lr"] else 1.0
    kind = h["measure"]
    for k in h["regularize"]:
        if state.step[k] <= s:
            continue
        theta = new[k]
        R = measure(theta, kind)
        rate = r(h["mu"] if kind == "std" else h["mu"] / theta.numel())
        if (
            f32
        ):  # R − κ and the product in the params' dtype, the increment to float32, λ in float32
            rp = fl32 if theta.dtype == torch.float32 else float
            lam = max(0.0, fl32(state.lam[k] + fl32(rp(rp(R - state.kappa[k]) * rate))))
        else:
            lam = max(0.0, state.lam[k] + rate * (R - state.kappa[k]))
        state.lam[k] = lam
        if lam > 0.0:
            if kind == "l2" and not h["reg_by_lr"]:
                new[k] = theta * (1.0 - 2.0 * lam)
            elif kind == "l2":
                new[k] = theta + ((-2.0 * lr_c) * theta) * lam
            else:
                new[k] = theta + ((-lr_c) * measure_grad(theta, kind)) * lam
    # 3. κ bookkeeping
    names = list(h["regularize"])
    if h["kappa_init"] == "warm_start":
        for k in names:
            if state.step[k] == s:
                state.kappa[k] = r(measure(new[k], kind))
    elif h["kappa_init"] == "inflection_point" and any(
        state.kappa[k] == KAPPA_UNSET for k in names
    ):
        _detector(new, state, h, names, r, f32)
    return new


def _detector(new, state, h, names, r, f32) -> None:
    S, d = h["reg_step_size"], h["reg_ema_decay"]
    t = state.step[names[0]]
    for k in names:
        norm = float(torch.linalg.vector_norm(new[k]))
        if t < S:
            state.ema[k] = r(norm)
        elif f32:
            state.ema[k] = fl32(fl32(state.ema[k] * fl32(d)) + fl32(1.0 - d) * fl32(norm))
        else:
            state.ema[k] = d * state.ema[k] + (1.0 - d) * norm
    if not (t > S and t % S == 0):
        return
    for k in names:
        e = state.ema[k]
        g = r(r(e - state.ema_prev[k]) / e) if e != 0.0 else math.nan
        state.ema_prev[k] = e
        if t > 3 * S and state.growth_prev[k] > g > r(0.01) and state.kappa[k] == KAPPA_UNSET:
            state.kappa[k] = r(measure(new[k], h["measure"]))
        if t > 2 * S:
            state.growth_prev[k] = g


# ------------------------------------------------------------------------------------------ the joint prox
def prox_norm_product(W: torch.Tensor, V: torch.Tensor, tau: float):
    """Per unit (W[k, :], V[:, k]): argmin ½‖x − w‖² + ½‖y − v‖² + τ‖x‖‖y‖ (PORTING.md section 4)."""
    alpha = torch.linalg.vector_norm(W, dim=1)
    beta = torch.linalg.vector_norm(V, dim=0)
    zero = torch.zeros_like(alpha)
    if tau < 1.0:
        zero_w = alpha <= tau * beta
        zero_v = (beta <= tau * alpha) & ~zero_w
        d = 1.0 - tau * tau
        r = torch.where(zero_w, zero, torch.where(zero_v, alpha, (alpha - tau * beta) / d))
        s = torch.where(zero_v, zero, torch.where(zero_w, beta, (beta - tau * alpha) / d))
    else:
        keep_w = alpha >= beta
        r = torch.where(keep_w, alpha, zero)
        s = torch.where(keep_w, zero, beta)
    fw = torch.where(alpha > 0, r / torch.where(alpha > 0, alpha, 1.0), zero)
    fv = torch.where(beta > 0, s / torch.where(beta > 0, beta, 1.0), zero)
    return W * fw[:, None], V * fv[None, :]


# ------------------------------------------------------------------------------------- the spatial entropy
def spatial_entropy(W: torch.Tensor):
    """``(R(W), ∇R(W))`` with R = H(row shares of |W|) + H(column shares), as PORTING.md section 5 computes it."""
    M = float(W.abs().max())
    if M == 0:
        return torch.zeros((), dtype=W.dtype), torch.zeros_like(W)
    scale = math.ldexp(1.0, -math.frexp(M)[1])  # 2^-e with 2^(e-1) <= M < 2^e: an exact scaling
    a = W.abs() * scale
    rows, cols = a.sum(dim=1), a.sum(dim=0)
    S = rows.sum()
    log_S = torch.log(S)

    def log_share(mass):
        return torch.where(mass > 0, torch.log(torch.where(mass > 0, mass, 1.0)) - log_S, 0.0)

    log_r, log_c = log_share(rows), log_share(cols)
    H_r = -((rows / S) * log_r).sum()
    H_c = -((cols / S) * log_c).sum()
    q = -scale / S
    grad = ((log_r + H_r) * q)[:, None] + ((log_c + H_c) * q)[None, :]
    return H_r + H_c, grad * torch.sign(W)
