"""The PyTorch port in examples/torch_port/ (written from PORTING.md alone) against tests/vectors/.

Skipped without torch (the ``oracle`` extra). Each case must meet the tolerance the vector file states; the
measured worst relative error is far below it (see the assertions' messages when run with ``-rA``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from refreg.testing.vectors import decode_tree, read_cases

torch = pytest.importorskip(
    "torch", reason="torch is not installed (the oracle extra: pip install -e '.[oracle]')"
)

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
sys.path.insert(0, str(ROOT / "examples" / "torch_port"))
import torch_port  # noqa: E402

sys.path.pop(0)


def cases(op: str) -> list[dict]:
    return read_cases(VECTORS / f"{op}.json")


def t(a: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(a))


def assert_close(ours, theirs: np.ndarray, case: dict, what: str) -> None:
    ours = np.asarray(ours.numpy() if hasattr(ours, "numpy") else ours, dtype=np.float64)
    theirs = theirs.astype(np.float64)
    tol = case["atol"] + case["rtol"] * np.abs(theirs)
    bad = ~(np.abs(ours - theirs) <= tol) & ~(np.isnan(ours) & np.isnan(theirs))
    assert not bad.any(), f"{case['name']} {what}: max |diff| {np.max(np.abs(ours - theirs))}"


@pytest.mark.parametrize("case", cases("cpr.adam_cpr"), ids=lambda c: c["name"])
def test_adam_cpr_port(case):
    h, inputs = case["hyperparameters"], decode_tree(case["inputs"])
    want = decode_tree(case["outputs"])
    params = {k: t(v) for k, v in inputs["params"].items()}
    state = torch_port.adam_cpr_init(params, h)
    for step in range(next(iter(inputs["grads"].values())).shape[0]):
        grads = {k: t(v[step]) for k, v in inputs["grads"].items()}
        params = torch_port.adam_cpr_step(params, grads, state, h)
        for k, p in params.items():
            assert_close(p, want["params"][k][step], case, f"step {step + 1} {k}")
        for k in h["regularize"]:
            assert_close(np.float64(state.lam[k]), want["lam"][k][step], case, f"lam {k}")
            assert_close(np.float64(state.kappa[k]), want["kappa"][k][step], case, f"kappa {k}")
            # the release's policy with float64 params: λ, κ bit for bit (with float32 params R's float32 sum
            # depends on the summation order, so λ may differ in its last float32 bit)
            if h["scalar_dtype"] == "float32" and params[k].dtype == torch.float64:
                assert np.float64(state.lam[k]) == want["lam"][k][step].astype(np.float64)
                assert np.float64(state.kappa[k]) == want["kappa"][k][step].astype(np.float64)


@pytest.mark.parametrize("case", cases("pathprox.prox_norm_product"), ids=lambda c: c["name"])
def test_joint_prox_port(case):
    inputs, want = decode_tree(case["inputs"]), decode_tree(case["outputs"])
    W, V = torch_port.prox_norm_product(
        t(inputs["W"]), t(inputs["V"]), case["hyperparameters"]["tau"]
    )
    assert_close(W, want["W"], case, "W")
    assert_close(V, want["V"], case, "V")
    # the prox is elementwise IEEE arithmetic on norms: the port is bit-identical, not just close
    assert W.numpy().tobytes() == want["W"].tobytes() and V.numpy().tobytes() == want["V"].tobytes()


@pytest.mark.parametrize("case", cases("sparse.spatial_entropy"), ids=lambda c: c["name"])
def test_spatial_entropy_port(case):
    inputs, want = decode_tree(case["inputs"]), decode_tree(case["outputs"])
    value, grad = torch_port.spatial_entropy(t(inputs["W"]))
    assert_close(value, want["value"], case, "value")
    assert_close(grad, want["grad"], case, "grad")


def test_spatial_entropy_port_gradient_matches_autograd():
    """An independent check of the hand-written gradient: torch autograd on the formula R = H(r) + H(c)."""
    W = t(np.random.default_rng(0).standard_normal((5, 7))).requires_grad_(True)
    a = W.abs()
    r, c = a.sum(1) / a.sum(), a.sum(0) / a.sum()
    R = -(r * r.log()).sum() - (c * c.log()).sum()
    (auto,) = torch.autograd.grad(R, W)
    value, grad = torch_port.spatial_entropy(W.detach())
    assert abs(float(value) - float(R.detach())) < 1e-14
    assert float((grad - auto).abs().max()) < 1e-14


OPTIM = [(op, c) for op in ("optim.sgd", "optim.adam", "optim.adamw") for c in cases(op)]


@pytest.mark.parametrize("op,case", OPTIM, ids=lambda x: x if isinstance(x, str) else x["name"])
def test_torch_optim_meets_the_optimizer_vectors(op, case):
    """torch.optim itself, fed the vectors' params and gradients, meets their tolerance (an independent oracle)."""
    h = dict(case["hyperparameters"])
    if "betas" in h:
        h["betas"] = tuple(h["betas"])
    inputs, want = decode_tree(case["inputs"]), decode_tree(case["outputs"])
    params = {k: torch.nn.Parameter(t(v.copy())) for k, v in inputs["params"].items()}
    cls = {
        "optim.sgd": torch.optim.SGD,
        "optim.adam": torch.optim.Adam,
        "optim.adamw": torch.optim.AdamW,
    }
    opt = cls[op](list(params.values()), foreach=False, **h)
    for step in range(3):
        for k, p in params.items():
            p.grad = t(inputs["grads"][k][step].copy())
        opt.step()
        for k, p in params.items():
            assert_close(p.detach(), want["params"][k][step], case, f"step {step + 1} {k}")


def test_porting_md_counts_of_last_place_differences_from_torch():
    """PORTING.md's refreg-against-torch counts, with the setup it states: 100,000 float32 values drawn with
    default_rng(0). SGD: one step, lr 0.1. Adam (lr 1e-3, coupled wd 0.1): four refreg steps, then step 5 from
    that shared state (θ, m, v) by refreg and by torch.optim.Adam(foreach=False)."""
    import refreg

    rng = np.random.default_rng(0)
    n = 100_000
    theta = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    sgd = refreg.sgd(0.1)
    new, _ = sgd.update({"w": g}, sgd.init({"w": theta}), {"w": theta})
    t = torch.tensor(theta.copy(), requires_grad=True)
    opt = torch.optim.SGD([t], lr=0.1, foreach=False)
    t.grad = torch.tensor(g)
    opt.step()
    assert int(np.sum(new["w"] != t.detach().numpy())) == 8891
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(5)]
    adam = refreg.adam(1e-3, weight_decay=0.1)
    p, s = {"w": theta}, adam.init({"w": theta})
    for k in range(4):
        p, s = adam.update({"w": grads[k]}, s, p)
    p5, s5 = adam.update({"w": grads[4]}, s, p)
    t = torch.tensor(p["w"].copy(), requires_grad=True)
    opt = torch.optim.Adam([t], lr=1e-3, weight_decay=0.1, foreach=False)
    opt.state[t] = {
        "step": torch.tensor(4.0),
        "exp_avg": torch.tensor(s.exp_avg["w"].copy()),
        "exp_avg_sq": torch.tensor(s.exp_avg_sq["w"].copy()),
    }
    t.grad = torch.tensor(grads[4])
    opt.step()
    counts = (
        int(np.sum(s5.exp_avg["w"] != opt.state[t]["exp_avg"].numpy())),
        int(np.sum(s5.exp_avg_sq["w"] != opt.state[t]["exp_avg_sq"].numpy())),
        int(np.sum(p5["w"] != t.detach().numpy())),
    )
    assert counts == (26520, 9637, 95)
