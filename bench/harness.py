"""The benchmark harness: interleaved repeats in one process, medians, ratios with their spread.

Variants compared with each other run in rounds after a warm-up, each round every variant once, so drift in the
machine's speed (frequency scaling, other processes) hits every variant alike. The order within a round is a
fresh permutation from a fixed seed, so no variant always runs right after the same one (and inherits its
cache footprint and freed memory), and a rerun uses the same orders. A comparison reports each variant's
median time and, against its baseline, the ratio of medians with the min-max of the per-round ratios.
"""

from __future__ import annotations

import gc
import json
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Comparison:
    """One benchmark's outcome: median seconds per variant and ratios to ``baseline``."""

    name: str
    baseline: str
    medians: dict[str, float]
    ratios: dict[str, float]
    spread: dict[str, tuple[float, float]]
    repeats: int
    target: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def time_call(fn: Callable[[], Any], sync: Callable[[], None] | None = None) -> float:
    start = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - start


def compare(
    name: str,
    variants: dict[str, Callable[[], Any]],
    baseline: str,
    *,
    repeats: int = 15,
    warmup: int = 2,
    target: str = "",
    note: str = "",
    sync: Callable[[], None] | None = None,
) -> Comparison:
    """Time every variant ``repeats`` times in interleaved rounds; medians and ratios to ``baseline``.

    Each round runs every variant once, in a seeded random order (module docstring). The ratio is of the
    medians; the per-round ratios (variant over baseline in the same round) give its min-max spread.
    """
    if baseline not in variants:
        raise ValueError(f"baseline must be one of {sorted(variants)}, got {baseline!r}")
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    keys = list(variants)
    orders = random.Random(0)  # the same orders on every run
    try:
        for _ in range(repeats):
            for key in orders.sample(keys, len(keys)):
                times[key].append(time_call(variants[key], sync))
    finally:
        if gc_was_enabled:
            gc.enable()
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratios, spread = {}, {}
    for key in variants:
        if key == baseline:
            continue
        per_round = [a / b for a, b in zip(times[key], times[baseline], strict=True)]
        ratios[key] = medians[key] / medians[baseline]
        spread[key] = (min(per_round), max(per_round))
    return Comparison(name, baseline, medians, ratios, spread, repeats, target, note)


def machine_info() -> dict[str, Any]:
    import os

    import numpy as np

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cores": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for d in threadpool_info()
        ]
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    try:  # refreg's optional kernels (the 'fast' extra) run in the refreg rows when numba is there and on
        from refreg import _numba

        info["numba"] = _numba.version() if _numba.enabled() else None
    except ImportError:  # a refreg tree from before the kernels
        info["numba"] = None
    return info


def write_results(
    comparisons: list[Comparison], path_json: Path, path_md: Path, info: dict
) -> None:
    data = {"machine": info, "benchmarks": [asdict(c) for c in comparisons]}
    path_json.write_text(json.dumps(data, indent=1) + "\n")
    path_md.write_text(markdown_table(comparisons, info))


def _fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def markdown_table(comparisons: list[Comparison], info: dict) -> str:
    lines = [
        f"Machine: {info.get('cpu', info.get('processor'))}, {info.get('cores')} cores, "
        f"Python {info.get('python')}, NumPy {info.get('numpy')}"
        + (
            f", PyTorch {info['torch']} ({info.get('torch_threads')} threads)"
            if info.get("torch")
            else ""
        )
        + (
            f", numba {info['numba']} (refreg's optional kernels on; *_numpy_only rows without)"
            if info.get("numba")
            else ", without numba (refreg's NumPy code only)"
        )
        + ".\n",
        "",
        "| benchmark | variant | median | ratio to baseline (min-max) | target | note |",
        "|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        if c.baseline in c.medians:
            base = _fmt_time(c.medians[c.baseline])
            lines.append(f"| {c.name} | {c.baseline} (baseline) | {base} | 1 | | |")
        for key, ratio in c.ratios.items():
            lo, hi = c.spread[key]
            lines.append(
                f"| {c.name} | {key} | {_fmt_time(c.medians[key])} | **{ratio:.2f}** ({lo:.2f}-{hi:.2f}) "
                f"| {c.target} | {c.note} |"
            )
        for key, value in c.extra.items():
            lines.append(f"| {c.name} | {key} | | {value} | {c.target} | |")
    return "\n".join(lines) + "\n"
