"""Every figure script follows the protocol that `python -m theory figures` drives (theory/__init__.py)."""

from __future__ import annotations

import dataclasses
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
        config = figure.PRESETS[preset]
        configs = figure.configs(config if dataclasses.is_dataclass(config) else dict(config), None)
        assert configs
        for c in configs:
            if dataclasses.is_dataclass(c):
                assert c.__dataclass_params__.frozen and hasattr(c, "seed")
                c = dataclasses.asdict(c)
            assert "seed" in c
            json.dumps(c)  # JSON-able: hashed for the cache, sent to workers
    assert callable(figure.run) and callable(figure.report) and callable(figure.main)
