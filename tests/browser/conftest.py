"""A real browser for the page of `kamikaze web`: Debian's Chromium, driven by
Playwright (its own browser download is not used). Each test gets its own
Redis server, queue, `kamikaze web` process and browser context."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from kamikaze.sync import SyncQueue
from tests.integration.processes import kamikaze_env
from tests.servers import RedisServer, server_binaries
from tests.webpage import CHROMIUM, CHROMIUM_ARGS, token_file

SERVERS = sorted(server_binaries().items())
_keys = itertools.count()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped: while Playwright's sync API is open, its event loop counts
    as running in this thread, and asyncio.run() elsewhere would refuse to run."""
    if not os.path.exists(CHROMIUM):
        message = f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Watched:
    """A page, and what it did that a user would notice: dialogs, script errors."""

    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def watched(browser: Browser) -> Iterator[Callable[[str], Watched]]:
    """Open pages in a fresh browser context: watched("http://...") -> Watched."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})

    def open_page(url: str) -> Watched:
        page = context.new_page()
        seen = Watched(page)
        page.on("dialog", lambda dialog: (seen.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: seen.errors.append(str(error)))
        page.goto(url)
        return seen

    yield open_page
    context.close()


@pytest.fixture(params=SERVERS, ids=lambda p: p[0])
def server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A Redis server of this test's own (it may be stopped and started)."""
    server = RedisServer(request.param[1]).start()
    yield server
    server.remove()


@pytest.fixture
def env(server: RedisServer) -> dict[str, str]:
    return kamikaze_env(server.url, f"web-page-{next(_keys)}")


@pytest.fixture
def queue(server: RedisServer, env: dict[str, str]) -> Iterator[SyncQueue]:
    with SyncQueue(server.url, env["KAMIKAZE_KEY"]) as queue:
        yield queue


@pytest.fixture
def token(tmp_path: Path) -> tuple[Path, str]:
    return token_file(tmp_path)
