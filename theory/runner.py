"""The figure runner: sweeps of theory runs through any ``concurrent.futures.Executor``, cached by configuration.

Every figure script in ``theory/`` lists its runs (``configs``), each a frozen dataclass (or, during the
transition, a JSON-able dict) holding everything the run depends on, its seed included. A run's result is
cached in ``<out>/.cache/<figure>/<hash>.json``, where the hash (:func:`cache_key`) covers the figure, the
configuration's class and every field, and the source code of refreg, of the script and of theory's shared
``_*.py`` helpers, so a re-run recomputes
exactly the runs whose inputs changed, and an interrupted sweep resumes where it stopped (results are written
to a temporary name and renamed; leftover temporaries are removed). Each entry stores the sha256 of its
content: an entry that does not verify (truncated, edited, not JSON) is recomputed, never trusted. Runs go to a local process pool by default, or to a Dask cluster
(``client.get_executor()``). This module lives beside the figure scripts: ``refreg`` never imports it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from theory._common import describe_environment, environment, pinned_run

__all__ = [
    "MAX_SEEDS",
    "FigureInputError",
    "InlineExecutor",
    "available_figures",
    "cache_key",
    "check_outdir",
    "figure_module",
    "read_cache_entry",
    "run_figures",
    "write_cache_entry",
    "write_summary",
]

SUMMARY_HEADER = "| figure | claim | paper | measured |\n|---|---|---|---|\n"


class FigureInputError(ValueError):
    """A user-input error of a figure run (unknown figure or preset, bad seed count, missing MNIST files).

    The command line prints these as one line and exits with status 2; any other exception is a bug and
    propagates with its traceback.
    """


class InlineExecutor(Executor):
    """Runs each task at once in the calling process (``--workers 1``; easy to debug and profile)."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:
            future.set_exception(err)
        return future


def available_figures() -> tuple[str, ...]:
    """Names of the figure scripts in ``theory/``, in the order of ``summary.md``."""
    from theory import FIGURES

    return FIGURES


def figure_module(name: str) -> Any:
    """Import ``theory.<name>``; an unknown name is a ``ValueError`` listing the valid ones."""
    valid = available_figures()
    if name not in valid:
        raise FigureInputError(f"unknown figure {name!r}; valid figures: {', '.join(valid)}")
    return importlib.import_module(f"theory.{name}")


def _source_digest(module: Any) -> str:
    digest = hashlib.sha256()
    import refreg

    root = Path(refreg.__file__).parent
    script = Path(module.__file__)
    # the script and theory's shared helpers (_common.py, _grokking.py, ...): a run's outcome can depend on any
    files = [*sorted(root.rglob("*.py")), script, *sorted(script.parent.glob("_*.py"))]
    for path in files:
        if not path.is_file():
            continue
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _is_dataclass_instance(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def cache_key(name: str, config: Any, source_digest: str) -> str:
    """sha256 of the figure name, the run's full configuration and the code that computes it.

    A frozen-dataclass ``config`` enters as its class name and the canonical JSON (sorted keys) of
    ``dataclasses.asdict(config)``: every field is part of the identity, so no list of keys is kept by hand.
    A plain dict ``config`` (the older protocol) enters as its sorted-key JSON.
    """
    if _is_dataclass_instance(config):
        payload = {
            "figure": name,
            "class": type(config).__name__,
            "config": dataclasses.asdict(config),
            "code": source_digest,
        }
    else:
        payload = {"figure": name, "config": config, "code": source_digest}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def timed_run(module_name: str, config: Any) -> dict:
    """Executed on a worker: import the figure module, run one config, return its result and wall time."""
    # one BLAS thread per run: the pool supplies the parallelism, and 2 busy pools on 2 cores would thrash
    module = importlib.import_module(module_name)
    start = time.perf_counter()
    result = pinned_run(module, config)
    seconds = time.perf_counter() - start
    # where it ran: versions, CPU, and the BLAS threads the run used (summary.md lists them): the runner's pin
    # of 1, or the count a run sets itself (the thread-check reruns: ``blas_threads`` in their config)
    if isinstance(config, dict):
        threads = config.get("blas_threads", 1)
    else:
        threads = getattr(config, "blas_threads", 1)
    return {"result": result, "seconds": seconds, "environment": environment(blas_threads=threads)}


def _write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


MAX_SEEDS = 1000
"""Most seeds per setting the runner accepts (the full presets use 3 to 5)."""


def _digest(outcome: Any) -> str:
    return hashlib.sha256(json.dumps(outcome, sort_keys=True).encode()).hexdigest()


def write_cache_entry(path: Path, outcome: Any) -> None:
    """Store a run's outcome with the sha256 of its canonical JSON, atomically (temporary name, rename).

    An entry that cannot be written is a :class:`FigureInputError` naming it (an unwritable ``--out``).
    """
    try:
        _write_json_atomic(path, {"sha256": _digest(outcome), "outcome": outcome})
    except OSError as err:
        raise FigureInputError(f"cannot write the cache entry {str(path)!r}: {err}") from None


def read_cache_entry(path: Path, log: Callable[[str], None] = print) -> Any | None:
    """The outcome stored at ``path`` if its hash verifies; ``None`` (recompute) if missing or corrupt."""
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
        if set(entry) == {"sha256", "outcome"} and entry["sha256"] == _digest(entry["outcome"]):
            return entry["outcome"]
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError):
        pass
    log(f"cache entry {str(path)!r} is corrupt or unreadable; recomputing it")
    return None


def _clean_temporaries(folder: Path) -> None:
    """Remove the ``.<name>*.tmp`` files an interrupted atomic write can leave behind."""
    if folder.is_dir():
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def check_outdir(outdir: Path) -> None:
    """``outdir`` is (or can be made) a writable folder; a :class:`FigureInputError` naming it otherwise."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=outdir):
            pass
    except OSError as err:
        raise FigureInputError(f"--out {str(outdir)!r} is not a writable folder: {err}") from None


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, unit="run", leave=False, file=sys.stderr)


def _field(config: Any, name: str) -> Any:
    if _is_dataclass_instance(config):
        return getattr(config, name, None)
    return config.get(name)


def with_mnist(preset: Any, mnist: str | os.PathLike | None) -> Any:
    """A copy of a preset (dict or frozen dataclass) with ``mnist`` set to the resolved folder, if given."""
    if _is_dataclass_instance(preset):
        names = {f.name for f in dataclasses.fields(preset)}
        if mnist is not None and "mnist" in names:
            return dataclasses.replace(preset, mnist=str(Path(mnist).resolve()))
        return preset
    config = dict(preset)
    if mnist is not None:
        config["mnist"] = str(Path(mnist).resolve())
    return config


def run_figures(
    names: Sequence[str] | None = None,
    *,
    preset: str = "quick",
    outdir: str | os.PathLike = "figures",
    seeds: int | None = None,
    executor: Executor | None = None,
    mnist: str | os.PathLike | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, dict]:
    """Run the figures ``names`` (all by default) and write their files and ``summary.md``.

    Returns ``{name: {"files", "rows", "runs", "cached", "seconds", "run_seconds"}}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    names = list(names) if names else list(available_figures())
    modules = {name: figure_module(name) for name in names}
    outdir = Path(outdir)
    if seeds is not None and (
        isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS
    ):
        raise FigureInputError(f"seeds must be an int in [1, {MAX_SEEDS}], got {seeds!r}")
    for name, module in modules.items():
        if preset not in module.PRESETS:
            raise FigureInputError(
                f"figure {name!r} has no preset {preset!r}; it has {sorted(module.PRESETS)}"
            )
    if mnist is not None:
        from refreg.data import mnist as load_mnist

        try:
            load_mnist(mnist)  # fails early, naming the files it looked for
        except (FileNotFoundError, ValueError) as err:
            raise FigureInputError(str(err)) from err
    check_outdir(outdir)
    _clean_temporaries(outdir)
    executor = executor or InlineExecutor()

    jobs: dict[Future, tuple[str, int, Path]] = {}
    plan: dict[str, dict] = {}
    start = time.perf_counter()
    for name, module in modules.items():
        config = with_mnist(module.PRESETS[preset], mnist)
        if (
            preset == "full"
            and getattr(module, "NEEDS_MNIST_FOR_FULL", False)
            and _field(config, "mnist") is None
        ):
            from refreg.mnist import MNIST_FILES

            files = ", ".join(f + "[.gz]" for f in MNIST_FILES.values())
            raise FigureInputError(
                f"the full preset of {name!r} runs on MNIST: pass --mnist PATH, a folder holding {files}"
            )
        runs = module.configs(config, seeds)
        digest = _source_digest(module)
        results: list[Any] = [None] * len(runs)
        cached = 0
        _clean_temporaries(outdir / ".cache" / name)
        for i, run_config in enumerate(runs):
            path = outdir / ".cache" / name / f"{cache_key(name, run_config, digest)}.json"
            results[i] = read_cache_entry(path, log)
            if results[i] is not None:
                cached += 1
            else:
                jobs[executor.submit(timed_run, module.__name__, run_config)] = (name, i, path)
        plan[name] = {
            "preset": config,
            "results": results,
            "cached": cached,
            "pending": len(runs) - cached,
        }

    bars = {name: _progress(len(p["results"]), name, progress) for name, p in plan.items()}
    summaries: dict[str, dict] = {}

    def finish(name: str) -> None:
        p = plan[name]
        module = modules[name]
        report = module.report(p["preset"], [r["result"] for r in p["results"]], outdir)
        run_seconds = sum(r["seconds"] for r in p["results"])
        summary = {
            "files": [str(f) for f in report.get("files", [])],
            "rows": report["rows"],
            "runs": len(p["results"]),
            "cached": p["cached"],
            "seconds": time.perf_counter() - start,
            "run_seconds": run_seconds,
        }
        recorded = [r.get("environment") for r in p["results"]]
        environments = _distinct([_comparable(e) for e in recorded if e is not None])
        _write_json_atomic(
            outdir / f"{name}.summary.json",
            {
                "rows": report["rows"],
                "preset": preset,
                "environments": environments,
                "runs_without_environment": sum(e is None for e in recorded),
            },
        )
        summaries[name] = summary
        if bars[name] is not None:
            bars[name].close()
        log(
            f"{name}: {summary['runs']} runs ({summary['cached']} cached, {run_seconds:.1f} s of compute), "
            f"done at {summary['seconds']:.1f} s"
        )

    for name, p in plan.items():
        if bars[name] is not None:
            bars[name].update(p["cached"])
        if p["pending"] == 0:
            finish(name)
    errors: list[BaseException] = []
    try:
        pending = set(jobs)
        while pending:
            # a timed wait: the main thread returns to Python every second, so a signal's handler runs within a
            # second even if the OS delivered the signal to one of the executor's threads (which does not wake an
            # untimed lock wait in the main thread)
            done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in sorted(
                done, key=lambda f: jobs[f][:2]
            ):  # a fixed order within one wake-up
                name, i, path = jobs[future]
                try:
                    outcome = future.result()
                except Exception as err:  # keep caching the runs that do finish, then raise
                    errors.append(err)
                    continue
                write_cache_entry(path, outcome)
                plan[name]["results"][i] = outcome
                plan[name]["pending"] -= 1
                if bars[name] is not None:
                    bars[name].update(1)
                if plan[name]["pending"] == 0:
                    finish(name)
    finally:
        for bar in bars.values():
            if bar is not None:
                bar.close()
    if errors:
        if len(errors) > 1:
            log(f"{len(errors)} runs failed; the first error follows, finished runs are cached")
        raise errors[0]
    write_summary(outdir)
    return summaries


def write_summary(outdir: str | os.PathLike) -> Path:
    """Rebuild ``summary.md`` from every ``<figure>.summary.json`` in ``outdir`` (in the figures' order)."""
    outdir = Path(outdir)
    lines = [
        "# Measured claims\n\n",
        "Generated by `python -m theory figures`; each row is a claim of a paper beside what refreg measured.\n\n",
        SUMMARY_HEADER,
    ]
    presets = set()
    summaries = {}
    for name in available_figures():
        path = outdir / f"{name}.summary.json"
        if not path.is_file():
            continue
        data = summaries[name] = json.loads(path.read_text())
        presets.add(data.get("preset"))
        for row in data["rows"]:
            cells = [
                str(row.get(k, "")).replace("|", "\\|").replace("\n", " ")
                for k in ("figure", "claim", "paper", "measured")
            ]
            lines.append("| " + " | ".join(cells) + " |\n")
    lines.insert(2, f"Preset: {', '.join(sorted(p for p in presets if p))}.\n\n")
    lines.insert(3, _environment_lines(summaries))
    target = outdir / "summary.md"
    outdir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=outdir, prefix=".summary.md", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write("".join(lines))
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target


def _comparable(env: dict) -> dict:
    """``env`` with its BLAS libraries in a fixed order and without OpenMP runtimes: threadpoolctl lists the
    libraries in load order, and an OpenMP runtime (not a BLAS) is loaded in some workers and not others."""
    blas = [b for b in env.get("blas", []) if b.get("internal_api") != "openmp"]
    return {
        **env,
        "blas": sorted(blas, key=lambda b: (str(b.get("internal_api")), str(b.get("version")))),
    }


def _distinct(items: list[Any]) -> list[Any]:
    """``items`` without repeats (compared as JSON), in first-seen order."""
    seen, out = set(), []
    for item in items:
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _environment_lines(summaries: dict[str, dict]) -> str:
    """summary.md's record of where the runs ran: each distinct environment with its figures."""
    figures: dict[str, list[str]] = {}
    missing = []
    for name, data in summaries.items():
        for env in data.get("environments", []):
            names = figures.setdefault(describe_environment(env), [])
            if name not in names:  # environments the one line does not tell apart
                names.append(name)
        if data.get("runs_without_environment", "all") != 0:
            missing.append(f"{name} ({data.get('runs_without_environment', 'all')} runs)")
    lines = [f"Ran on: {text} ({', '.join(names)}).\n" for text, names in figures.items()]
    if missing:
        lines.append(f"No environment recorded (cached before it was): {', '.join(missing)}.\n")
    return "".join(lines) + ("\n" if lines else "")


def local_executor(workers: int) -> Executor:
    """``workers`` processes (spawned, so each imports refreg afresh), or in-process for ``workers == 1``."""
    if workers == 1:
        return InlineExecutor()
    import multiprocessing

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def iter_figure_descriptions() -> Iterable[tuple[str, str, float]]:
    """``(name, description, quick pool seconds)`` of every figure, for ``python -m theory list``."""
    for name in available_figures():
        module = figure_module(name)
        yield name, module.DESCRIPTION, float(module.QUICK_SECONDS)
