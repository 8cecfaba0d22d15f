"""The ``refreg`` command line: regenerate the theory figures and result tables.

refreg figures [NAME ...] [--preset quick|full] [--out figures/] [--seeds N] [--workers N]
               [--executor local|dask] [--scheduler ADDRESS] [--mnist PATH]
refreg list
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {value}")
    return value


def _list(args: argparse.Namespace) -> int:
    from refreg.runner import iter_figure_descriptions

    for name, description, seconds in iter_figure_descriptions():
        print(f"{name:<22} ~{seconds:4.0f} core-s (quick)  {description}")
    return 0


def _dask_executor(address: str | None):
    try:
        from distributed import Client
    except ImportError:
        raise RuntimeError(
            "--executor dask needs the dask extra: pip install 'refreg[dask]'"
        ) from None
    if not address:
        raise ValueError("--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as err:
        raise ConnectionError(f"cannot reach the Dask scheduler at {address!r}: {err}") from None
    return client, client.get_executor()


def _figures(args: argparse.Namespace) -> int:
    from refreg.runner import figure_module, local_executor, run_figures

    for name in args.names:
        figure_module(name)  # unknown names fail before any work starts
    if args.mnist is not None and not os.path.isdir(args.mnist):
        raise FileNotFoundError(f"--mnist {args.mnist!r} is not a folder")
    client = None
    if args.executor == "dask":
        client, executor = _dask_executor(args.scheduler)
    else:
        if args.scheduler:
            raise ValueError("--scheduler is only used with --executor dask")
        executor = local_executor(args.workers)
    start = time.perf_counter()
    try:
        summaries = run_figures(
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


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    from refreg import MLP, adamw, data, training

    ds = data.digits(rng=0)
    net = MLP([64, 64, 10])
    params = net.init(rng=0)
    opt = adamw(lr=1e-3)
    state = opt.init(params)
    gen = np.random.default_rng(0)
    for epoch in range(args.epochs):
        params, state, loss = training.train_epoch(
            net, opt, params, state, ds.x_train, ds.y_train, 64, gen
        )
        _, acc = training.evaluate(net, params, ds.x_test, ds.y_test)
        print(f"epoch {epoch + 1:3d}  train loss {loss:.4f}  test accuracy {acc:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``refreg`` command (subcommands figures, list, demo)."""
    parser = argparse.ArgumentParser(
        prog="refreg", description="refreg: theory figures and result tables"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fig = sub.add_parser("figures", help="regenerate theory figures, result tables and summary.md")
    fig.add_argument(
        "names", nargs="*", metavar="NAME", help="figures to run (default: all; see `refreg list`)"
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
    demo = sub.add_parser("demo", help="train a small MLP on the bundled digits and print its loss")
    demo.add_argument("--epochs", type=_positive_int, default=5)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input prints ``refreg: error: ...`` and returns 2 (no traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, ConnectionError, RuntimeError) as err:
        print(f"refreg: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("refreg: interrupted; finished runs are cached and a re-run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
