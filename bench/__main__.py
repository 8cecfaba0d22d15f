"""Run every benchmark: ``python -m bench [--quick] [--only NAME ...]``."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from bench import benchmarks
from bench.harness import machine_info, markdown_table, write_results

HERE = Path(__file__).parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a one-minute run (fewer repeats and cases)"
    )
    parser.add_argument("--out", default=str(HERE), help="folder for results.json and results.md")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only these benchmarks (names as printed)"
    )
    args = parser.parse_args(argv)
    # pytorch-cpr 0.3.1 calls a deprecated torch helper on every step; one warning per call would drown the output
    warnings.filterwarnings("ignore", message=".*is_compiling.*")
    start = time.perf_counter()
    results = []
    cases = benchmarks.cases(args.quick)
    if args.only:
        if args.out == str(
            HERE
        ):  # bench/results.md is the README's full table: a subset goes elsewhere
            parser.error("--only needs --out DIR (the default folder holds the full run's table)")
        names = [name for name, _ in cases]
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"--only: unknown benchmark(s) {unknown}; choose from {names}")
        cases = [(name, case) for name, case in cases if name in args.only]
    for name, case in cases:
        t0 = time.perf_counter()
        outcome = case()
        if outcome is None:
            print(f"{name}: skipped", file=sys.stderr)
            continue
        results.append(outcome)
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    info = machine_info()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_results(results, out / "results.json", out / "results.md", info)
    print(markdown_table(results, info))
    print(
        f"total {time.perf_counter() - start:.1f} s; wrote {out / 'results.json'}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
