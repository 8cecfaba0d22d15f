"""What every figure script's tiny-preset test checks: files written, expected columns, summary rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

SUMMARY_KEYS = {"figure", "claim", "paper", "measured"}


def run_tiny(figure: Any, outdir: Path, columns: tuple[str, ...]) -> tuple[dict, dict]:
    """Run ``figure.main`` on the tiny preset; check PNG/SVG/CSV/JSON, CSV columns and summary rows."""
    out = figure.main(outdir, preset="tiny")
    for suffix in ("png", "svg", "csv", "json"):
        path = outdir / f"{figure.NAME}.{suffix}"
        assert path.is_file() and path.stat().st_size > 0, path
    with open(outdir / f"{figure.NAME}.csv") as f:
        header = next(csv.reader(f))
    assert set(columns) <= set(header), header
    assert out["rows"] and all(set(r) == SUMMARY_KEYS for r in out["rows"])
    return out, json.loads((outdir / f"{figure.NAME}.json").read_text())
