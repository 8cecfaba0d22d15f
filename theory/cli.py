"""The figures command line: ``python -m theory figures`` regenerates the figures and result tables.

python -m theory figures [NAME ...] [--preset tiny|quick|standard|full] [--out figures/] [--seeds N] [--workers N]
                         [--executor local|dask] [--scheduler ADDRESS] [--mnist PATH] [--no-progress]
python -m theory list

It runs from a checkout of the repository (the wheel installs only the library, ``refreg``). Errors in the
user's input (an unknown figure, a missing MNIST folder, an unreachable scheduler, an unwritable ``--out``,
an absurd ``--seeds``) print one line and exit with status 2; any other exception is a bug in refreg or a
figure script and propagates with its traceback. SIGINT (status 130) and SIGTERM (143) stop the worker
processes before exiting; finished runs stay cached.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import NoReturn

from theory import runner
from theory.runner import FigureInputError

PROG = "python -m theory"


def _int_in(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an int in [{low}, {high}], got {value}")
        return value

    return parse


_positive_int = _int_in(1, 10**6)


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception in the main thread so that the workers are stopped on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def _stop_workers(executor: object, preexisting: frozenset = frozenset()) -> None:
    """Terminate a process pool's workers now (an interrupted run must not leave them computing).

    Besides the pool's worker table, every child process started since the pool was made (``preexisting``
    are the caller's own, left alone): a signal that lands while the pool is still spawning a worker leaves one
    that the table does not list yet, and the interpreter's exit would wait for it.
    """
    table = getattr(executor, "_processes", None)
    if table is None:  # no process pool (--workers 1): nothing to stop
        executor.shutdown(wait=False, cancel_futures=True)
        return
    processes = list(table.values())
    processes += [
        p for p in multiprocessing.active_children() if p not in processes and p not in preexisting
    ]
    for proc in processes:
        proc.terminate()
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


def _list(args: argparse.Namespace) -> int:
    for name, description, seconds in runner.iter_figure_descriptions():
        print(f"{name:<22} ~{seconds:4.0f} core-s (quick)  {description}")
    return 0


def _dask_executor(address: str | None):
    try:
        from distributed import Client
    except ImportError:
        raise FigureInputError(
            "--executor dask needs the dask extra: pip install -e '.[dask]'"
        ) from None
    if not address:
        raise FigureInputError(
            "--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)"
        )
    try:
        client = Client(address, timeout="10s")
    except (ValueError, TypeError) as err:  # a malformed address: a usage error, not a traceback
        raise FigureInputError(
            f"--scheduler {address!r} is not a Dask scheduler address: {err}"
        ) from None
    except (OSError, TimeoutError) as err:
        raise ConnectionError(f"cannot reach the Dask scheduler at {address!r}: {err}") from None
    return client, client.get_executor()


def _figures(args: argparse.Namespace) -> int:
    for name in args.names:
        runner.figure_module(name)  # unknown names fail before any work starts
    if args.mnist is not None and not os.path.isdir(args.mnist):
        raise FigureInputError(f"--mnist {args.mnist!r} is not a folder")
    client = None
    preexisting = frozenset(
        multiprocessing.active_children()
    )  # the caller's own children: not ours to stop
    if args.executor == "dask":
        client, executor = _dask_executor(args.scheduler)
    else:
        if args.scheduler:
            raise FigureInputError("--scheduler is only used with --executor dask")
        executor = runner.local_executor(args.workers)
    start = time.perf_counter()
    try:
        summaries = runner.run_figures(
            args.names,
            preset=args.preset,
            outdir=args.out,
            seeds=args.seeds,
            executor=executor,
            mnist=args.mnist,
            progress=not args.no_progress,
        )
    except BaseException:
        _stop_workers(executor, preexisting) if client is None else client.close()
        raise
    executor.shutdown(wait=True) if client is None else client.close()
    print(
        f"{len(summaries)} figure(s) in {time.perf_counter() - start:.1f} s; table: {os.path.join(args.out, 'summary.md')}"
    )
    return 0


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is the one line ``prog: error: message`` (exit 2) without the usage block,
    like every other input error of this command (module docstring); ``--help`` still shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python -m theory`` (subcommands figures, list)."""
    parser = _OneLineParser(prog=PROG, description="refreg's theory figures and result tables")
    sub = parser.add_subparsers(dest="command", required=True)
    fig = sub.add_parser("figures", help="regenerate theory figures, result tables and summary.md")
    fig.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"figures to run (default: all; see `{PROG} list`)",
    )
    fig.add_argument("--preset", default="quick", choices=["tiny", "quick", "standard", "full"])
    fig.add_argument("--out", default="figures", help="output folder (default: figures/)")
    fig.add_argument(
        "--seeds",
        type=_int_in(1, runner.MAX_SEEDS),
        default=None,
        help="seeds per setting (default: the preset's)",
    )
    fig.add_argument(
        "--workers", type=_int_in(1, 256), default=os.cpu_count() or 1, help="local processes"
    )
    fig.add_argument("--executor", default="local", choices=["local", "dask"])
    fig.add_argument(
        "--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786"
    )
    fig.add_argument(
        "--mnist", default=None, help="folder with the four MNIST IDX files (full preset)"
    )
    fig.add_argument("--no-progress", action="store_true", help="no progress bars")
    fig.set_defaults(func=_figures)
    lst = sub.add_parser("list", help="list the figures")
    lst.set_defaults(func=_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input prints ``python -m theory: error: ...`` and returns 2 (no traceback)."""
    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        return args.func(args)
    except (FigureInputError, ConnectionError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(
            f"{PROG}: {'terminated' if isinstance(err, Terminated) else 'interrupted'}; "
            "finished runs are cached and a re-run resumes",
            file=sys.stderr,
        )
        return 128 + (err.signum if isinstance(err, Terminated) else signal.SIGINT)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
