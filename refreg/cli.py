"""The ``refreg`` command line (placeholder until the figures runner lands)."""

from __future__ import annotations

import argparse
import sys


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refreg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small MLP on the bundled digits and print its loss")
    demo.add_argument("--epochs", type=int, default=5)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
