"""CPR on a convex toy problem against an independent solver: scipy's SLSQP and its KKT multiplier.

Problem: minimize L(θ) = ½‖A·vec θ − b‖² subject to R(θ) = Σθ² <= κ, θ of shape (3, 4) (n = 12), with
κ = ½·R(θ_ls) so the constraint is active. Base optimizer: plain SGD with step η; CPR as released (l2, rate μ/n,
constraint step after the base step, reg_by_lr=False).

Mapping between the CPR multiplier λ and the SLSQP multiplier λ_KKT. SLSQP solves the KKT system of the Lagrangian
L(θ) − λ_KKT·(κ − Σθ²), i.e. ∇L(θ*) + 2λ_KKT θ* = 0, R(θ*) = κ, λ_KKT >= 0. At a fixed point of the released update,
with θ' = θ − η∇L(θ) the post-SGD iterate:

- the dual step is stationary with λ > 0 only if R(θ') = κ;
- θ = (1 − 2λ)·θ' (the constraint step), hence ∇L(θ) = (θ − θ')/η = −2λθ'/η = −2·λ/(η(1 − 2λ))·θ.

So the limit θ∞ is exactly the KKT point of the problem with the bound κ̃ = (1 − 2λ∞)²·κ, with multiplier
λ_KKT = λ∞ / (η·(1 − 2λ∞)), i.e. λ∞ = ηλ_KKT/(1 + 2ηλ_KKT). Because λ∞ = O(η), θ∞ approaches the KKT point of the
original bound κ at rate O(η) (the paper's Algorithm 1, which evaluates R and ∇R at the pre-step θ_t, has
the exact fixed point ∇L + 2(λ/η)θ = 0, R(θ) = κ). The dual rate μ/n does not enter either relation: μ changes
how fast the iteration gets there, not where it goes (as long as the dual step is stable).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from refreg.cpr import cpr
from refreg.optim import sgd

SHAPE = (3, 4)


def make_problem():
    gen = np.random.default_rng(1)
    q = np.linalg.qr(gen.standard_normal((12, 12)))[0]
    a = np.vstack([q @ np.diag(np.linspace(1.0, 2.0, 12)) @ q.T, np.zeros((8, 12))])
    b = gen.standard_normal(20)
    theta_ls = np.linalg.lstsq(a, b, rcond=None)[0]
    return a, b, 0.5 * float(theta_ls @ theta_ls)


def run_cpr(a, b, kappa, eta, mu, steps):
    """CPR(SGD) from θ = 0; returns (θ∞ flattened, λ∞, distance to the final iterate per step)."""
    opt = cpr(sgd(eta), kappa_init="uniform", kappa_init_param=kappa, mu=mu)
    params = {"w": np.zeros(SHAPE)}
    state = opt.init(params)
    history = []
    for _ in range(steps):
        grad = (a.T @ (a @ params["w"].reshape(-1) - b)).reshape(SHAPE)
        params, state = opt.update({"w": grad}, state, params)
        history.append(params["w"].reshape(-1))
    history = np.asarray(history)
    return history[-1], state.lam["w"], np.max(np.abs(history - history[-1]), axis=1)


def slsqp(a, b, kappa):
    """The oracle: (θ*, λ_KKT) from SLSQP with analytic gradients."""
    res = minimize(
        lambda x: 0.5 * np.sum((a @ x - b) ** 2),
        np.zeros(12),
        jac=lambda x: a.T @ (a @ x - b),
        method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda x: kappa - x @ x, "jac": lambda x: -2.0 * x}],
        options={"ftol": 1e-15, "maxiter": 500},
    )
    x, nu = res.x, float(res.multipliers[0])
    # judge the oracle by its KKT residual (near ftol=1e-15 SLSQP may stop with a line-search status)
    assert np.max(np.abs(a.T @ (a @ x - b) + 2.0 * nu * x)) < 1e-7, res.message
    assert abs(kappa - x @ x) < 1e-10 * kappa
    return x, nu


@pytest.mark.parametrize("eta", [0.2, 0.05])
def test_fixed_point_is_the_kkt_point_of_the_shifted_bound(eta):
    a, b, kappa = make_problem()
    theta, lam, dist = run_cpr(a, b, kappa, eta, mu=1.0, steps=3000)
    assert dist[-500] < 1e-13  # converged
    assert 0.0 < lam < 0.5
    x, nu = slsqp(a, b, (1.0 - 2.0 * lam) ** 2 * kappa)
    np.testing.assert_allclose(theta, x, atol=1e-8)
    assert nu > 0
    assert lam / (eta * (1.0 - 2.0 * lam)) == pytest.approx(nu, rel=1e-7)
    # and the post-SGD iterate θ' lies on the original constraint surface R(θ') = κ
    theta_prime = theta / (1.0 - 2.0 * lam)
    assert float(theta_prime @ theta_prime) == pytest.approx(kappa, rel=1e-10)


def test_fixed_point_approaches_the_original_kkt_point_at_rate_eta():
    a, b, kappa = make_problem()
    x_star, nu_star = slsqp(a, b, kappa)
    errors, multipliers = [], []
    for eta in (0.05, 0.025, 0.0125):
        theta, lam, _ = run_cpr(a, b, kappa, eta, mu=1.0, steps=int(100 / eta))
        errors.append(np.max(np.abs(theta - x_star)))
        multipliers.append(lam / (eta * (1.0 - 2.0 * lam)))
    # first order in η: halving η halves the distance (ratios within 10% of 2)
    assert errors[0] / errors[1] == pytest.approx(2.0, rel=0.1)
    assert errors[1] / errors[2] == pytest.approx(2.0, rel=0.1)
    assert abs(multipliers[2] - nu_star) < abs(multipliers[0] - nu_star)
    assert multipliers[2] == pytest.approx(nu_star, rel=0.05)
    assert errors[2] < 0.01


def test_mu_changes_the_speed_not_the_fixed_point():
    a, b, kappa = make_problem()
    runs = {mu: run_cpr(a, b, kappa, 0.2, mu, steps=1500) for mu in (0.05, 0.25, 1.0)}
    theta_ref, lam_ref, _ = runs[1.0]
    steps_to_converge = {}
    for mu, (theta, lam, dist) in runs.items():
        np.testing.assert_allclose(theta, theta_ref, atol=1e-12)
        assert lam == pytest.approx(lam_ref, rel=1e-12)
        steps_to_converge[mu] = int(np.argmax(dist < 1e-10))
    # a smaller dual step takes longer: 527, 75, 60 steps here
    assert steps_to_converge[0.05] > 3 * steps_to_converge[0.25] > 3 * steps_to_converge[1.0] / 1.5
