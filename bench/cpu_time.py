"""Ratios by CPU time, for a machine shared with other work: ``python -m bench.cpu_time``.

Every variant runs with BLAS and PyTorch pinned to one thread, so the CPU time of the calling thread
(``time.thread_time``) is the whole cost of a call and does not grow when other processes take the core away.
Variants are interleaved in rounds; each ratio is the median of the per-round ratios. Cache and memory-bandwidth
contention still move the numbers: they show direction; the wall-clock ``python -m bench`` on a quiet machine
gives the figures to publish. It runs on any refreg tree (the ``donate=True`` rows appear where it exists), which
is how docs/performance.md compares before and after: run it from inside each tree
(``cd <tree> && python -m bench.cpu_time``), because ``python -m`` puts the current directory ahead of
``PYTHONPATH``.
"""

from __future__ import annotations

import inspect
import statistics
import time
from collections.abc import Callable

import numpy as np

import refreg
from refreg import MLP, training


def _rounds(variants: dict[str, Callable[[], object]], n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        fn()
        fn()
    for _ in range(n):
        for key, fn in variants.items():
            t0 = time.thread_time()
            fn()
            times[key].append(time.thread_time() - t0)
    return times


def _ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))


def _donates() -> bool:
    return "donate" in inspect.signature(refreg.adam(1e-3).update).parameters


def _train(net, opt, params, x, y, donate: bool) -> Callable[[], None]:
    holder = {"p": {k: v.copy() for k, v in params.items()}}
    holder["s"] = opt.init(holder["p"])

    def step():
        if donate:
            _, grads = net.value_and_grad(holder["p"], x, y)
            holder["p"], holder["s"] = opt.update(grads, holder["s"], holder["p"], donate=True)
        else:
            holder["p"], holder["s"], _ = training.train_step(
                net, opt, holder["p"], holder["s"], x, y
            )

    return step


def mlp_ratios(torch) -> dict[str, float]:
    """MLP 784-300-100-10 step (forward + backward + AdamW) over the same step in PyTorch."""
    out = {}
    sizes = (784, 300, 100, 10)
    for batch, n in ((128, 60), (1024, 12)):
        rng = np.random.default_rng(0)
        net, opt = MLP(list(sizes)), refreg.adamw(1e-3)
        params = net.init(rng=0, dtype="float32")
        x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
        y = rng.integers(0, sizes[-1], size=batch)
        variants = {"pure": _train(net, opt, params, x, y, False)}
        if _donates():
            variants["donated"] = _train(net, opt, params, x, y, True)
        layers = []
        for i in range(len(sizes) - 1):
            layers += [torch.nn.Linear(sizes[i], sizes[i + 1]), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers[:-1])
        topt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def torch_step(model=model, topt=topt, tx=tx, ty=ty):
            topt.zero_grad()
            torch.nn.functional.cross_entropy(model(tx), ty).backward()
            topt.step()

        variants["torch"] = torch_step
        times = _rounds(variants, n)
        for key in variants:
            if key != "torch":
                out[f"MLP step ({key}) / torch, batch {batch}"] = _ratio(times, key, "torch")
    return out


def _optimizer_variants(params, grads, donate: bool) -> dict[str, Callable[[], None]]:
    from refreg.cpr import adam_cpr

    variants = {}
    for name, opt in (
        ("adam", refreg.adam(1e-3)),
        ("cpr", adam_cpr(1e-3, kappa_init="dependent", kappa_init_param=0.9)),
        ("sgd", refreg.sgd(1e-2)),
    ):
        own = {k: v.copy() for k, v in params.items()} if donate else params
        holder = {"p": own, "s": opt.init(own)}

        def step(opt=opt, holder=holder):
            if donate:
                holder["p"], holder["s"] = opt.update(grads, holder["s"], holder["p"], donate=True)
            else:
                _, holder["s"] = opt.update(grads, holder["s"], holder["p"])

        variants[name] = step
    return variants


def _torch_and_copy(torch, params, grads) -> dict[str, Callable[[], object]]:
    tensors = []
    for k, v in params.items():
        t = torch.nn.Parameter(torch.from_numpy(v.copy()))
        t.grad = torch.from_numpy(grads[k].copy())
        tensors.append(t)
    dst = {k: np.empty_like(v) for k, v in params.items()}

    def copy():
        for k, v in params.items():
            np.copyto(dst[k], v)

    return {"torch": torch.optim.Adam(tensors, lr=1e-3, foreach=True).step, "copy": copy}


def optimizer_ratios(torch) -> dict[str, float]:
    """Adam, AdamCPR, SGD at 0.27M and 12M float32 parameters: ratios to each other, torch and a copy."""
    from bench.benchmarks import big_params

    out = {}
    small = MLP([784, 300, 100, 10]).init(rng=0, dtype="float32")
    rng = np.random.default_rng(1)
    small_grads = {
        k: (0.01 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in small.items()
    }
    kinds = ("", " donated") if _donates() else ("",)
    for label, (params, grads), n in (
        ("0.27M", (small, small_grads), 60),
        ("12M", big_params(), 7),
    ):
        # pure and donated in separate runs: the donated copies change the heap the pure steps allocate from
        for kind in kinds:
            variants = _optimizer_variants(params, grads, donate=bool(kind))
            variants.update(_torch_and_copy(torch, params, grads))
            times = _rounds(variants, n)
            out[f"AdamCPR / Adam{kind}, {label}"] = _ratio(times, "cpr", "adam")
            out[f"Adam{kind} / torch Adam foreach, {label}"] = _ratio(times, "adam", "torch")
            for name, passes in (("adam", 7), ("cpr", 10), ("sgd", 3)):
                out[f"{name}{kind} / copy roofline ({passes} passes), {label}"] = (
                    _ratio(times, name, "copy") * 2 / passes
                )
    return out


def regularizer_ratios() -> dict[str, float]:
    """PathProx over SGD, and the spatial entropy over one forward + backward pass (batch 128)."""
    from refreg.pathprox import pair_groups, pathprox
    from refreg.sparse import penalty

    net = MLP([784, 300, 100, 10])
    params = net.init(rng=0, dtype="float32")
    rng = np.random.default_rng(1)
    grads = {k: (0.01 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in params.items()}
    x = rng.standard_normal((128, 784)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    variants = {}
    for name, opt in (
        ("sgd", refreg.sgd(0.1)),
        ("sphere", pathprox(0.1, 1e-4, groups=pair_groups(net))),
        ("joint", pathprox(0.1, 1e-4, groups=pair_groups(net), prox="joint")),
    ):
        state = opt.init(params)
        variants[name] = lambda opt=opt, state=state: opt.update(grads, state, params)
    variants["forward+backward"] = lambda: net.value_and_grad(params, x, y)
    variants["spatial entropy"] = lambda: penalty(params, "spatial_entropy", 1e-3)
    kernels = _numba_kernels()
    if (
        kernels is not None
    ):  # with numba installed "spatial entropy" runs refreg's kernels; time both
        variants["NumPy only"] = lambda: kernels(lambda: penalty(params, "spatial_entropy", 1e-3))
    times = _rounds(variants, 150)
    out = {
        "PathProx sphere / SGD": _ratio(times, "sphere", "sgd"),
        "PathProx joint / SGD": _ratio(times, "joint", "sgd"),
        "spatial entropy value+grad / forward+backward": _ratio(
            times, "spatial entropy", "forward+backward"
        ),
    }
    if kernels is not None:
        out["spatial entropy, NumPy only / forward+backward"] = _ratio(
            times, "NumPy only", "forward+backward"
        )
    return out


def _numba_kernels() -> Callable[[Callable[[], object]], object] | None:
    """A runner of ``fn()`` without refreg's numba kernels, or None where they are absent (older trees too)."""
    try:
        from bench.benchmarks import _numpy_only
        from refreg import _numba
    except ImportError:
        return None
    return _numpy_only if _numba.enabled() else None


def main() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        results = {**mlp_ratios(torch), **optimizer_ratios(torch), **regularizer_ratios()}
    for key, value in results.items():
        print(f"| {key} | {value:.2f} |")


if __name__ == "__main__":
    main()
