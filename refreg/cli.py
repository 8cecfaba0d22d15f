"""The ``refreg`` command line: a demo that trains a small MLP on scikit-learn's bundled digits.

The digits need scikit-learn (the ``figures`` or ``test`` extra); without it the demo prints that in one
line and exits with status 2.

refreg demo [--epochs N]

The theory figures are regenerated from a checkout of the repository with ``python -m theory figures``
(the figure scripts and their runner live in ``theory/``, which the library never imports).
"""

from __future__ import annotations

import argparse
import sys


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {value}")
    return value


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    from refreg import MLP, adamw, data, training

    try:
        ds = data.digits(rng=0)
    except ImportError as error:  # scikit-learn is an extra: one line of advice, not a traceback
        print(f"refreg demo: error: {error}", file=sys.stderr)
        return 2
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
    """The argparse parser of the ``refreg`` command (subcommand demo)."""
    parser = argparse.ArgumentParser(
        prog="refreg",
        description="refreg: reference implementations of CPR, a sparse regularizer and PathProx",
        epilog="The theory figures: `python -m theory figures` from a checkout of the repository.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small MLP on the bundled digits and print its loss")
    demo.add_argument("--epochs", type=_positive_int, default=5)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad arguments exit with status 2 through argparse."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["figures"], ["list"]):
        # the figure runner lives with the figure scripts, which the library does not import
        print(
            f"refreg: error: the figures moved to theory/: run `python -m theory {argv[0]}` from a checkout",
            file=sys.stderr,
        )
        return 2
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
