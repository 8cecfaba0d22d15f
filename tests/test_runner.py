"""The figures runner and CLI: caching, resume, executors (inline, process pool, Dask), bad input."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import numpy as np
import pytest

from theory import cli, runner

FAKE = textwrap.dedent(
    """
    import json
    from pathlib import Path

    NAME = "fakefig"
    DESCRIPTION = "a fake figure for the runner tests"
    QUICK_SECONDS = 0.1
    PRESETS = {"tiny": {"n": 4, "seeds": 2}, "quick": {"n": 4, "seeds": 2}, "full": {"n": 4, "seeds": 2}}
    CALLS = []
    FAIL_AT = set()


    def configs(preset, seeds):
        return [{"i": i, "seed": s} for s in range(seeds or preset["seeds"]) for i in range(preset["n"])]


    def run(config):
        CALLS.append(config)
        if (config["i"], config["seed"]) in FAIL_AT:
            raise RuntimeError("interrupted")
        import numpy as np

        value = float(np.random.default_rng(config["seed"] * 100 + config["i"]).standard_normal())
        return {"i": config["i"], "seed": config["seed"], "value": value}


    def report(preset, results, outdir):
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / "fakefig.json").write_text(json.dumps(results))
        total = sum(r["value"] for r in results)
        return {"files": [str(outdir / "fakefig.json")],
                "rows": [{"figure": "fakefig", "claim": "sum", "paper": "n/a", "measured": f"{total:.6f}"}]}
    """
)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepkg"
    pkg.mkdir()
    (pkg / "fakefig.py").write_text(FAKE)
    monkeypatch.syspath_prepend(str(pkg))
    sys.modules.pop("fakefig", None)
    module = importlib.import_module("fakefig")
    monkeypatch.setattr(runner, "available_figures", lambda: ("fakefig",))
    monkeypatch.setattr(
        runner, "figure_module", lambda name: module if name == "fakefig" else _unknown(name)
    )
    yield module
    sys.modules.pop("fakefig", None)


def _unknown(name):
    raise ValueError(f"unknown figure {name!r}; valid figures: fakefig")


def test_runs_write_summary_and_cached_reruns_compute_nothing(fake, tmp_path):
    out = tmp_path / "out"
    first = runner.run_figures(
        ["fakefig"], preset="tiny", outdir=out, progress=False, log=lambda s: None
    )
    assert len(fake.CALLS) == 8 and first["fakefig"]["cached"] == 0
    summary = (out / "summary.md").read_text()
    assert "| fakefig | sum | n/a |" in summary
    assert len(list((out / ".cache" / "fakefig").glob("*.json"))) == 8
    fake.CALLS.clear()
    second = runner.run_figures(
        ["fakefig"], preset="tiny", outdir=out, progress=False, log=lambda s: None
    )
    assert fake.CALLS == [] and second["fakefig"]["cached"] == 8
    assert second["fakefig"]["rows"] == first["fakefig"]["rows"]
    # one more seed: only the 4 new runs are computed
    runner.run_figures(
        ["fakefig"], preset="tiny", outdir=out, seeds=3, progress=False, log=lambda s: None
    )
    assert sorted(c["seed"] for c in fake.CALLS) == [2, 2, 2, 2]


def test_every_figure_records_where_its_runs_ran(fake, tmp_path):
    import platform

    out = tmp_path / "out"
    runner.run_figures(["fakefig"], preset="tiny", outdir=out, progress=False, log=lambda s: None)
    data = json.loads((out / "fakefig.summary.json").read_text())
    assert data["runs_without_environment"] == 0 and len(data["environments"]) == 1
    env = data["environments"][0]
    assert env["numpy"] == np.__version__ and env["python"] == platform.python_version()
    assert all(b["num_threads"] == 1 for b in env["blas"])  # measured inside the run's pin
    summary = (out / "summary.md").read_text()
    assert f"Ran on: Python {env['python']}, NumPy {np.__version__}" in summary
    assert "(fakefig)." in summary and "No environment recorded" not in summary
    # a summary written before environments were recorded is named as such
    del data["environments"], data["runs_without_environment"]
    (out / "fakefig.summary.json").write_text(json.dumps(data))
    runner.write_summary(out)
    assert (
        "No environment recorded (cached before it was): fakefig (all runs)."
        in (out / "summary.md").read_text()
    )


def test_interrupted_sweep_resumes_without_recomputing(fake, tmp_path):
    out = tmp_path / "out"
    fake.FAIL_AT.add((2, 1))
    with pytest.raises(RuntimeError, match="interrupted"):
        runner.run_figures(
            ["fakefig"], preset="tiny", outdir=out, progress=False, log=lambda s: None
        )
    done = len(list((out / ".cache" / "fakefig").glob("*.json")))
    assert done == 7  # every run but the failing one finished and is cached
    assert not list((out / ".cache" / "fakefig").glob("*.tmp"))
    fake.FAIL_AT.clear()
    fake.CALLS.clear()
    runner.run_figures(["fakefig"], preset="tiny", outdir=out, progress=False, log=lambda s: None)
    assert [(c["i"], c["seed"]) for c in fake.CALLS] == [(2, 1)]


def test_dask_local_cluster_gives_the_local_numbers(fake, tmp_path):
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    runner.run_figures(
        ["fakefig"], preset="tiny", outdir=tmp_path / "a", progress=False, log=lambda s: None
    )
    local = json.loads((tmp_path / "a" / "fakefig.json").read_text())
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=False,
            protocol="tcp://",
            host="127.0.0.1",
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster.scheduler_address) as client,
    ):
        runner.run_figures(
            ["fakefig"],
            preset="tiny",
            outdir=tmp_path / "b",
            executor=client.get_executor(),
            progress=False,
            log=lambda s: None,
        )
    remote = json.loads((tmp_path / "b" / "fakefig.json").read_text())
    assert remote == local


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["figures", "nope"], "unknown figure 'nope'; valid figures:"),
        (["figures", "--mnist", "/nonexistent/mnist"], "is not a folder"),
        (
            ["figures", "--scheduler", "tcp://127.0.0.1:1"],
            "--scheduler is only used with --executor dask",
        ),
        (["figures", "--executor", "dask"], "--executor dask needs --scheduler ADDRESS"),
    ],
)
def test_cli_bad_input_is_a_message_not_a_traceback(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_mnist_folder_without_files_names_them(fake, tmp_path, capsys):
    assert (
        cli.main(
            [
                "figures",
                "fakefig",
                "--preset",
                "tiny",
                "--mnist",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "t10k-labels-idx1-ubyte" in err


def test_cli_workers_zero_is_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["figures", "--workers", "0"])
    assert exc.value.code == 2
    assert "expected an int in [1, 256], got 0" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_unreachable_scheduler(capsys):
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    assert cli.main(["figures", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err


def test_cli_runs_every_real_figure_in_a_process_pool_then_from_cache(tmp_path, capsys):
    from theory import FIGURES

    out = tmp_path / "figs"
    argv = ["figures", "--preset", "tiny", "--out", str(out), "--no-progress"]
    assert (
        cli.main([*argv, "--workers", "2"]) == 0
    )  # the default local process pool (spawned workers)
    first = capsys.readouterr().out
    summary = (out / "summary.md").read_text()
    for name in FIGURES:
        assert f"| {name} |" in summary, name
        assert (out / f"{name}.png").is_file() and (out / f"{name}.svg").is_file()
        assert f"{name}: " in first and "(0 cached" in first
    assert cli.main([*argv, "--workers", "1"]) == 0
    second = capsys.readouterr().out
    for name in FIGURES:
        runs = next(line for line in second.splitlines() if line.startswith(f"{name}: "))
        n = runs.split(" runs (")[0].split(": ")[1]
        assert f"({n} cached" in runs, runs  # nothing recomputed
    assert (out / "summary.md").read_text() == summary


def test_library_cli_points_to_the_figure_command(capsys):
    from refreg import cli as library_cli

    assert library_cli.main(["figures"]) == 2
    assert "python -m theory figures" in capsys.readouterr().err


def test_library_demo_without_scikit_learn_is_one_line_and_status_2(monkeypatch, capsys):
    from refreg import cli as library_cli
    from refreg import data

    def without_scikit_learn(**kwargs):  # what data.digits raises when scikit-learn is missing
        raise ImportError("digits() needs scikit-learn: pip install 'refreg[figures]'")

    monkeypatch.setattr(data, "digits", without_scikit_learn)
    assert library_cli.main(["demo", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scikit-learn" in err and "refreg[figures]" in err


def test_cache_key_is_the_hash_of_the_whole_dataclass_config():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Run:
        lr: float
        seed: int

    @dataclasses.dataclass(frozen=True)
    class Other:
        lr: float
        seed: int

    key = runner.cache_key("fig", Run(0.1, 0), "code")
    assert key == runner.cache_key("fig", Run(0.1, 0), "code")
    assert key != runner.cache_key("fig", Run(0.1, 1), "code")  # every field counts
    assert key != runner.cache_key("fig", Run(0.2, 0), "code")
    assert key != runner.cache_key("fig", Other(0.1, 0), "code")  # and the class
    assert key != runner.cache_key("fig", Run(0.1, 0), "code2")  # and the code
    assert key != runner.cache_key("fig", {"lr": 0.1, "seed": 0}, "code")  # dicts still accepted


def test_a_run_that_sets_its_own_blas_threads_is_recorded_with_them():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Run:
        blas_threads: int

    import types

    sys.modules["fake_threads_module"] = types.ModuleType("fake_threads_module")
    sys.modules["fake_threads_module"].run = lambda config: None
    try:
        one = runner.timed_run("fake_threads_module", Run(1))["environment"]
        two = runner.timed_run("fake_threads_module", Run(2))["environment"]
        plain = runner.timed_run("fake_threads_module", {"blas_threads": 2})["environment"]
    finally:
        del sys.modules["fake_threads_module"]
    blas = [b for b in one["blas"] if b.get("internal_api") != "openmp"]
    assert blas, "threadpoolctl reports NumPy's BLAS (the thread counts below must not be vacuous)"
    assert {b["num_threads"] for b in one["blas"]} == {1}
    assert (
        {b["num_threads"] for b in two["blas"]} == {2} == {b["num_threads"] for b in plain["blas"]}
    )


def test_environments_differing_only_in_library_order_or_openmp_are_one():
    numpy_blas = {"internal_api": "openblas", "version": "0.3.31", "num_threads": 1}
    scipy_blas = {"internal_api": "openblas", "version": "0.3.30", "num_threads": 1}
    omp = {"internal_api": "openmp", "version": None, "num_threads": 1}
    base = {"python": "3.11.7", "numpy": "2.4.6", "cpu": "x", "cpu_count": 2}
    envs = [
        {**base, "blas": [numpy_blas, scipy_blas]},
        {**base, "blas": [omp, scipy_blas, numpy_blas]},
    ]
    assert runner._distinct([runner._comparable(e) for e in envs]) == [
        {**base, "blas": [scipy_blas, numpy_blas]}
    ]
    other = {**base, "blas": [{**numpy_blas, "num_threads": 2}]}
    assert len(runner._distinct([runner._comparable(e) for e in [*envs, other]])) == 2
