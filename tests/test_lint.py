"""The code stays typed and linted: mypy --strict and ruff run with the tests,
so CI (`.ci/run`, the README's test command) fails on a regression."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize(
    "command",
    [
        ["mypy"],  # strict, over the package: [tool.mypy] in pyproject.toml
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
    ],
    ids=["mypy-strict", "ruff-check", "ruff-format"],
)
def test_clean(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_is_typed() -> None:
    assert (ROOT / "kamikaze" / "py.typed").exists()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"py.typed"' in pyproject  # shipped in the wheel
