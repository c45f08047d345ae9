"""The sdist and the wheel as a user builds them (`python -m build`, `twine
check`), and the wheel installed into a fresh venv of its own, driving a
queue (docs/install.rst).

Covers: pyproject.toml, setup.py, kamikaze/lua, kamikaze/web (the package data)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from kamikaze import __version__
from tests.servers import RedisServer, own_server_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
LEFT_OUT = (".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache",
            ".ruff_cache", ".pytest_cache", ".hypothesis", "node_modules")  # fmt: skip


def run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_the_wheel_builds_checks_and_works_in_a_fresh_venv(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*LEFT_OUT))
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, cwd=source)  # as a user builds it
    wheel = dist / f"kamikaze-{__version__}-py3-none-any.whl"
    sdist = dist / f"kamikaze-{__version__}.tar.gz"
    assert wheel.exists() and sdist.exists(), sorted(p.name for p in dist.iterdir())
    checked = run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    assert checked.count("PASSED") == 2, checked

    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=True)
    constraints = ROOT / ".ci" / "constraints.txt"
    run(fresh / "bin" / "pip", "install", "-q", "-c", constraints, wheel)
    kamikaze = fresh / "bin" / "kamikaze"
    assert run(kamikaze, "version").strip().endswith(__version__)
    server = RedisServer(own_server_binary()).start()
    try:
        url = ["--redis-url", f"redis://127.0.0.1:{server.port}/0"]
        run(kamikaze, "push", "from-the-wheel", "60", "1", *url, cwd=tmp_path)
        assert "from-the-wheel" in run(kamikaze, "--loglevel", "INFO", "list", *url, cwd=tmp_path)
    finally:
        server.remove()
    with zipfile.ZipFile(wheel) as built:
        names = set(built.namelist())
    assert {"kamikaze/lua/push.lua", "kamikaze/web/static/app.js", "kamikaze/py.typed"} <= names
