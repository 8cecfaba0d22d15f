"""The README's Python example runs as printed, and its Quickstart matches .ci/run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_python_example_runs(tmp_path, monkeypatch, capsys):
    (block,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "layers.0.weight" in printed  # state.kappa and state.lam per regularized matrix
    assert (tmp_path / "checkpoint.npz").is_file()


def test_quickstart_has_two_commands_and_ci_runs_the_test_one():
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", quickstart, flags=re.S)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2 and "theory figures" in commands[0] and "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
