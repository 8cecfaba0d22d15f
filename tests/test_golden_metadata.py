"""Every golden ``.npz`` describes itself: a ``metadata`` JSON member readable without the generator scripts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.npz"))
REQUIRED = (
    "description",
    "generator",
    "model",
    "loss",
    "data",
    "batch_order",
    "recorded",
    "versions",
)


def test_there_are_golden_files():
    assert len(FILES) >= 9


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_golden_file_carries_its_metadata(path):
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["metadata"]))
    missing = [k for k in REQUIRED if not meta.get(k)]
    assert not missing, f"{path.name}: metadata lacks {missing}"
    assert meta["versions"]["torch"].startswith("2.13.0")
    assert (GOLDEN.parent.parent / meta["generator"]).is_file()
    if path.stem.startswith("cpr_"):
        assert meta["versions"]["pytorch-cpr"] == "0.3.1"
        assert "AdamCPR" in meta["optimizer"]
