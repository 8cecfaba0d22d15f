"""PORTING.md's plain-Python checker runs as printed, passes a faithful port and catches an unfaithful one."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _checker() -> dict:
    text = (ROOT / "PORTING.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    code_lines = [line for line in block.splitlines() if line.strip()]
    assert len(code_lines) <= 25, "the example should stay about 20 lines"
    namespace: dict = {}
    exec(compile(block, "PORTING.md", "exec"), namespace)
    return namespace


def _soft_threshold_port(swap_axes=False):
    """A pure-Python port of group_soft_threshold from PORTING.md section 4 (``swap_axes``: the layout bug)."""

    def run(h, inputs):
        z = inputs["z"]
        rows, cols = z["shape"]
        data = [float(v) for v in z["data"]]
        tau, axis = h["tau"], (1 - h["axis"]) if swap_axes else h["axis"]
        out = list(data)
        groups = (
            [[i * cols + j for i in range(rows)] for j in range(cols)]
            if axis == 0
            else [[i * cols + j for j in range(cols)] for i in range(rows)]
        )
        for idx in groups:
            n = math.sqrt(sum(data[k] * data[k] for k in idx))
            for k in idx:
                out[k] = data[k] * (1.0 - tau / n) if n > tau else 0.0
        return {"out": {"dtype": "float64", "shape": [rows, cols], "data": out}}

    return run


def test_porting_example_passes_a_faithful_port(monkeypatch):
    monkeypatch.chdir(ROOT)
    _checker()["check"]("pathprox.group_soft_threshold", _soft_threshold_port())


def test_porting_example_catches_a_layout_error(monkeypatch):
    """Thresholding rows where the op asks for columns (the (out, in) vs (in, out) trap) fails the check."""
    monkeypatch.chdir(ROOT)
    wrong = _soft_threshold_port(swap_axes=True)
    with pytest.raises(AssertionError, match=r"axis0_tau0\.5"):
        _checker()["check"]("pathprox.group_soft_threshold", wrong)


def test_porting_links_and_names_resolve():
    """Every relative link of PORTING.md exists, and every ``refreg.…`` name it cites can be imported."""
    import importlib

    text = (ROOT / "PORTING.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
    for dotted in sorted(set(re.findall(r"`(refreg(?:\.\w+)+)", text))):
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for attr in parts[i:]:
                obj = getattr(obj, attr)
            break
        else:
            raise AssertionError(dotted)
