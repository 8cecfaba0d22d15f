"""Every figure script follows the protocol that `refreg figures` drives (theory/__init__.py)."""

from __future__ import annotations

import importlib
import json

import pytest

from theory import FIGURES


@pytest.mark.parametrize("name", FIGURES)
def test_figure_script_follows_the_protocol(name):
    figure = importlib.import_module(f"theory.{name}")
    assert figure.NAME == name
    assert {"tiny", "quick", "full"} <= set(figure.PRESETS)
    assert isinstance(figure.DESCRIPTION, str) and figure.DESCRIPTION
    assert figure.QUICK_SECONDS > 0
    for preset in ("tiny", "quick"):
        configs = figure.configs(dict(figure.PRESETS[preset]), None)
        assert configs and all("seed" in c for c in configs)
        json.dumps(configs)  # JSON-able: hashed for the cache, sent to workers
    assert callable(figure.run) and callable(figure.report) and callable(figure.main)
