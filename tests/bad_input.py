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
        add(
            f"{name}-{field}-missing-key",
            ValueError,
            f"state.{field}",
            _update(
                name,
                edit_state=lambda s, field=field: s._replace(
                    **{field: {"w": getattr(s, field)["w"]}}
                ),
            ),
        )
        add(
            f"{name}-{field}-extra-key",
            ValueError,
            f"state.{field}",
            _update(
                name,
                edit_state=lambda s, field=field: s._replace(
                    **{field: {**getattr(s, field), "x": np.zeros(1)}}
                ),
            ),
        )
        add(
            f"{name}-{field}-not-dict",
            ValueError,
            f"state.{field}",
            _update(name, edit_state=lambda s, field=field: s._replace(**{field: None})),
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
