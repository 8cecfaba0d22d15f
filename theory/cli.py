"""The figures command line: ``python -m theory figures`` regenerates the figures and result tables.

python -m theory figures [NAME ...] [--preset tiny|quick|full] [--out figures/] [--seeds N] [--workers N]
                         [--executor local|dask] [--scheduler ADDRESS] [--mnist PATH] [--no-progress]
python -m theory list

It runs from a checkout of the repository (the wheel installs only the library, ``refreg``). Errors in the
user's input (an unknown figure, a missing MNIST folder, an unreachable scheduler) print one line and exit
with status 2; any other exception is a bug in refreg or a figure script and propagates with its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from theory import runner
from theory.runner import FigureInputError

PROG = "python -m theory"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {value}")
    return value


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
    except (OSError, TimeoutError) as err:
        raise ConnectionError(f"cannot reach the Dask scheduler at {address!r}: {err}") from None
    return client, client.get_executor()


def _figures(args: argparse.Namespace) -> int:
    for name in args.names:
        runner.figure_module(name)  # unknown names fail before any work starts
    if args.mnist is not None and not os.path.isdir(args.mnist):
        raise FigureInputError(f"--mnist {args.mnist!r} is not a folder")
    client = None
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
    finally:
        executor.shutdown(wait=True, cancel_futures=True) if client is None else client.close()
    print(
        f"{len(summaries)} figure(s) in {time.perf_counter() - start:.1f} s; table: {os.path.join(args.out, 'summary.md')}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python -m theory`` (subcommands figures, list)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="refreg's theory figures and result tables"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fig = sub.add_parser("figures", help="regenerate theory figures, result tables and summary.md")
    fig.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"figures to run (default: all; see `{PROG} list`)",
    )
    fig.add_argument("--preset", default="quick", choices=["tiny", "quick", "full"])
    fig.add_argument("--out", default="figures", help="output folder (default: figures/)")
    fig.add_argument(
        "--seeds",
        type=_positive_int,
        default=None,
        help="seeds per setting (default: the preset's)",
    )
    fig.add_argument(
        "--workers", type=_positive_int, default=os.cpu_count() or 1, help="local processes"
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
    try:
        return args.func(args)
    except (FigureInputError, ConnectionError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"{PROG}: interrupted; finished runs are cached and a re-run resumes", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
