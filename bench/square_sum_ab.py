"""A/B of the compiled R = Σθ² alone: ``refreg.optim._accel.square_sum`` beside ``np.add.reduce``, on the tree it is run from.

Run it from inside each tree, so that ``refreg`` is that tree's (docs/performance.md "How these numbers were
taken")::

    cd <tree> && PYTHONPATH=. python <this checkout>/bench/square_sum_ab.py > result.json

It prints one JSON object: for float32 arrays of 235,200 (the MLP's W, in cache), 1M, 4M and 12.1M elements
(read from memory), the median µs of ``square_sum`` and of ``np.add.reduce`` on the same array, alternating
call by call. Session 8 ran it on 6195000 (four leaves summed at once) and on the next commit (one leaf at a
time), alternating processes, three pairs: ``bench/session8/sum_ab/``, summarised in docs/performance.md
("Fifth follow-up").
"""

import json
import statistics
import sys
import time

import numpy as np

import refreg
from refreg.optim import _accel

print(refreg.__file__, file=sys.stderr)
rng = np.random.default_rng(0)
out = {}
for n in (235_200, 1_000_000, 4_000_000, 12_100_000):
    w = rng.standard_normal(n).astype(np.float32)
    assert _accel.square_sum(w) == np.sum(w * w)
    rounds = 2000 if n < 1e6 else 200
    a, b = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        _accel.square_sum(w)
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        np.add.reduce(w)
        b.append(time.perf_counter() - t)
    out[n] = {"square_sum": statistics.median(a) * 1e6, "np.add.reduce": statistics.median(b) * 1e6}
print(json.dumps(out))
