"""The benchmark harness's bookkeeping (no timing is asserted: speed is measured in bench/, not in tests)."""

from __future__ import annotations

import json

import pytest

from bench.harness import compare, machine_info, markdown_table, write_results


def test_compare_interleaves_and_reports_ratios(tmp_path):
    order = []
    result = compare(
        "toy",
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        "a",
        repeats=3,
        warmup=1,
    )
    # warm-up a, b; then three rounds, each running a and b once, in seeded orders that repeat on a rerun
    assert order[:2] == ["a", "b"] and len(order) == 8
    rounds = [order[i : i + 2] for i in range(2, 8, 2)]
    assert all(sorted(r) == ["a", "b"] for r in rounds)
    again = []
    compare(
        "toy",
        {"a": lambda: again.append("a"), "b": lambda: again.append("b")},
        "a",
        repeats=3,
        warmup=1,
    )
    assert again == order
    assert set(result.medians) == {"a", "b"} and set(result.ratios) == {"b"}
    lo, hi = result.spread["b"]
    assert 0 < lo <= hi
    info = machine_info()
    write_results([result], tmp_path / "r.json", tmp_path / "r.md", info)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["benchmarks"][0]["name"] == "toy"
    assert "| toy | b |" in markdown_table([result], info)


def test_compare_rejects_an_unknown_baseline():
    with pytest.raises(ValueError, match="baseline must be one of"):
        compare("toy", {"a": lambda: None}, "z")


def test_only_runs_the_named_benchmarks_and_rejects_unknown_names(monkeypatch, tmp_path, capsys):
    from bench import __main__ as cli
    from bench import benchmarks
    from bench.harness import Comparison

    ran = []

    def case(name):
        def run():
            ran.append(name)
            return Comparison(name, "a", {"a": 1.0}, {"a": 1.0}, {"a": (1.0, 1.0)}, 1)

        return run

    monkeypatch.setattr(benchmarks, "cases", lambda quick: [(n, case(n)) for n in ("x", "y", "z")])
    assert cli.main(["--only", "y", "z", "--out", str(tmp_path)]) == 0
    assert ran == ["y", "z"] and (tmp_path / "results.md").exists()
    with pytest.raises(SystemExit):
        cli.main(["--only", "w", "--out", str(tmp_path)])
    assert "unknown benchmark(s) ['w']" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # never over the committed full table
        cli.main(["--only", "y"])
    assert "--only needs --out" in capsys.readouterr().err and ran == ["y", "z"]
