"""The bad-input suite: every case raises its exception, names the argument, and changes nothing.

Cases live in ``tests/bad_input.py``; the README's Reliability section reports their number.
"""

from __future__ import annotations

import numpy as np
import pytest
from bad_input import CASES


def snapshot(tree):
    """Every array and scalar in ``tree`` as (path, type, dtype, shape, bytes), for a bitwise comparison."""
    out = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}[{k!r}]")
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
        elif isinstance(node, np.ndarray):
            out.append((path, type(node), node.dtype, node.shape, node.tobytes()))
        else:
            out.append((path, type(node), repr(node)))

    walk(tree, "")
    return out


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case):
    call, watched = case.make()
    before = snapshot(watched)
    with pytest.raises(case.exc) as info:
        call()
    assert case.names in str(info.value), f"message does not name {case.names!r}: {info.value}"
    assert snapshot(watched) == before, "the failed call changed its arguments"
