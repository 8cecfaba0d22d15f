"""The bad-input case table: one entry per bad call, with the error it must raise and the argument it names.

A case is ``(id, exc, names, make)``: ``make()`` returns ``(call, watched)``, where ``call()`` must raise
``exc`` with a message containing ``names`` (the argument or field, e.g. ``state.exp_avg['w']``) and
``watched`` is every array or state the call received, which must be bitwise unchanged afterwards.
``tests/test_bad_input.py`` runs the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from refreg import MLP, adam, adamw, data, optim, sgd
from refreg.nn import accuracy, mse, softmax_cross_entropy


class Case(NamedTuple):
    id: str
    exc: type
    names: str
    make: Callable[[], tuple[Callable[[], Any], Any]]


CASES: list[Case] = []


def case(id: str, exc: type, names: str):
    def register(make):
        CASES.append(Case(id, exc, names, make))
        return make

    return register


def add(id: str, exc: type, names: str, make) -> None:
    CASES.append(Case(id, exc, names, make))


def P(dtype=np.float64):
    """Fresh params of two tensors (a 2-D weight and a bias)."""
    rng = np.random.default_rng(0)
    return {
        "w": rng.standard_normal((3, 4)).astype(dtype),
        "b": rng.standard_normal(3).astype(dtype),
    }


def G(dtype=np.float64):
    rng = np.random.default_rng(1)
    return {
        "w": rng.standard_normal((3, 4)).astype(dtype),
        "b": rng.standard_normal(3).astype(dtype),
    }


# ------------------------------------------------------------------------------------------------ optimizers
OPTIMIZERS = {
    "sgd": lambda: sgd(0.1),
    "sgd_momentum": lambda: sgd(0.1, momentum=0.9, weight_decay=0.01),
    "adam": lambda: adam(1e-2, weight_decay=0.1),
    "adamw": lambda: adamw(1e-2),
}
BUFFERS = {  # per-parameter state fields of each optimizer, and those that must be >= 0
    "sgd": ((), ()),
    "sgd_momentum": (("momentum_buffer",), ()),
    "adam": (("exp_avg", "exp_avg_sq"), ("exp_avg_sq",)),
    "adamw": (("exp_avg", "exp_avg_sq"), ("exp_avg_sq",)),
}


def warm_state(opt, params, grads):
    """The state after two steps (so buffers are nonzero)."""
    state = opt.init(params)
    for _ in range(2):
        _, state = opt.update(grads, state, params)
    return state


def _update(name, params=None, grads=None, edit_state=None, dtype=np.float64):
    def make():
        opt = OPTIMIZERS[name]()
        p, g = P(dtype), G(dtype)
        state = warm_state(opt, P(), G()) if dtype == np.float64 else None
        if edit_state is not None:
            state = edit_state(state)
        p = params(p) if params else p
        g = grads(g) if grads else g
        return (lambda: opt.update(g, state, p)), (p, g, state)

    return make


def _with(d, key, value):
    out = dict(d)
    out[key] = value
    return out


def _replace_buffer(field, key, fn):
    def edit(state):
        buffers = dict(getattr(state, field))
        buffers[key] = fn(buffers[key])
        return state._replace(**{field: buffers})

    return edit


def _init_with(name, w):
    p = _with(P(), "w", w)
    return (lambda: OPTIMIZERS[name]().init(p)), p


BAD_DTYPES = {
    "float16": np.float16,
    "longdouble": np.longdouble,
    "complex128": np.complex128,
    "int64": np.int64,
    "bool": np.bool_,
}

for name in OPTIMIZERS:
    for dname, dt in BAD_DTYPES.items():
        add(
            f"{name}-init-{dname}-params",
            TypeError,
            "params['w']",
            lambda name=name, dt=dt: _init_with(name, P()["w"].astype(dt)),
        )
        add(
            f"{name}-update-{dname}-params",
            TypeError,
            "params['w']",
            _update(name, params=lambda p, dt=dt: _with(p, "w", p["w"].astype(dt))),
        )
    add(
        f"{name}-init-object-params",
        TypeError,
        "params['w']",
        lambda name=name: ((lambda: OPTIMIZERS[name]().init({"w": np.array([1.0, None])})), None),
    )
    add(
        f"{name}-zero-size-param",
        ValueError,
        "params['w']",
        lambda name=name: ((lambda: OPTIMIZERS[name]().init({"w": np.zeros((0, 4))})), None),
    )
    add(f"{name}-params-not-dict", TypeError, "params", _update(name, params=lambda p: [p["w"]]))
    add(f"{name}-empty-params", TypeError, "params", _update(name, params=lambda p: {}))
    add(
        f"{name}-nan-grad",
        FloatingPointError,
        "grads['w']",
        _update(name, grads=lambda g: _with(g, "w", np.where(g["w"] > 0, np.nan, g["w"]))),
    )
    add(
        f"{name}-inf-grad",
        FloatingPointError,
        "grads['b']",
        _update(name, grads=lambda g: _with(g, "b", g["b"] * np.inf)),
    )
    add(f"{name}-missing-grad", ValueError, "grads", _update(name, grads=lambda g: {"w": g["w"]}))
    add(
        f"{name}-grad-shape",
        ValueError,
        "grads['w']",
        _update(name, grads=lambda g: _with(g, "w", g["w"].T)),
    )
    add(
        f"{name}-grad-dtype",
        TypeError,
        "grads['w']",
        _update(name, grads=lambda g: _with(g, "w", g["w"].astype(np.float32))),
    )
    add(
        f"{name}-state-wrong-type",
        TypeError,
        "state",
        _update(name, edit_state=lambda s: tuple(s)),
    )
    for label, step in [("negative", -1), ("float", 2.0), ("bool", True), ("none", None)]:
        add(
            f"{name}-state-step-{label}",
            ValueError,
            "state.step",
            _update(name, edit_state=lambda s, step=step: s._replace(step=step)),
        )
    fields, nonneg = BUFFERS[name]
    for field in fields:
        where = f"state.{field}['w']"
        edits = {
            "nan": (where, lambda b: np.where(b != 0, np.nan, b)),
            "inf": (where, lambda b: b + np.inf),
            "shape": (where, lambda b: b[:1]),
            "dtype": (where, lambda b: b.astype(np.float32)),
            "list": (where, lambda b: b.tolist()),
        }
        for label, (names, fn) in edits.items():
            add(
                f"{name}-{field}-{label}",
                ValueError,
                names,
                _update(name, edit_state=_replace_buffer(field, "w", fn)),
            )
        if field in nonneg:
            add(
                f"{name}-{field}-negative",
                ValueError,
                where,
                _update(name, edit_state=_replace_buffer(field, "w", lambda b: -b - 1.0)),
            )
        for label, edit in (
            ("missing-key", lambda old: {"w": old["w"]}),
            ("extra-key", lambda old: {**old, "x": np.zeros(1)}),
            ("not-dict", lambda old: None),
        ):
            add(
                f"{name}-{field}-{label}",
                ValueError,
                f"state.{field}",
                _update(
                    name,
                    edit_state=lambda s, field=field, edit=edit: s._replace(
                        **{field: edit(getattr(s, field))}
                    ),
                ),
            )


# --------------------------------------------------------------------------------------- hyperparameters
def _construct(fn):
    return lambda: (fn, None)


for id, exc, names, fn in [
    ("sgd-nesterov-str", TypeError, "nesterov", lambda: sgd(0.1, momentum=0.9, nesterov="no")),
    ("sgd-nesterov-int", TypeError, "nesterov", lambda: sgd(0.1, momentum=0.9, nesterov=1)),
    ("adam-decoupled-str", TypeError, "decoupled_weight_decay", lambda: optim.Adam(1e-3, decoupled_weight_decay="yes")),
    ("adamw-lr-wd-above-1", ValueError, "weight_decay", lambda: adamw(0.5, weight_decay=3.0)),
    ("sgd-lr-nan", ValueError, "lr", lambda: sgd(math.nan)),
    ("sgd-lr-negative", ValueError, "lr", lambda: sgd(-0.1)),
    ("sgd-lr-str", TypeError, "lr", lambda: sgd("0.1")),
    ("sgd-momentum-1", ValueError, "momentum", lambda: sgd(0.1, momentum=1.0)),
    ("sgd-weight-decay-inf", ValueError, "weight_decay", lambda: sgd(0.1, weight_decay=math.inf)),
    ("adam-betas-one", ValueError, "betas", lambda: adam(betas=(0.9,))),
    ("adam-beta2-1", ValueError, "betas[1]", lambda: adam(betas=(0.9, 1.0))),
    ("adam-eps-negative", ValueError, "eps", lambda: adam(eps=-1e-8)),
    ("cosine-warmup-too-long", ValueError, "warmup_steps", lambda: optim.cosine(0.1, 10, warmup_steps=10)),
]:  # fmt: skip
    add(id, exc, names, _construct(fn))


@case("adamw-schedule-lr-wd-above-1", ValueError, "weight_decay")
def _():
    opt = adamw(lambda t: 10.0 * (t + 1), weight_decay=0.06)
    p, g = P(), G()
    _, state = opt.update(g, opt.init(p), p)  # lr 10: decay factor 0.4
    return (lambda: opt.update(g, state, p)), (p, g, state)  # lr 20: factor -0.2, refused


@case(
    "schedule-returns-nan",
    ValueError,
    "lr schedule",
)
def _():
    opt = sgd(lambda t: math.nan)
    p, g = P(), G()
    state = opt.init(p)
    return (lambda: opt.update(g, state, p)), (p, g, state)


# --------------------------------------------------------------------------------------------- nets, losses
NET = MLP([4, 5, 3, 2])


def _net_case(edit_params=None, edit_x=None, loss="softmax_cross_entropy", edit_y=None):
    def make():
        params = NET.init(rng=0)
        rng = np.random.default_rng(2)
        x = rng.standard_normal((6, 4))
        y = (
            rng.integers(0, 2, 6)
            if loss == "softmax_cross_entropy"
            else rng.standard_normal((6, 2))
        )
        params = edit_params(params) if edit_params else params
        x = edit_x(x) if edit_x else x
        y = edit_y(y) if edit_y else y
        return (lambda: NET.value_and_grad(params, x, y, loss)), (params, x, y)

    return make


def _poison(key, value):
    def edit(params):
        out = dict(params)
        a = out[key].copy()
        a.reshape(-1)[a.size // 2] = value
        out[key] = a
        return out

    return edit


for value_name, value in [("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf)]:
    for key in NET.param_shapes():
        add(
            f"mlp-{value_name}-in-{key}",
            FloatingPointError,
            f"params['{key}']",
            _net_case(edit_params=_poison(key, value)),
        )
    add(
        f"mlp-{value_name}-in-x",
        FloatingPointError,
        "x",
        _net_case(
            edit_x=lambda x, v=value: np.where(np.arange(x.size).reshape(x.shape) == 7, v, x)
        ),
    )
    add(
        f"mlp-{value_name}-in-target",
        FloatingPointError,
        "target",
        _net_case(loss="mse", edit_y=lambda y, v=value: np.where(y > 1.0, v, y)),
    )


@case("mlp-loss-overflow", FloatingPointError, "loss")
def _():
    call, watched = _net_case(
        loss="mse", edit_params=lambda p: {k: v * 1e110 for k, v in p.items()}
    )()

    def quiet():
        with np.errstate(
            over="ignore", invalid="ignore"
        ):  # NumPy's warning is not the error under test
            return call()

    return quiet, watched


for dname, dt in BAD_DTYPES.items():
    add(
        f"mlp-{dname}-params",
        TypeError,
        "params['layers.0.weight']",
        _net_case(edit_params=lambda p, dt=dt: {k: v.astype(dt) for k, v in p.items()}),
    )
add("mlp-x-wrong-width", ValueError, "x", _net_case(edit_x=lambda x: x[:, :3]))
add("mlp-x-float32", TypeError, "x", _net_case(edit_x=lambda x: x.astype(np.float32)))
add("mlp-labels-float", TypeError, "labels", _net_case(edit_y=lambda y: y.astype(np.float64)))
add("mlp-labels-out-of-range", ValueError, "labels", _net_case(edit_y=lambda y: y + 5))
add("mlp-bias-str", TypeError, "bias", _construct(lambda: MLP([2, 3], bias="yes")))
add("mlp-sizes-zero", ValueError, "sizes", _construct(lambda: MLP([2, 0, 3])))


def _on_logits(fn):
    logits = np.random.default_rng(3).standard_normal((5, 3))
    return (lambda: fn(logits)), logits


for id, exc, names, fn in [
    ("accuracy-labels-n-by-1", ValueError, "labels", lambda l: accuracy(l, np.zeros((5, 1), np.int64))),
    ("accuracy-labels-float", TypeError, "labels", lambda l: accuracy(l, np.zeros(5))),
    ("accuracy-empty", ValueError, "logits", lambda l: accuracy(l[:0], np.zeros(0, np.int64))),
    ("accuracy-logits-1d", ValueError, "logits", lambda l: accuracy(l[:, 0], np.zeros(5, np.int64))),
    ("xent-labels-n-by-1", ValueError, "labels", lambda l: softmax_cross_entropy(l, np.zeros((5, 1), np.int64))),
    ("xent-empty", ValueError, "logits", lambda l: softmax_cross_entropy(l[:0], np.zeros(0, np.int64))),
    ("mse-shape", ValueError, "target", lambda l: mse(l, l[:, :2])),
    ("mse-empty", ValueError, "pred", lambda l: mse(l[:0], l[:0])),
    ("mse-nan-target", FloatingPointError, "target", lambda l: mse(l, l * np.nan)),
]:  # fmt: skip
    add(id, exc, names, lambda fn=fn: _on_logits(fn))


# ------------------------------------------------------------------------------------------ data and splits
for id, exc, names, fn in [
    ("modular-empty-train", ValueError, "train_fraction", lambda: data.modular_addition(p=3, train_fraction=0.01)),
    ("modular-empty-test", ValueError, "train_fraction", lambda: data.modular_addition(p=3, train_fraction=0.99)),
    ("modular-p-bool", ValueError, "p", lambda: data.modular_addition(p=True)),
    ("digits-empty-test", ValueError, "test_fraction", lambda: data.digits(test_fraction=0.001)),
    ("minibatches-empty", ValueError, "n", lambda: list(data.minibatches(0, 4, rng=0))),
    ("minibatches-batch-0", ValueError, "batch_size", lambda: list(data.minibatches(10, 0, rng=0))),
    ("minibatches-drop-all", ValueError, "batch_size", lambda: list(data.minibatches(3, 4, rng=0, drop_last=True))),
    ("subset-per-class-0", ValueError, "per_class", lambda: data.subset(np.zeros((4, 2)), np.array([0, 0, 1, 1]), 0)),
    ("teacher-n-train-0", ValueError, "n_train", lambda: data.teacher_student(n_train=0)),
    ("rng-negative", ValueError, "rng", lambda: data.modular_addition(rng=-1)),
]:  # fmt: skip
    add(id, exc, names, _construct(fn))


# ------------------------------------------------------------------------------------------- CPR, PathProx
from refreg import cpr as _cpr  # noqa: E402
from refreg import pathprox as _pathprox  # noqa: E402
from refreg import sparse as _sparse  # noqa: E402
from refreg.cpr.measures import measure_grad, measure_value  # noqa: E402

PP_NET = MLP([4, 6, 3])


def _cpr_update(edit_state=None, edit_params=None, **options):
    def make():
        opt = _cpr.adam_cpr(1e-2, kappa_init="uniform", kappa_init_param=1.0, mu=0.1, **options)
        p, g = P(), G()
        state = opt.init(p)
        for _ in range(2):
            _, state = opt.update(g, state, p)
        state = edit_state(state) if edit_state else state
        p = edit_params(p) if edit_params else p
        return (lambda: opt.update(g, state, p)), (p, g, state)

    return make


def _scalar(field, value, key="w"):
    return lambda s: s._replace(**{field: {**getattr(s, field), key: value}})


for field, value, label in [
    ("lam", -0.5, "negative"),
    ("lam", math.nan, "nan"),
    ("lam", math.inf, "inf"),
    ("lam", "0.1", "str"),
    ("kappa", -1.0, "negative"),
    ("kappa", math.nan, "nan"),
    ("norm_ema", -1.0, "negative"),
    ("prev_norm_ema", math.inf, "inf"),
    (
        "prev_growth",
        math.inf,
        "inf",
    ),  # NaN is the detector's own value for a zero norm (check_state)
    ("lam", 10**400, "int-beyond-float"),
    ("kappa", 10**400, "int-beyond-float"),
    ("step", 2**53 + 1, "beyond-2**53"),
    ("kappa_set", "yes", "str"),
    ("step", -1, "negative"),
    ("step", 1.5, "float"),
]:
    add(
        f"cpr-state-{field}-{label}",
        ValueError,
        f"state.{field}['w']",
        _cpr_update(edit_state=_scalar(field, value)),
    )
add(
    "cpr-state-lam-not-dict",
    ValueError,
    "state.lam",
    _cpr_update(edit_state=lambda s: s._replace(lam=[0.0])),
)
add(
    "cpr-state-base-nan-moment",
    ValueError,
    "state.exp_avg['w']",
    _cpr_update(
        edit_state=lambda s: s._replace(
            base=_replace_buffer("exp_avg", "w", lambda b: b * np.nan)(s.base)
        )
    ),
)
add(
    "cpr-state-wrong-type",
    TypeError,
    "state",
    _cpr_update(edit_state=lambda s: s.base),
)
for dname, dt in BAD_DTYPES.items():
    add(
        f"cpr-{dname}-params",
        TypeError,
        "params['w']",
        _cpr_update(edit_params=lambda p, dt=dt: {k: v.astype(dt) for k, v in p.items()}),
    )
for id, exc, names, fn in [
    ("cpr-reg-by-lr-str", TypeError, "reg_by_lr", lambda: _cpr.cpr(adam(), reg_by_lr="yes")),
    ("cpr-kappa-adapt-int", TypeError, "kappa_adapt", lambda: _cpr.cpr(adam(), kappa_adapt=1)),
    ("cpr-mu-negative", ValueError, "mu", lambda: _cpr.cpr(adam(), mu=-1.0)),
    ("cpr-mu-nan", ValueError, "mu", lambda: _cpr.cpr(adam(), mu=math.nan)),
    ("cpr-measure-unknown", ValueError, "measure", lambda: _cpr.cpr(adam(), measure="l3")),
    ("cpr-base-not-optimizer", TypeError, "base", lambda: _cpr.cpr(object())),
]:  # fmt: skip
    add(id, exc, names, _construct(fn))


def _measure(fn, theta):
    return lambda: ((lambda: fn(theta)), theta)


add(
    "measure-float16",
    TypeError,
    "theta",
    _measure(lambda t: measure_value(t, "l2"), np.ones(3, np.float16)),
)
add(
    "measure-std-one-element",
    ValueError,
    "std",
    _measure(lambda t: measure_grad(t, "std"), np.ones(1)),
)
add(
    "measure-unknown", ValueError, "measure", _measure(lambda t: measure_value(t, "l0"), np.ones(3))
)


def _pathprox_update(edit_state=None, edit_params=None, momentum=0.9, **options):
    def make():
        opt = _pathprox.pathprox(
            0.1, 1e-3, groups=_pathprox.pair_groups(PP_NET), momentum=momentum, **options
        )
        p = PP_NET.init(rng=0)
        g = {k: np.random.default_rng(4).standard_normal(v.shape) for k, v in p.items()}
        state = opt.init(p)
        _, state = opt.update(g, state, p)
        state = edit_state(state) if edit_state else state
        p = edit_params(p) if edit_params else p
        return (lambda: opt.update(g, state, p)), (p, g, state)

    return make


W0 = "layers.0.weight"
for label, fn in {
    "nan": lambda b: b * np.nan,
    "shape": lambda b: b[:1],
    "dtype": lambda b: b.astype(np.float32),
}.items():
    add(
        f"pathprox-momentum-buffer-{label}",
        ValueError,
        f"state.momentum_buffer['{W0}']",
        _pathprox_update(edit_state=_replace_buffer("momentum_buffer", W0, fn)),
    )
add(
    "pathprox-step-negative",
    ValueError,
    "state.step",
    _pathprox_update(edit_state=lambda s: s._replace(step=-2)),
)
add(
    "pathprox-nan-param",
    FloatingPointError,
    W0,
    _pathprox_update(edit_params=lambda p: {**p, W0: p[W0] * np.nan}),
)
for dname, dt in BAD_DTYPES.items():
    add(
        f"pathprox-{dname}-params",
        TypeError,
        "params['layers.0",
        _pathprox_update(edit_params=lambda p, dt=dt: {k: v.astype(dt) for k, v in p.items()}),
    )
for id, exc, names, fn in [
    ("pathprox-layer-balance-str", TypeError, "layer_balance", lambda: _pathprox.pathprox(0.1, 1e-3, groups=_pathprox.pair_groups(PP_NET), layer_balance="no")),
    ("pathprox-lam-negative", ValueError, "lam", lambda: _pathprox.pathprox(0.1, -1.0, groups=_pathprox.pair_groups(PP_NET))),
    ("pathprox-prox-unknown", ValueError, "prox", lambda: _pathprox.pathprox(0.1, 1e-3, groups=_pathprox.pair_groups(PP_NET), prox="cube")),
]:  # fmt: skip
    add(id, exc, names, _construct(fn))


# ------------------------------------------------------------------------------ proximal operators, sparse
def _on(fn, *arrays):
    return lambda: ((lambda: fn(*arrays)), arrays)


def _wv(scale=1.0, dtype=np.float64):
    rng = np.random.default_rng(6)
    return (rng.standard_normal((3, 4)) * scale).astype(dtype), (
        rng.standard_normal((2, 3)) * scale
    ).astype(dtype)


_W, _V = _wv()
for id, exc, names, fn, arrays in [
    ("prox-nan-W", FloatingPointError, "W", lambda W, V: _pathprox.prox_norm_product(W, V, 0.1), (_W * np.nan, _V)),
    ("prox-inf-V", FloatingPointError, "V", lambda W, V: _pathprox.prox_norm_product(W, V, 0.1), (_W, _V * np.inf)),
    ("prox-tau-negative", ValueError, "tau", lambda W, V: _pathprox.prox_norm_product(W, V, -0.1), (_W, _V)),
    ("prox-tau-nan", ValueError, "tau", lambda W, V: _pathprox.prox_norm_product(W, V, math.nan), (_W, _V)),
    ("prox-V-shape", ValueError, "V", lambda W, V: _pathprox.prox_norm_product(W, V.T, 0.1), (_W, _V)),
    ("prox-float16", TypeError, "W", lambda W, V: _pathprox.prox_norm_product(W, V, 0.1), _wv(dtype=np.float16)),
    ("sphere-nan-W", FloatingPointError, "W", lambda W, V: _pathprox.project_unit_sphere(W), (_W * np.nan, _V)),
    ("soft-threshold-complex", TypeError, "z", lambda W, V: _pathprox.group_soft_threshold(W.astype(complex), 0.1), (_W, _V)),
]:  # fmt: skip
    add(id, exc, names, _on(fn, *arrays))

for name in _sparse.REGULARIZERS:
    add(
        f"sparse-{name}-nan",
        FloatingPointError,
        "max|W|",
        _on(lambda W, name=name: _sparse.REGULARIZERS[name].value_and_grad(W), _W * np.nan),
    )
    add(
        f"sparse-{name}-float16",
        TypeError,
        "W",
        _on(lambda W, name=name: _sparse.REGULARIZERS[name].value(W), _W.astype(np.float16)),
    )
    add(
        f"sparse-{name}-1d",
        ValueError,
        "W",
        _on(lambda W, name=name: _sparse.REGULARIZERS[name].value(W), _W[0]),
    )
add(
    "mask-nan-weight",
    FloatingPointError,
    "params['w']",
    _on(
        lambda p: _sparse.magnitude_mask(p, 0.1, relative=True),
        {"w": _W * np.where(_W > 0, np.nan, 1.0)},
    ),
)
add(
    "mask-relative-str",
    TypeError,
    "relative",
    _on(lambda p: _sparse.magnitude_mask(p, 0.1, relative="yes"), {"w": _W}),
)
add(
    "mask-threshold-negative",
    ValueError,
    "threshold",
    _on(lambda p: _sparse.magnitude_mask(p, -1.0), {"w": _W}),
)
add(
    "masked-mask-not-bool",
    TypeError,
    "masks['w']",
    _on(lambda p: _sparse.masked(sgd(0.1), {"w": np.ones(p["w"].shape)}).init(p), {"w": _W}),
)


# ------------------------------------------------------------------------------ decoupled weight decay
def _dwd_update(edit_state=None, edit_params=None, lr=1e-2, weight_decay=0.1):
    def make():
        opt = optim.decoupled_weight_decay(adam(lr), weight_decay)
        p, g = P(), G()
        state = opt.init(p)
        state = edit_state(state) if edit_state else state
        p = edit_params(p) if edit_params else p
        return (lambda: opt.update(g, state, p)), (p, g, state)

    return make


add("dwd-lr-wd-above-1", ValueError, "weight_decay", _dwd_update(lr=0.5, weight_decay=3.0))
add(
    "dwd-step-negative",
    ValueError,
    "state.step",
    _dwd_update(edit_state=lambda s: s._replace(step=-1)),
)
add(
    "dwd-state-not-a-state", ValueError, "state.step", _dwd_update(edit_state=lambda s: {"step": 0})
)
add(
    "dwd-nan-moment",
    ValueError,
    "state.exp_avg['w']",
    _dwd_update(edit_state=_replace_buffer("exp_avg", "w", lambda b: b + np.nan)),
)
for dname, dt in BAD_DTYPES.items():
    add(
        f"dwd-{dname}-params",
        TypeError,
        "params['w']",
        _dwd_update(edit_params=lambda p, dt=dt: {k: v.astype(dt) for k, v in p.items()}),
    )
add(
    "dwd-weight-decay-negative",
    ValueError,
    "weight_decay",
    _construct(lambda: optim.decoupled_weight_decay(adam(), -1.0)),
)
