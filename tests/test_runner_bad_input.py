"""The figures CLI and cache under bad input and signals: one-line errors (exit 2), verified cache entries,
no leftover temporaries, no surviving worker processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_runner import fake  # noqa: F401  (the fixture)

from theory import cli, runner

ROOT = Path(os.environ.get("REFREG_ROOT", Path(__file__).resolve().parent.parent))
QUIET = {"progress": False, "log": lambda s: None}


def _entries(out):
    return sorted((out / ".cache" / "fakefig").glob("*.json"))


@pytest.mark.parametrize("damage", ["truncate", "not-json", "edited", "old-format", "binary"])
def test_corrupt_cache_entry_is_recomputed(fake, tmp_path, damage):  # noqa: F811
    out = tmp_path / "out"
    first = runner.run_figures(["fakefig"], preset="tiny", outdir=out, **QUIET)
    entry = _entries(out)[3]
    text = entry.read_text()
    stored = json.loads(text)
    entry.write_bytes(
        {
            "truncate": text[: len(text) // 2].encode(),
            "not-json": b"{{{",
            "edited": json.dumps(
                {**stored, "outcome": {**stored["outcome"], "seconds": 1.0}}
            ).encode(),
            "old-format": json.dumps(stored["outcome"]).encode(),
            "binary": bytes(range(256)),
        }[damage]
    )
    fake.CALLS.clear()
    logged = []
    second = runner.run_figures(
        ["fakefig"], preset="tiny", outdir=out, progress=False, log=logged.append
    )
    assert len(fake.CALLS) == 1 and second["fakefig"]["cached"] == 7
    assert any("corrupt" in line and entry.name in line for line in logged)
    assert second["fakefig"]["rows"] == first["fakefig"]["rows"]
    assert runner.read_cache_entry(entry) is not None  # rewritten, verifies again


def test_leftover_temporaries_are_removed(fake, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    runner.run_figures(["fakefig"], preset="tiny", outdir=out, **QUIET)
    for folder in (out, out / ".cache" / "fakefig"):
        (folder / ".abc.json.tmp").write_text("partial")
    runner.run_figures(["fakefig"], preset="tiny", outdir=out, **QUIET)
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("seeds", ["0", "-3", "1001", "10000000000000", "3.5", "many"])
def test_cli_absurd_seeds_is_one_line_and_status_2(seeds, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["figures", "--seeds", seeds])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--seeds" in err and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(
        "python -m theory figures: error:"
    )  # no usage block


def test_runner_refuses_absurd_seeds(fake):  # noqa: F811
    with pytest.raises(runner.FigureInputError, match=r"seeds must be an int in \[1, 1000\]"):
        runner.run_figures(["fakefig"], preset="tiny", seeds=10**9, **QUIET)


def test_cli_bad_out_is_one_line_and_status_2(fake, tmp_path, capsys):  # noqa: F811
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out in (a_file, a_file / "sub"):
        assert cli.main(["figures", "fakefig", "--preset", "tiny", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--out {str(out)!r} is not a writable folder" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_unwritable_cache_entry_is_one_line_and_status_2(fake, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "out"
    (out / ".cache").mkdir(parents=True)
    (out / ".cache" / "fakefig").write_text("a file where the cache folder should be")
    argv = ["figures", "fakefig", "--preset", "tiny", "--out", str(out), "--workers", "1"]
    assert cli.main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the cache entry" in err and "Traceback" not in err


def test_cli_lets_programming_errors_raise(fake, tmp_path):  # noqa: F811
    fake.FAIL_AT.add((1, 0))  # the run raises RuntimeError: a bug, not a user error
    argv = ["figures", "fakefig", "--preset", "tiny", "--out", str(tmp_path), "--workers", "1"]
    with pytest.raises(RuntimeError, match="interrupted"):
        cli.main([*argv, "--no-progress"])


def _children(pid: int) -> set[int]:
    """Live descendants of ``pid`` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - out
        out |= frontier
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


_WITH_SIGINT_HANDLER = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'theory'; runpy.run_module('theory', run_name='__main__', alter_sys=True)"
)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list worker processes")
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_every_worker_process(tmp_path, sig, status):
    proc = subprocess.Popen(
        [
            # the quick preset: its runs take seconds each, so the signal always lands mid-sweep (the tiny
            # preset could finish between the pool's start and the signal)
            # Python keeps SIGINT ignored when it starts with it ignored (a background job of a shell without
            # job control, as some CI launchers are): restore Python's own handler, which is what a user's
            # terminal gives `python -m theory`
            *(
                sys.executable,
                "-c",
                _WITH_SIGINT_HANDLER,
                "figures",
                "cpr_constraint",
                "pathprox_convergence",
            ),
            *("--preset", "quick", "--workers", "2", "--no-progress", "--out", str(tmp_path)),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"},
        stdout=subprocess.DEVNULL,
        # a file, not a pipe: the workers inherit stderr, and a pipe would only close when the last one exits
        stderr=(tmp_path / "stderr.txt").open("w"),
    )
    deadline = time.monotonic() + 120
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
        workers = _children(proc.pid)
        time.sleep(0.05)
    assert proc.poll() is None and len(workers) >= 2, "the pool never started"
    # signal mid-sweep, once a first run has finished and been cached: the pool is up and the imports are done
    # (a signal in the first seconds of start-up is a separate case, not tested here)
    while time.monotonic() < deadline and not any((tmp_path / ".cache").rglob("*.json")):
        time.sleep(0.1)
    assert proc.poll() is None, "the sweep ended before the signal could be sent"
    workers = _children(proc.pid)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    except (
        subprocess.TimeoutExpired
    ):  # show where it hangs: faulthandler dumps every thread on SIGABRT
        proc.send_signal(signal.SIGABRT)
        proc.wait(timeout=30)
        for pid in workers:  # leave nothing computing behind
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        dump = (tmp_path / "stderr.txt").read_text()
        pytest.fail(f"no exit within 60 s of the signal; the process's threads:\n{dump[-12000:]}")
    err = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == status, err
    assert "Traceback" not in err and ("interrupted" in err or "terminated" in err)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "worker processes survived"
