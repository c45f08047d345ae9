from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable, Generator, Iterator

import pytest

from kamikaze.settings import Settings
from tests.integration.processes import Service
from tests.servers import RedisServer, missing_servers, server_binaries
from tests.webpage import WebProcess

_keys = itertools.count()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers a core. Most tests wait (on servers, processes,
    timers) far more than they compute, so one a core leaves the cores idle."""
    return 2 * (os.cpu_count() or 1)


@pytest.fixture(scope="session", params=sorted(server_binaries().items()), ids=lambda p: p[0])
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """One throwaway server per kind under test, for the whole session."""
    _, binary = request.param
    server = RedisServer(binary).start()
    yield server
    server.remove()


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    """Settings for a queue key no other test uses."""
    return Settings(redis_url=redis_server.url, key=f"test-queue-{next(_keys)}")


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[object]:
    client = settings.client()
    yield client
    await client.aclose()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    """`kamikaze service` (or `web`) processes a test starts; killed at its end."""
    started: list[Service] = []
    yield started
    for service in started:
        service.kill()


@pytest.fixture
def start_web(env: dict[str, str], services: list[Service]) -> Callable[..., WebProcess]:
    """Starts `kamikaze web` on a free port, aimed at the test's queue (`env`)."""

    def start(*args: str, environment: dict[str, str] | None = None) -> WebProcess:
        process = WebProcess(*args, env=environment or env)
        services.append(process)
        return process

    return start


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Generator[None]:
    """After the short test summary: how many tests skipped for want of which server."""
    yield
    reasons = [
        str(report.longrepr[2]).removeprefix("Skipped: ")
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple)
    ]
    line = missing_servers(reasons)
    if line:
        terminalreporter.write_line(line, yellow=True)


# Markers a maintainer selects by (pytest -m 'not slow', -m cluster, ...): by the
# file a test is in, and by the topology fixtures it uses. Registered in pyproject.toml.
FILE_MARKERS = {
    "test_acl.py": ("acl",),
    "test_tls.py": ("tls",),
    "test_sentinel.py": ("sentinel",),
    "test_cluster.py": ("cluster",),
    "test_faults.py": ("slow",),
    "test_stress.py": ("slow",),
    "test_model.py": ("slow",),
    "test_integrity.py": ("slow",),
    "test_consumer_timing.py": ("slow",),
    "test_docs_examples.py": ("slow",),
    "test_without_redis_server.py": ("slow",),
    "test_topologies.py": ("tls", "sentinel", "cluster"),
}
FIXTURE_MARKERS = {
    "tls_server": "tls",
    "mutual_tls_server": "tls",
    "certs": "tls",
    "cluster": "cluster",
    "sentinel_set": "sentinel",
    "acl_server": "acl",
}


def callspec_params(item: pytest.Item) -> list[object]:
    callspec = getattr(item, "callspec", None)
    return list(callspec.params.values()) if callspec is not None else []


# Files whose module-scoped servers are worth starting once: one worker runs them all.
ONE_WORKER = ("test_cluster.py", "test_sentinel.py", "test_topologies.py", "test_tls.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `any_server`: what the test checks does not depend on the kind of Redis
    # (an HTTP endpoint, the page in a browser): it runs on the first kind only.
    kinds = sorted(server_binaries().items())
    items[:] = (
        [
            item
            for item in items
            if item.get_closest_marker("any_server") is None
            or not any(kind in kinds[1:] for kind in callspec_params(item))
        ]
        if len(kinds) > 1
        else items
    )
    for item in items:
        names = set(FILE_MARKERS.get(item.path.name, ()))
        names |= {
            FIXTURE_MARKERS[f] for f in getattr(item, "fixturenames", ()) if f in FIXTURE_MARKERS
        }
        names.add("integration" if "integration" in item.path.parts else "unit")
        if item.path.name in ONE_WORKER:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
        for name in sorted(names):
            item.add_marker(name)
