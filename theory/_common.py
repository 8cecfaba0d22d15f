"""Helpers shared by the figure scripts: atomic writes of figures and tables, seed means with intervals, the
sequential runner."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_write",
    "format_ci",
    "mean_ci",
    "pinned_run",
    "run_sequential",
    "save_figure",
    "write_csv",
    "write_json",
    "write_outputs",
]


def atomic_write(path: Path, write) -> Path:
    """Write through ``write(file_path)`` to a temporary name in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(
            tmp, 0o644
        )  # mkstemp creates 0600; published figures and tables are world-readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_figure(fig: Any, outdir: str | os.PathLike, name: str) -> list[Path]:
    """Save a matplotlib figure as ``name.png`` (150 dpi) and ``name.svg``; close it."""
    import matplotlib
    import matplotlib.pyplot as plt

    # a fixed salt for the SVG element ids: identical numbers give byte-identical files on every re-run
    matplotlib.rcParams["svg.hashsalt"] = "refreg"
    outdir = Path(outdir)
    # no date or software version in the files, for the same reason
    paths = [
        atomic_write(
            outdir / f"{name}.png",
            lambda p: fig.savefig(p, dpi=150, format="png", metadata={"Software": None}),
        ),
        atomic_write(
            outdir / f"{name}.svg", lambda p: fig.savefig(p, format="svg", metadata={"Date": None})
        ),
    ]
    plt.close(fig)
    return paths


def write_csv(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Rows of dicts (one shared header, in first-seen key order) to CSV."""
    rows = list(rows)
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]

    def write(p):
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header)
            w.writeheader()
            w.writerows(rows)

    return atomic_write(Path(path), write)


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    def write(p):
        with open(p, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.write("\n")

    return atomic_write(Path(path), write)


def write_outputs(
    fig: Any,
    outdir: str | os.PathLike,
    name: str,
    table: Iterable[Mapping[str, Any]],
    data: Any,
    extra_tables: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
) -> list[str]:
    """The files every figure writes: ``name.png``/``.svg``, ``name.csv`` (``table``), optional
    ``name_<suffix>.csv`` tables, and ``name.json`` (``data``); returns their paths as strings."""
    outdir = Path(outdir)
    paths = save_figure(fig, outdir, name)
    paths.append(write_csv(table, outdir / f"{name}.csv"))
    for suffix, rows in (extra_tables or {}).items():
        paths.append(write_csv(rows, outdir / f"{name}_{suffix}.csv"))
    paths.append(write_json(data, outdir / f"{name}.json"))
    return [str(p) for p in paths]


def mean_ci(values: Iterable[float]) -> tuple[float, float]:
    """Mean of ``values`` and the half-width of its 95 % Student-t interval.

    One value has no interval: its half-width is NaN, not 0 (which would claim certainty). A non-finite value
    (a diverged run) gives the mean NumPy gives (±inf, or NaN for NaN or inf − inf) and a NaN half-width; no
    value gives NaN and NaN.
    """
    from scipy import stats

    v = np.asarray(list(values), dtype=float)
    if v.size == 0:  # e.g. every seed diverged and none is left to average
        return math.nan, math.nan
    if not np.all(np.isfinite(v)):
        with np.errstate(invalid="ignore"):
            return float(v.mean()), math.nan  # ±inf keeps its sign; inf − inf and NaN give NaN
    if v.size < 2:
        return float(v.mean()), math.nan
    half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean()), float(half)


def format_ci(mean: float, half: float, spec: str = ".2f", scale: float = 1.0) -> str:
    """``"mean ± half"`` in ``spec`` (both times ``scale``), or ``"mean (one run, no interval)"``."""
    if math.isnan(half) and math.isfinite(mean):
        return f"{format(scale * mean, spec)} (one run, no interval)"
    return f"{format(scale * mean, spec)} ± {format(scale * half, spec)}"


def environment(blas_threads: int | None = None) -> dict:
    """Library versions, BLAS libraries and their thread counts, and the CPU model of this process.

    ``blas_threads``: measured inside that BLAS limit (threadpoolctl), the count a pinned run used.
    """
    import platform
    import sys

    import threadpoolctl

    import refreg

    if blas_threads is not None:
        with threadpoolctl.threadpool_limits(limits=blas_threads):
            return environment()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "refreg": refreg.__version__,
        "threadpoolctl": threadpoolctl.__version__,
        "blas": [
            {k: info.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer")}
            for info in threadpoolctl.threadpool_info()
        ],
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
    }


def describe_environment(env: Mapping[str, Any]) -> str:
    """One line for summary.md: ``Python 3.11.7, NumPy 2.4.6, refreg 0.1.0, openblas 0.3.31 (1 thread), CPU (2 CPUs)``."""
    blas = ", ".join(
        f"{b.get('internal_api')} {b.get('version')} ({b.get('num_threads')} thread"
        f"{'' if b.get('num_threads') == 1 else 's'})"
        for b in env.get("blas", [])
    )
    parts = [
        f"Python {env.get('python')}",
        f"NumPy {env.get('numpy')}",
        f"refreg {env.get('refreg')}",
        blas or "no BLAS reported",
        f"{env.get('cpu')} ({env.get('cpu_count')} CPUs)",
    ]
    return ", ".join(parts)


def pinned_run(module: Any, config: Any, threads: int = 1) -> Any:
    """``module.run(config)`` with BLAS pinned to ``threads`` (threadpoolctl), as every figure run is.

    The matrix products' summation order depends on the thread count; pinning makes a run repeat bit for bit
    on one machine, whichever runner started it (a run may pin a different count itself, inside this).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover (a dependency of the figures extra)
        return module.run(config)
    with threadpool_limits(limits=threads):
        return module.run(config)


def run_sequential(
    module: Any,
    outdir: str | os.PathLike = "figures",
    preset: str = "quick",
    seeds: int | None = None,
) -> dict:
    """Run every config of ``module`` one after another and report; what ``main`` of each script calls."""
    import matplotlib

    matplotlib.use("Agg")
    config = module.PRESETS[preset]
    config = config if dataclasses.is_dataclass(config) else dict(config)
    results = [pinned_run(module, c) for c in module.configs(config, seeds)]
    return module.report(config, results, Path(outdir))
