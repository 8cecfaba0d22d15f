"""A/B of CPR's R inside Adam's pass: the donated AdamCPR step over Adam's, on the tree it is run from.

Run it from inside each tree, so that ``refreg`` and ``bench`` are that tree's (``python -m`` and ``-c`` put the
current directory first, docs/performance.md "How these numbers were taken")::

    cd <tree> && PYTHONPATH=. python <this checkout>/bench/cpr_sum_ab.py > result.json

It prints one JSON object of medians in µs: the compiled Adam loop alone and with R (``kernel <n>``, warm), and
the donated Adam and AdamCPR steps on the 784-300-100-10 MLP (warm, and "cold": a 40 MB buffer is written
before every step, as a forward and backward pass would) and on the 12.1M-parameter BIG_SIZES MLP. Variants are
interleaved in seeded random order (as :func:`bench.harness.compare`). Session 7 ran it on 65f3716 and on the
new code in alternating processes, three pairs: ``bench/session7/ab/``, summarised in docs/performance.md
("Fourth follow-up").
"""

import json
import random
import statistics
import sys
import time

import numpy as np

# 10M float32 (40 MB), written before a "cold" step: evicts the caches as a forward and backward pass would
_FLUSH = np.ones(10_000_000, np.float32)


def interleave(variants: dict, rounds: int, flush: bool = False) -> dict:
    """Median µs of each variant over ``rounds`` rounds, each round every variant once in a seeded order."""
    times = {k: [] for k in variants}
    for fn in variants.values():
        fn()
    order = random.Random(0)
    for _ in range(rounds):
        for key in order.sample(list(variants), len(variants)):
            if flush:
                _FLUSH.__imul__(np.float32(1.0))
            start = time.perf_counter()
            variants[key]()
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) * 1e6 for k, v in times.items()}


def donated_steps(params: dict, grads: dict, rounds: int, flush: bool) -> dict:
    """Donated Adam and AdamCPR (κ = 0.9·R(θ₀)) steps, each on its own copy of ``params``."""
    import refreg
    from refreg.cpr import adam_cpr

    opts = {
        "adam": refreg.adam(1e-3),
        "cpr": adam_cpr(1e-3, kappa_init="dependent", kappa_init_param=0.9),
    }
    own = {k: {n: v.copy() for n, v in params.items()} for k in opts}
    state = {k: o.init(own[k]) for k, o in opts.items()}

    def step(k):
        def run():
            own[k], state[k] = opts[k].update(grads, state[k], own[k], donate=True)

        return run

    return interleave({k: step(k) for k in opts}, rounds, flush)


def main() -> dict:
    import refreg
    from bench.benchmarks import big_params
    from refreg.nn import MLP
    from refreg.optim import _accel
    from refreg.optim.kernels import AdamStepCoefficients

    print(refreg.__file__, file=sys.stderr)  # which tree is measured
    out = {}
    c = AdamStepCoefficients(
        None, 0.0, 0.1, 0.999, float(np.sqrt(1 - 0.999**10)), 1e-8, 1e-3 / (1 - 0.9**10)
    )
    rng = np.random.default_rng(1)
    for n in (235200, 12_100_000):
        p, g = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
        m = (rng.standard_normal(n) * 0.1).astype(np.float32)
        v = (np.abs(rng.standard_normal(n)) * 0.01).astype(np.float32)
        arrays = (p, g, m, v)  # bound now: the loop rebinds the names
        loops = {
            "adam": lambda a=arrays: _accel.adam_step_in_place(c, *a),
            "adam_sum": lambda a=arrays: _accel.adam_step_square_sum_in_place(c, *a),
        }
        out[f"kernel {n}"] = interleave(loops, 200 if n < 1e6 else 40)
    params = MLP([784, 300, 100, 10]).init(rng=0, dtype="float32")
    grads = {k: (0.01 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in params.items()}
    out["step 0.27M warm"] = donated_steps(params, grads, 300, False)
    out["step 0.27M cold"] = donated_steps(params, grads, 300, True)
    big, big_grads = big_params()
    out["step 12.1M"] = donated_steps(big, big_grads, 40, False)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
