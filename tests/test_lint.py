"""ruff and mypy over the tree, inside the test run so their findings are in its report.

Both read their settings from pyproject.toml: ruff's rule set, mypy strict on the sans-IO cores.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "--no-cache", "relay", "web", "tests", "bench"], ["mypy"]],
    ids=["ruff", "mypy"],
)
def test_clean(command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
