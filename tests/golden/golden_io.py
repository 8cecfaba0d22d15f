"""Shared by the golden scripts: versions, and writing a golden ``.npz`` with its ``metadata`` member.

``--metadata-only`` (``python make_cpr_golden.py --metadata-only``) recomputes every array, checks it against the
stored file (same members, float arrays within 1e-12), and rewrites the file with the *stored* arrays and fresh
metadata, recording the largest difference of the recomputation. Float64 results of torch differ in the last
bits between CPUs (its kernels are chosen per SIMD extension), so the committed arrays stay the reference.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path

import numpy as np
import torch


def versions() -> dict:
    out = {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}
    try:
        out["pytorch-cpr"] = importlib.metadata.version("pytorch-cpr")
    except importlib.metadata.PackageNotFoundError:
        pass
    return out


def save(path: Path, arrays: dict, metadata: dict, metadata_only: bool) -> None:
    """Write ``arrays`` plus ``metadata`` (a JSON string member), or only refresh the metadata (see above)."""
    metadata = dict(metadata)
    if metadata_only:
        with np.load(path, allow_pickle=False) as f:
            stored = {k: f[k] for k in f.files if k != "metadata"}
        assert set(stored) == set(arrays), sorted(set(stored) ^ set(arrays))
        worst = 0.0
        for k, v in stored.items():
            if v.dtype.kind == "f":
                worst = max(worst, float(np.max(np.abs(v - arrays[k]), initial=0.0)))
            elif v.dtype.kind in "iu":
                assert np.array_equal(v, arrays[k]), k
        assert worst <= 1e-12, f"{path.name}: recomputed arrays differ by {worst}"
        metadata["recomputed"] = (
            f"recomputing every array with the versions above on a CPU with torch capability "
            f"{torch.backends.cpu.get_cpu_capability()} gives max |difference| {worst:.3g} from the stored "
            "arrays (last-bit differences of torch's CPU kernels); the stored arrays are the reference"
        )
        arrays = stored
    np.savez_compressed(path, **arrays, metadata=np.array(json.dumps(metadata)))
