"""Write the language-neutral test vectors ``tests/vectors/<op>.json`` from refreg: ``python tests/vectors/make_vectors.py``.

Every case is computed by refreg's public API from inputs fixed here (seeded NumPy draws rounded to three
decimals, plus hand-placed edge cases); ``tests/test_vectors.py`` re-runs :func:`build` and compares it with the
files, so a vector can never drift from the code. The format is described in ``refreg/testing/vectors.py`` and
``tests/vectors/schema.json``; ``PORTING.md`` explains how to check a port against the files.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from refreg import cpr, pathprox, sparse
from refreg.nn import MLP, Transformer
from refreg.optim import adam, adamw, sgd
from refreg.testing.vectors import encode_tree, write_cases

HERE = Path(__file__).resolve().parent
RTOL, ATOL = 1e-10, 1e-12  # what a float64 port is asked to meet (a faithful port lands at ~1e-15)
BUILDERS: dict[str, Callable[[], list[dict[str, Any]]]] = {}


def op(name: str):
    def register(fn):
        BUILDERS[name] = fn
        return fn

    return register


def case(name, op_name, hyper, inputs, outputs, rtol=RTOL, atol=ATOL) -> dict[str, Any]:
    return {
        "name": name,
        "op": op_name,
        "hyperparameters": hyper,
        "inputs": encode_tree(inputs),
        "outputs": encode_tree(outputs),
        "rtol": rtol,
        "atol": atol,
    }


def draw(seed: int, *shape: int, scale: float = 1.0) -> np.ndarray:
    """Seeded standard-normal values rounded to 3 decimals (short in JSON, exact as inputs)."""
    return np.round(np.random.default_rng(seed).standard_normal(shape) * scale, 3)


def mlp_params(sizes, bias: bool, seed: int) -> dict[str, np.ndarray]:
    params = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        params[f"layers.{i}.weight"] = draw(seed + 10 * i, n_out, n_in, scale=0.7)
        if bias:
            params[f"layers.{i}.bias"] = draw(seed + 10 * i + 1, n_out, scale=0.3)
    return params


def stack(steps: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """A trajectory as one array per name with the step on the leading axis."""
    return {k: np.stack([np.asarray(s[k]) for s in steps]) for k in steps[0]}


# ---------------------------------------------------------------------------------------------------- mlp
@op("mlp.value_and_grad")
def mlp_cases():
    out = []
    settings = [
        ("relu_bias_ce", [4, 5, 4, 3], "relu", True, "softmax_cross_entropy"),
        ("relu_nobias_mse", [3, 6, 2], "relu", False, "mse"),
        ("relu_bias_mse", [4, 5, 2], "relu", True, "mse"),
        ("tanh_bias_mse", [4, 5, 4, 2], "tanh", True, "mse"),
        ("tanh_nobias_ce", [3, 6, 4], "tanh", False, "softmax_cross_entropy"),
    ]
    for k, (name, sizes, act, bias, loss) in enumerate(settings):
        net = MLP(sizes, activation=act, bias=bias)
        params = mlp_params(sizes, bias, seed=100 + 7 * k)
        batch = 4 if k % 2 == 0 else 3
        x = draw(200 + k, batch, sizes[0])
        # unit 0 of layer 0 gets a pre-activation exactly 0 on sample 0: w = (1, -1, 0, ...), x = (.5, .5, ...), b = 0
        params["layers.0.weight"][0] = 0.0
        params["layers.0.weight"][0, :2] = (1.0, -1.0)
        x[0, :2] = 0.5
        if bias:
            params["layers.0.bias"][0] = 0.0
        z0 = net.forward(params, x)[1].z[0]
        assert z0[0, 0] == 0.0
        if loss == "mse":
            y = draw(300 + k, batch, sizes[-1])
        else:
            y = np.arange(batch, dtype=np.int64) % sizes[-1]
        value, grads = net.value_and_grad(params, x, y, loss=loss)
        hyper = {"sizes": sizes, "activation": act, "bias": bias, "loss": loss}
        out.append(
            case(
                name,
                "mlp.value_and_grad",
                hyper,
                {"params": params, "x": x, "y": y},
                {"value": np.asarray(value), "grads": grads},
            )
        )
    return out


# -------------------------------------------------------------------------------------------- transformer
@op("transformer.value_and_grad")
def transformer_cases():
    out = []
    for k, layer_norm in enumerate((False, True)):
        hyper = {
            "vocab_size": 7,
            "seq_len": 3,
            "d_model": 8,
            "heads": 2,
            "d_mlp": 12,
            "n_layers": 1 + k,
            "layer_norm": layer_norm,
            "ln_eps": 1e-5,
            "loss": "softmax_cross_entropy",
        }
        net = Transformer(**{key: v for key, v in hyper.items() if key != "loss"})
        params = {key: np.round(v, 3) for key, v in net.init(rng=1200 + k).items()}
        for i, key in enumerate(params):
            if params[key].ndim == 1:  # biases and LayerNorm gains: away from their 0 / 1 init
                params[key] = params[key] + draw(1210 + 10 * k + i, *params[key].shape, scale=0.1)
        rng = np.random.default_rng(1250 + k)
        tokens = rng.integers(0, 7, size=(4, 3)).astype(np.int64)
        y = rng.integers(0, 7, size=4).astype(np.int64)
        value, grads = net.value_and_grad(params, tokens, y)
        out.append(
            case(
                f"layers{1 + k}_layer_norm_{layer_norm}",
                "transformer.value_and_grad",
                hyper,
                {"params": params, "tokens": tokens, "y": y},
                {"value": np.asarray(value), "grads": grads},
            )
        )
    return out


# ------------------------------------------------------------------------------------------------- optim
def trajectory(opt, params, grads_per_step) -> dict[str, np.ndarray]:
    state = opt.init(params)
    steps = []
    for g in grads_per_step:
        params, state = opt.update(g, state, params)
        steps.append(params)
    return stack(steps)


def optim_inputs(seed: int, n_steps: int):
    params = mlp_params([3, 4, 2], True, seed)
    grads = [
        {k: draw(seed + 50 + 5 * t + i, *p.shape) for i, (k, p) in enumerate(params.items())}
        for t in range(n_steps)
    ]
    return params, grads


def optim_cases(op_name, factory, settings):
    out = []
    for k, (name, hyper) in enumerate(settings):
        params, grads = optim_inputs(400 + 11 * k, 3)
        outputs = {"params": trajectory(factory(**hyper), params, grads)}
        inputs = {"params": params, "grads": stack(grads)}
        out.append(case(name, op_name, hyper, inputs, outputs))
    # float32 parameters and gradients: the same kernel in float32 (Python scalars act as float32 scalars)
    name, hyper = settings[-1]
    params, grads = optim_inputs(400 + 11 * (len(settings) - 1), 3)
    params = {k: v.astype(np.float32) for k, v in params.items()}
    grads = [{k: v.astype(np.float32) for k, v in g.items()} for g in grads]
    outputs = {"params": trajectory(factory(**hyper), params, grads)}
    inputs = {"params": params, "grads": stack(grads)}
    out.append(case(f"{name}_float32", op_name, hyper, inputs, outputs, rtol=1e-5, atol=1e-6))
    return out


@op("optim.sgd")
def sgd_cases():
    return optim_cases(
        "optim.sgd",
        sgd,
        [
            ("plain", {"lr": 0.1}),
            ("momentum", {"lr": 0.05, "momentum": 0.9}),
            (
                "momentum_dampening_wd",
                {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01},
            ),
            ("nesterov", {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
            ("nesterov_wd", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
        ],
    )


@op("optim.adam")
def adam_cases():
    return optim_cases(
        "optim.adam",
        adam,
        [
            ("default", {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8}),
            ("l2", {"lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.1}),
            ("beta1_above_half", {"lr": 0.02, "betas": [0.3, 0.9], "eps": 1e-8}),
        ],
    )


@op("optim.adamw")
def adamw_cases():
    return optim_cases(
        "optim.adamw",
        adamw,
        [
            ("default", {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01}),
            ("strong_decay", {"lr": 0.02, "betas": [0.9, 0.98], "eps": 1e-8, "weight_decay": 1.0}),
        ],
    )


# --------------------------------------------------------------------------------------------------- cpr
CPR_STEPS = 5
CPR_SETTINGS = [
    # (name, kappa_init, kappa_init_param, measure, extra)
    ("uniform_l2", "uniform", 3.0, "l2", {}),
    ("dependent_l2", "dependent", 0.9, "l2", {}),
    ("warm_start_l2", "warm_start", 2, "l2", {}),
    (
        "inflection_point_l2",
        "inflection_point",
        1000,
        "l2",
        {"reg_step_size": 1, "reg_ema_decay": 0.5},
    ),
    ("dependent_l1", "dependent", 0.9, "l1", {}),
    ("dependent_std", "dependent", 0.9, "std", {}),
    ("dependent_huber", "dependent", 0.9, "huber", {}),
    ("uniform_std", "uniform", 0.5, "std", {}),
    ("warm_start_huber", "warm_start", 2, "huber", {}),
    ("dependent_l2_reg_by_lr", "dependent", 0.8, "l2", {"reg_by_lr": True}),
]


@op("cpr.adam_cpr")
def cpr_cases():
    out = []
    for k, (name, init, init_param, measure, extra) in enumerate(CPR_SETTINGS):
        params = mlp_params([3, 4, 2], True, 500 + 13 * k)
        # gradients pointing towards the origin: Adam moves every weight outwards, R grows and the bound binds
        grads = [
            {
                key: -np.sign(p) * (1.0 + 0.1 * t) + draw(600 + 7 * k + t, *p.shape, scale=0.1)
                for key, p in params.items()
            }
            for t in range(CPR_STEPS)
        ]
        grads = [{key: np.round(g, 3) for key, g in gs.items()} for gs in grads]
        # float32 parameters once: the release's roundings then happen in the parameters' dtype too
        for dtype in ("float64", "float32") if name == "dependent_l2" else ("float64",):
            out += cpr_policy_cases(name, init, init_param, measure, extra, params, grads, dtype)
    return out


def cpr_policy_cases(name, init, init_param, measure, extra, params, grads, dtype):
    out = []
    params = {key: v.astype(dtype) for key, v in params.items()}
    grads = [{key: v.astype(dtype) for key, v in g.items()} for g in grads]
    label = name if dtype == "float64" else f"{name}_params_float32"
    tol = {} if dtype == "float64" else {"rtol": 1e-5, "atol": 1e-6}
    for policy in ("float64", "float32"):
        hyper = {
            "lr": 0.1,
            "betas": [0.9, 0.999],
            "eps": 1e-8,
            "mu": 1.0,
            "kappa_init": init,
            "kappa_init_param": init_param,
            "measure": measure,
            "reg_step_size": 200,
            "reg_ema_decay": 0.99,
            "reg_by_lr": False,
            "regularize": ["layers.0.weight", "layers.1.weight"],
            "scalar_dtype": policy,
        } | extra
        opt = cpr.adam_cpr(
            lr=hyper["lr"],
            betas=tuple(hyper["betas"]),
            eps=hyper["eps"],
            **{key: v for key, v in hyper.items() if key not in ("lr", "betas", "eps")},
        )
        state = opt.init(params)
        p, steps, lams, kappas = params, [], [], []
        for g in grads:
            p, state = opt.update(g, state, p)
            steps.append(p)
            lams.append(dict(state.lam))
            kappas.append(dict(state.kappa))
        lam, kappa = stack(lams), stack(kappas)
        lam = {key: v.astype(policy) for key, v in lam.items()}
        kappa = {key: v.astype(policy) for key, v in kappa.items()}
        assert all(np.any(v > 0) for v in lam.values()), f"{name}: the bound never binds"
        if init == "inflection_point":
            assert all(np.any(v != cpr.KAPPA_UNSET) for v in kappa.values()), name
        outputs = {"params": stack(steps), "lam": lam, "kappa": kappa}
        inputs = {"params": params, "grads": stack(grads)}
        out.append(case(f"{label}_{policy}", "cpr.adam_cpr", hyper, inputs, outputs, **tol))
    return out


# ---------------------------------------------------------------------------------------------- pathprox
@op("pathprox.group_soft_threshold")
def gst_cases():
    out = []
    z = draw(700, 4, 5)
    z[:, 1] = 0.0  # a zero column
    z[:, 2] = (0.3, 0.4, 0.0, 0.0)  # norm exactly 0.5 = tau: thresholded to zero (inclusive)
    for axis in (0, 1):
        for tau in (0.0, 0.5, 1.5):
            out.append(
                case(
                    f"axis{axis}_tau{tau}",
                    "pathprox.group_soft_threshold",
                    {"tau": tau, "axis": axis},
                    {"z": z},
                    {"out": pathprox.group_soft_threshold(z, tau, axis=axis)},
                )
            )
    return out


@op("pathprox.project_unit_sphere")
def sphere_cases():
    out = []
    W, b = draw(710, 5, 3), draw(711, 5)
    W[1] = 0.0  # zero row: stays zero
    W[2] = (3e-7, 0.0, 4e-7)  # norm 5e-7 < 1e-6: clipped, scaled by 1e6, not on the sphere
    W[3] = (0.6, 0.0, 0.8)  # norm 1 (to rounding)
    for include_bias in (False, True):
        Wp, bp = pathprox.project_unit_sphere(W, b, include_bias=include_bias)
        out.append(
            case(
                f"with_bias_include{include_bias}",
                "pathprox.project_unit_sphere",
                {"include_bias": include_bias},
                {"W": W, "b": b},
                {"W": Wp, "b": bp},
            )
        )
    Wp, _ = pathprox.project_unit_sphere(W)
    out.append(
        case(
            "no_bias", "pathprox.project_unit_sphere", {"include_bias": False}, {"W": W}, {"W": Wp}
        )
    )
    return out


@op("pathprox.prox_norm_product")
def joint_prox_cases():
    """Units (w_k = W[k, :], v_k = V[:, k]) chosen to hit every branch of the closed form."""
    W = np.array(
        [
            [0.3, 0.4, 0.0],  # ‖w‖ = .5, ‖v‖ = .5: a tie ‖w‖ = ‖v‖
            [1.0, 2.0, 2.0],  # ‖w‖ = 3, ‖v‖ ≈ 1.118: v side small
            [0.1, 0.0, 0.0],  # ‖w‖ = .1, ‖v‖ large: w zeroed for τ ≥ .1/‖v‖
            [0.0, 0.0, 0.0],  # zero w
            [0.5, -0.5, 0.5],  # ‖w‖ ≈ .866
            [0.0, 0.0, 0.0],  # both zero
            [2.0, 0.0, 0.0],  # ‖w‖ = 2, ‖v‖ = 2: an exact tie at larger scale
        ]
    )
    V = np.array(
        [
            [0.3, 0.5, 2.0, 0.7, -0.4, 0.0, 0.0],
            [0.4, 1.0, 1.5, -0.2, 0.9, 0.0, 2.0],
        ]
    )
    out = []
    for tau in (0.0, 0.25, 0.6, 1.0, 1.5, 4.0):
        Wp, Vp = pathprox.prox_norm_product(W, V, tau)
        out.append(
            case(
                f"tau{tau}",
                "pathprox.prox_norm_product",
                {"tau": tau},
                {"W": W, "V": V},
                {"W": Wp, "V": Vp},
            )
        )
    Wr, Vr = draw(720, 6, 4), draw(721, 3, 6)
    for tau in (0.3, 1.0, 2.0):
        Wp, Vp = pathprox.prox_norm_product(Wr, Vr, tau)
        out.append(
            case(
                f"random_tau{tau}",
                "pathprox.prox_norm_product",
                {"tau": tau},
                {"W": Wr, "V": Vr},
                {"W": Wp, "V": Vp},
            )
        )
    return out


def groups_hyper(groups: pathprox.Groups) -> dict[str, Any]:
    return {
        "pairs": [g._asdict() for g in groups.pairs],
        "other": list(groups.other),
        "other_biases": list(groups.other_biases),
    }


def net_params(sizes, bias, seed, dead=True):
    params = mlp_params(sizes, bias, seed)
    if dead:
        params["layers.0.weight"][1] = 0.0  # a unit with w = 0
        params["layers.1.weight"][:, 2] = 0.0  # a unit with v = 0
    return params


@op("pathprox.balance_units")
def balance_units_cases():
    out = []
    for k, (sizes, bias, reg_bias) in enumerate(
        [([3, 5, 2], True, False), ([3, 5, 2], True, True), ([3, 4, 4, 3, 2], False, False)]
    ):
        net = MLP(sizes, bias=bias)
        groups = pathprox.pair_groups(net)
        params = net_params(sizes, bias, 800 + 9 * k)
        hyper = groups_hyper(groups) | {"regularize_bias": reg_bias}
        result = pathprox.balance_units(params, groups, regularize_bias=reg_bias)
        out.append(
            case(
                f"case{k}", "pathprox.balance_units", hyper, {"params": params}, {"params": result}
            )
        )
    return out


@op("pathprox.balance_layers")
def balance_layers_cases():
    out = []
    for k, (sizes, bias) in enumerate(
        [([3, 4, 4, 3, 2], True), ([3, 4, 5, 3, 4, 2, 2], True), ([3, 4, 4, 3, 2], False)]
    ):
        net = MLP(sizes, bias=bias)
        groups = pathprox.pair_groups(net)
        params = net_params(sizes, bias, 900 + 9 * k)
        result = pathprox.balance_layers(params, groups)
        out.append(
            case(
                f"case{k}",
                "pathprox.balance_layers",
                groups_hyper(groups),
                {"params": params},
                {"params": result},
            )
        )
    # a group whose path norm is exactly 0 (all of V_0 zero): the 1e-6 floor of P_g decides the scales
    net = MLP([3, 4, 4, 3, 2])
    groups = pathprox.pair_groups(net)
    params = net_params([3, 4, 4, 3, 2], True, 930)
    params["layers.1.weight"][:] = 0.0
    result = pathprox.balance_layers(params, groups)
    out.append(
        case(
            "zero_group",
            "pathprox.balance_layers",
            groups_hyper(groups),
            {"params": params},
            {"params": result},
        )
    )
    return out


@op("pathprox.path_norm")
def path_norm_cases():
    out = []
    for k, (sizes, bias, reg_bias) in enumerate(
        [
            ([3, 5, 2], True, False),
            ([3, 5, 2], True, True),
            ([3, 4, 4, 3, 2], False, False),
            ([3, 4, 3, 2], True, False),
        ]
    ):
        net = MLP(sizes, bias=bias)
        groups = pathprox.pair_groups(net)
        params = net_params(sizes, bias, 1000 + 9 * k)
        value, grads = pathprox.path_norm(params, groups, regularize_bias=reg_bias)
        hyper = groups_hyper(groups) | {"regularize_bias": reg_bias}
        out.append(
            case(
                f"case{k}",
                "pathprox.path_norm",
                hyper,
                {"params": params},
                {"value": np.asarray(value), "grads": grads},
            )
        )
    return out


# ------------------------------------------------------------------------------------------------ sparse
def sparse_matrices() -> dict[str, np.ndarray]:
    W = draw(1100, 4, 6)
    zero_rc = W.copy()
    zero_rc[1] = 0.0  # a zero row
    zero_rc[:, 3] = 0.0  # a zero column
    zero_rc[2, 0] = 0.0  # a single zero weight
    tiny = draw(1102, 3, 3)
    tiny[0, 0] = 1e-300  # a tiny share: log of it stays finite
    return {
        "random": W,
        "zero_row_and_column": zero_rc,
        "tiny_entry": tiny,
        "single_nonzero": np.array([[0.0, 0.0], [0.0, -2.5]]),
        "all_zero": np.zeros((3, 2)),
        "row_vector": draw(1103, 1, 5),
    }


def sparse_cases(name: str):
    reg = sparse.REGULARIZERS[name]
    out = []
    for label, W in sparse_matrices().items():
        value, grad = reg.value_and_grad(W)
        out.append(
            case(label, f"sparse.{name}", {}, {"W": W}, {"value": np.asarray(value), "grad": grad})
        )
    return out


for _name in ("spatial_entropy", "element_entropy", "hoyer_square", "group_hoyer_square"):
    op(f"sparse.{_name}")(lambda _n=_name: sparse_cases(_n))


# ------------------------------------------------------------------------------------------------- files
def build() -> dict[str, list[dict[str, Any]]]:
    """Every op's cases, keyed by op name (the file is ``<op>.json``)."""
    return {name: fn() for name, fn in BUILDERS.items()}


def main(argv: list[str]) -> None:
    for name, cases in build().items():
        path = HERE / f"{name}.json"
        write_cases(path, cases)
        print(f"{path.name}: {len(cases)} cases, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
