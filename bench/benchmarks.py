"""The benchmarks: each a function ``(quick: bool) -> Comparison``.

Everything runs float32 on the threads the process has (NumPy's BLAS and PyTorch use the same count).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

import refreg
from bench.harness import Comparison, compare
from refreg import MLP, training

# an MLP with realistic layer shapes and 12.1M float32 parameters: two (W, V) pairs for PathProx
BIG_SIZES = (1024, 4096, 1536, 1024, 10)


def has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def _batch(rng, n, sizes):
    x = rng.standard_normal((n, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=n)
    return x, y


def mlp_training_step(sizes=(784, 300, 100, 10), batch=128, quick=False) -> Comparison:
    """Forward + backward + AdamW on an MLP: refreg (NumPy) beside PyTorch CPU, one thread each.

    One thread each: the same resources for both, and no interference between OpenBLAS's and PyTorch's
    spinning thread pools when the two alternate on a 2-core machine (with 2 threads each, per-round ratios
    spread from 0.1 to 2.8).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        if not has_torch():
            return _mlp_training_step(sizes, batch, quick)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _mlp_training_step(sizes, batch, quick)
        finally:
            torch.set_num_threads(threads)


def _mlp_training_step(sizes, batch, quick) -> Comparison:
    rng = np.random.default_rng(0)
    net = MLP(list(sizes))
    params = net.init(rng=0, dtype="float32")
    opt = refreg.adamw(1e-3)
    holder = {"params": params, "state": opt.init(params)}
    x, y = _batch(rng, batch, sizes)

    def refreg_step():
        p, s, _ = training.train_step(net, opt, holder["params"], holder["state"], x, y)
        holder["params"], holder["state"] = p, s

    own = {k: v.copy() for k, v in params.items()}
    donated = {"params": own, "state": opt.init(own)}

    def refreg_donated_step():  # the in-place update, as torch's optimizer.step()
        _, grads = net.value_and_grad(donated["params"], x, y)
        donated["params"], donated["state"] = opt.update(
            grads, donated["state"], donated["params"], donate=True
        )

    variants = {"refreg-numpy": refreg_step, "refreg-numpy-donated": refreg_donated_step}
    baseline = "refreg-numpy"
    if has_torch():
        import torch

        layers = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        topt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def torch_step():
            topt.zero_grad()
            torch.nn.functional.cross_entropy(model(tx), ty).backward()
            topt.step()

        variants = {"torch-cpu": torch_step, **variants}
        baseline = "torch-cpu"
    name = f"MLP step {'-'.join(map(str, sizes))}, batch {batch}, 1 thread"
    target = "refreg/torch <= 1.0" if sizes == (784, 300, 100, 10) else ""
    return compare(name, variants, baseline, repeats=10 if quick else 30, target=target)


def big_params(dtype=np.float32) -> tuple[dict[str, Any], dict[str, Any]]:
    net = MLP(list(BIG_SIZES))
    params = {k: np.asarray(v, dtype=dtype) for k, v in net.init(rng=0, dtype="float32").items()}
    rng = np.random.default_rng(1)
    grads = {k: (0.01 * rng.standard_normal(v.shape)).astype(dtype) for k, v in params.items()}
    return params, grads


def step_thunks(optimizers: dict[str, Any], grads: dict[str, Any], params: dict[str, Any]) -> dict:
    """One ``update`` per call for each optimizer, always from the same params: the cost of one step.

    Each thunk carries its optimizer's state forward (moments and multipliers evolve as in training).
    """
    thunks = {}
    for key, opt in optimizers.items():
        holder = {"state": opt.init(params)}

        def step(opt=opt, holder=holder):
            _, holder["state"] = opt.update(grads, holder["state"], params)

        thunks[key] = step
    return thunks


def donated_thunks(
    optimizers: dict[str, Any],
    grads: dict[str, Any],
    params: dict[str, Any],
    then: Callable[[dict[str, Any]], None] | None = None,
) -> dict:
    """One ``update(..., donate=True)`` per call on each optimizer's own copy of the parameters.

    ``then(new_params)``, if given, runs after each update inside the timed call.
    """
    thunks = {}
    for key, opt in optimizers.items():
        own = {k: v.copy() for k, v in params.items()}
        holder = {"params": own, "state": opt.init(own)}

        def step(opt=opt, holder=holder):
            holder["params"], holder["state"] = opt.update(
                grads, holder["state"], holder["params"], donate=True
            )
            if then is not None:
                then(holder["params"])

        thunks[key] = step
    return thunks


def adam_then_scale(grads: dict[str, Any], params: dict[str, Any]) -> Callable[[], None]:
    """The floor of an exact donated CPR step with every constraint active: Adam's donated step, then
    ``θ ← θ·c`` in place on each weight.

    No R, no multiplier, no checks: only the pass that any exact CPR step adds to Adam's. λ_j needs R of the
    whole updated tensor θ_j before its first element can be scaled (paper Algorithm 1), so the constraint step
    θ_j·(1 − 2λ_j) is a second read and write of θ_j after the step (docs/performance.md). This holds for a step
    whose constraints are all active (λ_j > 0), as the AdamCPR step here with κ = 0.9·R(θ₀); with λ_j = 0 CPR
    skips the multiply. The factor 1 − 2e-9 rounds to exactly 1.0 in float32, so θ does not shrink over the
    rounds; it is a float32 multiply by a Python float, the constraint step's own
    (``refreg.cpr._fused.constraint_step_into``).
    """
    weights = [k for k, v in params.items() if v.ndim >= 2]  # what CPR regularizes by default

    def scale(new_params: dict[str, Any]) -> None:
        for k in weights:
            np.multiply(new_params[k], 1.0 - 2e-9, out=new_params[k])

    return donated_thunks({"floor": refreg.adam(1e-3)}, grads, params, then=scale)["floor"]


def torch_adam_thunks(params: dict[str, Any], grads: dict[str, Any]) -> dict:
    """``torch.optim.Adam.step`` (single-tensor and foreach) on copies of the same tensors; {} without torch."""
    if not has_torch():
        return {}
    import torch

    thunks = {}
    for key, foreach in (("torch_adam", False), ("torch_adam_foreach", True)):
        tensors = []
        for k, v in params.items():
            t = torch.nn.Parameter(torch.from_numpy(v.copy()))
            t.grad = torch.from_numpy(grads[k].copy())
            tensors.append(t)
        thunks[key] = torch.optim.Adam(tensors, lr=1e-3, foreach=foreach).step
    return thunks


def copy_time(params: dict[str, Any], repeats: int) -> float:
    """Median time to copy every tensor once (read + write each byte): the memory-bandwidth yardstick."""
    out = {k: np.empty_like(v) for k, v in params.items()}

    def copy():
        for k, v in params.items():
            np.copyto(out[k], v)

    return compare("copy", {"copy": copy}, "copy", repeats=repeats).medians["copy"]


def optimizer_steps(
    extra_variants: dict[str, Any] | None = None, quick=False, donated: bool = False
) -> Comparison:
    """One optimizer step on 12.1M float32 parameters; roofline = time / (bytes moved / copy bandwidth).

    ``donated=True`` times ``update(..., donate=True)`` (in place, as torch's ``step()``) instead of the pure
    update, in a comparison of its own: the donated variants' own copies of the parameters change the
    allocator's heap, and with them in the same process the pure Adam step's fresh 48 MB outputs page-faulted
    up to 3x more (docs/performance.md).

    Bytes each step must move at the least (read + write, 4 bytes each): SGD reads θ, g and writes θ (3 passes);
    Adam reads θ, g, m, v and writes θ, m, v (7 passes); AdamCPR adds one read of θ for R(θ) and a read and
    write for θ − λ∇R (10); PathProx adds the norms (one read) and the rescaling (read + write) to SGD (6).
    A copy moves 2 passes.
    """
    from refreg.cpr import adam_cpr
    from refreg.pathprox import pair_groups, pathprox

    params, grads = big_params()
    n_params = sum(v.size for v in params.values())
    repeats = 5 if quick else 15
    groups = pair_groups(MLP(list(BIG_SIZES)))
    optimizers = {
        "sgd": (refreg.sgd(1e-2), 3),
        "adam": (refreg.adam(1e-3), 7),
        # dependent kappa below the current norm: the constraint is active and lambda > 0 at every step
        "adam_cpr": (adam_cpr(1e-3, kappa_init="dependent", kappa_init_param=0.9), 10),
        "pathprox": (pathprox(1e-2, 1e-4, groups=groups), 6),
    }
    for key, value in (extra_variants or {}).items():
        optimizers[key] = value
    if donated:
        optimizers = {f"{k}_donated": optimizers[k] for k in ("sgd", "adam", "adam_cpr")}
        variants = donated_thunks({k: opt for k, (opt, _) in optimizers.items()}, grads, params)
    else:
        variants = step_thunks({k: opt for k, (opt, _) in optimizers.items()}, grads, params)
    minimum_passes = {k: passes for k, (_, passes) in optimizers.items()}
    variants.update(torch_adam_thunks(params, grads))
    adam = "adam_donated" if donated else "adam"
    kind = "donated (in place)" if donated else "pure"
    result = compare(
        f"optimizer step, {kind}, {n_params / 1e6:.1f}M float32 params",
        variants,
        adam,
        repeats=repeats,
    )
    t_copy = copy_time(params, repeats)
    for key, passes in minimum_passes.items():
        roofline = t_copy * passes / 2
        result.extra[f"{key} / roofline ({passes} passes)"] = (
            f"{result.medians[key] / roofline:.2f}x"
        )
    result.extra["copy bandwidth"] = f"{2 * 4 * n_params / t_copy / 1e9:.1f} GB/s"
    if "torch_adam_foreach" in result.medians:
        ratio = result.medians[adam] / result.medians["torch_adam_foreach"]
        result.extra[f"{adam} / torch_adam_foreach (target <= 1.3)"] = f"{ratio:.2f}"
    result.target = "<= 2x roofline"
    return result


def cpr_overhead(sizes=(784, 300, 100, 10), quick=False, donated: bool = False) -> Comparison:
    """AdamCPR step over Adam step on the same parameters; pytorch-cpr over torch Adam beside it.

    ``donated=True``: both refreg steps with ``donate=True`` (in place, as torch's), in a comparison of their own
    (see :func:`optimizer_steps`).
    """
    from refreg.cpr import adam_cpr

    if sizes == BIG_SIZES:
        params, grads = big_params()
    else:
        params = MLP(list(sizes)).init(rng=0, dtype="float32")
        rng = np.random.default_rng(1)
        grads = {
            k: (0.01 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in params.items()
        }
    pair = {
        "adam": refreg.adam(1e-3),
        "adam_cpr": adam_cpr(1e-3, kappa_init="dependent", kappa_init_param=0.9),
    }
    if donated:
        variants = donated_thunks({f"{k}_donated": o for k, o in pair.items()}, grads, params)
        variants["adam_donated_then_scale"] = adam_then_scale(grads, params)
    else:
        variants = step_thunks(pair, grads, params)
    adam, cpr = ("adam_donated", "adam_cpr_donated") if donated else ("adam", "adam_cpr")
    if has_torch() and importlib.util.find_spec("pytorch_cpr") is not None:
        import pytorch_cpr
        import torch

        def torch_params():
            tensors = []
            for k, v in params.items():
                t = torch.nn.Parameter(torch.from_numpy(v.copy()))
                t.grad = torch.from_numpy(grads[k].copy())
                tensors.append((k, t))
            return tensors

        tadam = torch.optim.Adam([t for _, t in torch_params()], lr=1e-3)
        tensors = torch_params()
        tcpr = pytorch_cpr.AdamCPR(
            [
                {"params": [t for k, t in tensors if t.ndim >= 2], "regularize": True},
                {"params": [t for k, t in tensors if t.ndim < 2], "regularize": False},
            ],
            lr=1e-3,
            kappa_init_method="dependent",
            kappa_init_param=0.9,
        )
        variants["torch_adam"] = tadam.step
        variants["pytorch_cpr"] = tcpr.step
    n = sum(v.size for v in params.values())
    result = compare(
        f"AdamCPR / Adam step{', donated (in place)' if donated else ''}, {n / 1e6:.2f}M params",
        variants,
        adam,
        repeats=10 if quick else 30,
        target=f"{cpr} <= 1.10",
    )
    med = result.medians
    if donated:
        result.extra["adam_cpr_donated / adam_donated_then_scale (CPR beyond its floor)"] = (
            f"{med['adam_cpr_donated'] / med['adam_donated_then_scale']:.2f}"
        )
    if "torch_adam" in med:
        result.extra["pytorch_cpr / torch_adam"] = f"{med['pytorch_cpr'] / med['torch_adam']:.2f}"
    return result


def pathprox_overhead(quick=False) -> Comparison:
    """One PathProx update over one plain SGD update on the same MLP 784-300-100-10 (width 300 pairs)."""
    from refreg.pathprox import pair_groups, pathprox

    net = MLP([784, 300, 100, 10])
    params = net.init(rng=0, dtype="float32")
    rng = np.random.default_rng(1)
    grads = {k: (0.01 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in params.items()}
    variants = step_thunks(
        {
            "sgd": refreg.sgd(0.1),
            "pathprox_sphere": pathprox(0.1, 1e-4, groups=pair_groups(net)),
            "pathprox_joint": pathprox(0.1, 1e-4, groups=pair_groups(net), prox="joint"),
        },
        grads,
        params,
    )
    from refreg import _numba

    if _numba.enabled():  # numba (the 'fast' extra) is installed: the PathProx rows run its kernels
        for key in ("pathprox_sphere", "pathprox_joint"):
            variants[f"{key}_numpy_only"] = lambda fn=variants[key]: _numpy_only(fn)
    return compare(
        "PathProx / SGD update, MLP 784-300-100-10",
        variants,
        "sgd",
        repeats=20 if quick else 60,
        target="<= 1.3",
    )


def spatial_entropy_cost(batch=128, quick=False) -> Comparison:
    """Value + gradient of the spatial entropy of every weight matrix over one forward + backward pass."""
    from refreg import _numba
    from refreg.sparse import penalty

    net = MLP([784, 300, 100, 10])
    params = net.init(rng=0, dtype="float32")
    x, y = _batch(np.random.default_rng(0), batch, net.sizes)
    variants = {
        "forward_backward": lambda: net.value_and_grad(params, x, y),
        "spatial_entropy": lambda: penalty(params, "spatial_entropy", 1e-3),
        "element_entropy": lambda: penalty(params, "element_entropy", 1e-3),
        "l1": lambda: penalty(params, "l1", 1e-3),
    }
    if (
        _numba.enabled()
    ):  # numba (the 'fast' extra) is installed: "spatial_entropy" runs its kernels
        variants["spatial_entropy_numpy_only"] = lambda: _numpy_only(
            lambda: penalty(params, "spatial_entropy", 1e-3)
        )
    return compare(
        f"sparse penalty value+grad / forward+backward, MLP 784-300-100-10, batch {batch}",
        variants,
        "forward_backward",
        repeats=20 if quick else 60,
        target="spatial_entropy <= 0.25",
    )


def _numpy_only(fn: Callable[[], Any]) -> Any:
    """``fn()`` with refreg's optional numba kernels switched off (the NumPy reference lines)."""
    from refreg import _numba

    previous = _numba.set_enabled(False)
    try:
        return fn()
    finally:
        _numba.set_enabled(previous)


def peak_memory(quick=False) -> Comparison:
    """Peak bytes NumPy allocates during optimizer steps, over the parameters' bytes (tracemalloc).

    State bytes: Adam keeps m and v (2x the parameters); CPR adds a few scalars per tensor. The donated
    (in-place) update allocates only scratch blocks: its peak counts no new parameters or moments.
    """
    import tracemalloc

    from refreg.cpr import adam_cpr

    params, grads = big_params()
    param_bytes = sum(v.nbytes for v in params.values())
    result = Comparison(
        "peak memory / parameter bytes (12.1M float32 params)", "adam", {}, {}, {}, 3
    )
    for key, opt, donate in (
        ("adam", refreg.adam(1e-3), False),
        ("adam_cpr", adam_cpr(1e-3, kappa_init="dependent", kappa_init_param=0.9), False),
        ("sgd", refreg.sgd(1e-2), False),
        ("adam_cpr donated", adam_cpr(1e-3, kappa_init="dependent", kappa_init_param=0.9), True),
    ):
        p = {k: v.copy() for k, v in params.items()} if donate else params
        state = opt.init(p)
        tracemalloc.start()
        for _ in range(3):
            p, state = opt.update(grads, state, p, donate=donate)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        state_bytes = _array_bytes(state)
        result.extra[f"{key}: state / params"] = f"{state_bytes / param_bytes:.3f}"
        result.extra[f"{key}: peak during 3 steps / params"] = f"{peak / param_bytes:.2f}"
    result.target = "CPR adds O(tensors), not O(params)"
    return result


def _array_bytes(tree: Any) -> int:
    if isinstance(tree, dict):
        return sum(_array_bytes(v) for v in tree.values())
    if isinstance(tree, (tuple, list)):
        return sum(_array_bytes(v) for v in tree)
    return int(getattr(tree, "nbytes", 0))


def cupy_steps(quick=False) -> Comparison:
    """The optimizer steps on CuPy beside the same steps on NumPy (GPU / CPU ratios, synchronized timing).

    Without CuPy or a GPU the result is a row that says why it was skipped (nothing is timed).
    """
    from refreg.cpr import adam_cpr

    name = "CuPy / NumPy optimizer step, 12.1M float32 params"
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
    except Exception as err:
        import sys

        reason = f"skipped: {type(err).__name__}: {err}"
        print(f"cupy benchmarks {reason}", file=sys.stderr)
        return Comparison(name, "numpy adam", {}, {}, {}, 0, extra={"cupy": reason})

    def optimizers():
        return {
            "adam": refreg.adam(1e-3),
            "adam_cpr": adam_cpr(1e-3, kappa_init="dependent", kappa_init_param=0.9),
            "sgd": refreg.sgd(1e-2),
        }

    params, grads = big_params()
    gpu_params = {k: cupy.asarray(v) for k, v in params.items()}
    gpu_grads = {k: cupy.asarray(v) for k, v in grads.items()}
    variants = {}
    for device, p, g in (("numpy", params, grads), ("cupy", gpu_params, gpu_grads)):
        opts = optimizers()
        variants.update({f"{device} {k}": f for k, f in step_thunks(opts, g, p).items()})
        donated = donated_thunks({f"{k}_donated": o for k, o in opts.items()}, g, p)
        variants.update({f"{device} {k}": f for k, f in donated.items()})
    result = compare(
        name,
        variants,
        "numpy adam",
        repeats=5 if quick else 15,
        sync=cupy.cuda.Device().synchronize,
    )
    med = result.medians
    for key in ("adam", "adam_cpr", "sgd", "adam_donated", "adam_cpr_donated", "sgd_donated"):
        result.extra[f"GPU / CPU {key}"] = f"{med[f'cupy {key}'] / med[f'numpy {key}']:.3f}"
    return result


def cases(quick: bool):
    """(name, thunk) for every benchmark."""
    from bench.transformer import transformer_training_step

    out = [
        ("mlp_step_128", lambda: mlp_training_step(quick=quick)),
        ("transformer_step", lambda: transformer_training_step(quick=quick)),
        ("optimizer_steps", lambda: optimizer_steps(quick=quick)),
        ("optimizer_steps_donated", lambda: optimizer_steps(quick=quick, donated=True)),
        ("cpr_overhead_mlp", lambda: cpr_overhead(quick=quick)),
        ("cpr_overhead_mlp_donated", lambda: cpr_overhead(quick=quick, donated=True)),
        ("cpr_overhead_big", lambda: cpr_overhead(BIG_SIZES, quick=quick)),
        ("cpr_overhead_big_donated", lambda: cpr_overhead(BIG_SIZES, quick=quick, donated=True)),
        ("pathprox_overhead", lambda: pathprox_overhead(quick=quick)),
        ("spatial_entropy_cost", lambda: spatial_entropy_cost(quick=quick)),
        ("peak_memory", lambda: peak_memory(quick=quick)),
        ("cupy_steps", lambda: cupy_steps(quick=quick)),
    ]
    if not quick:
        out += [
            ("mlp_step_1024", lambda: mlp_training_step(batch=1024, quick=quick)),
            ("mlp_step_wide", lambda: mlp_training_step(sizes=(784, 4096, 4096, 10), quick=quick)),
        ]
    return out
