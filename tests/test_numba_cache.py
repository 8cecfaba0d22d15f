"""Every optional numba kernel loads from numba's disk cache in a new process (skipped without numba).

numba keys a cached function on the pickled values of its closure; a kernel that holds another compiled
function or an intrinsic in a closure pickles differently in every process, so it was recompiled in every
process (0.3–1.5 s each, in every worker of the figure runner) and added an entry to the cache each time. The
second of two identical processes must load everything and compile nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba", reason="numba (the optional 'fast' extra) is not installed")

ROOT = Path(__file__).resolve().parents[1]

# one call of every kernel: Adam (in place, into new arrays, with R), R alone, the spatial entropy, PathProx
CALLS = """
import numpy as np
from refreg import MLP, _numba
from refreg.optim import _accel
from refreg.optim.kernels import AdamStepCoefficients
from refreg.pathprox import _accel as pathprox_kernels
from refreg.pathprox import pair_groups, pathprox
from refreg.sparse import penalty

assert _numba.enabled()
c = AdamStepCoefficients(None, 0.0, 0.1, 0.999, 0.3, 1e-8, 0.01)
for dtype in (np.float32, np.float64):
    x = np.linspace(-1, 1, 300).astype(dtype)
    _accel.square_sum(x)
    _accel.adam_step(c, x, x, x, np.abs(x))
    _accel.adam_step_in_place(c, x.copy(), x, x.copy(), np.abs(x))
    _accel.adam_step_square_sum_in_place(c, x.copy(), x, x.copy(), np.abs(x))
    net = MLP([6, 5, 3])
    params = net.init(rng=0, dtype=np.dtype(dtype).name)
    penalty(params, "spatial_entropy", 1e-3)
    opt = pathprox(0.1, 1e-3, groups=pair_groups(net))
    grads = {k: np.ones_like(v) for k, v in params.items()}
    opt.update(grads, opt.init(params), params)
    W = np.ones((4, 3), dtype)
    pathprox_kernels.gradient_step(W, W, 0.1, None)
    pathprox_kernels.gradient_step(W, W, 0.1, 1e-3)
    pathprox_kernels.scale_rows(W, np.ones(4, dtype))
    pathprox_kernels.scale_cols(W, np.ones(3, dtype))

# every compiled function that ran, and the signatures the disk cache did not have
import json
import sys
from numba.core.registry import CPUDispatcher

modules = [m for name, m in list(sys.modules.items()) if name.startswith("refreg")]
dispatchers = {id(d): d for m in modules for d in vars(m).values() if isinstance(d, CPUDispatcher)}
from refreg.optim import _accel as optim_accel
from refreg.pathprox import _accel as pathprox_accel
from refreg.sparse import _accel as sparse_accel
for accel in (optim_accel, pathprox_accel, sparse_accel):
    dispatchers.update({id(d): d for d in accel._kernels().values()})
ran = {d.py_func.__qualname__: [str(s) for s in d.stats.cache_misses] for d in dispatchers.values()
       if d.signatures}
print("STATS " + json.dumps(ran))
"""


def _run(debug: bool) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), REFREG_NUMBA="1")
    if debug:
        env["NUMBA_DEBUG_CACHE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", CALLS], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


def test_every_kernel_loads_from_the_disk_cache_in_a_new_process():
    _run(debug=False)  # compiles what the cache lacks (a fresh checkout)
    log = _run(debug=True)
    saved = sorted({line.split("'")[1] for line in log.splitlines() if "saved to" in line})
    assert not saved, f"recompiled in a second process: {[Path(p).name for p in saved]}"
    stats = json.loads(next(line[6:] for line in log.splitlines() if line.startswith("STATS ")))
    expected = {"adam", "adam_out", "adam_square_sum", "square_sum"}  # refreg.optim._loops
    expected |= {
        f"_build.<locals>.{k}" for k in ("max_bits", "abs_scaled", "outer_sign")
    }  # entropy
    expected |= {
        f"_build.<locals>.{k}" for k in ("step", "decayed_step", "scale_rows", "scale_cols")
    }
    assert expected <= set(stats), sorted(expected - set(stats))  # every kernel ran
    missed = {name: sigs for name, sigs in stats.items() if sigs}
    assert not missed, (
        f"compiled, not loaded, in a second process: {missed}"
    )  # also an uncached kernel
