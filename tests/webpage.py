"""`kamikaze web` as a real process on a free port, for the web tests."""

from __future__ import annotations

import re
import secrets
import signal
from collections.abc import Mapping
from pathlib import Path

from tests.integration.processes import Service

SERVING = re.compile(r" on (http://\S+/) \(")
CHROMIUM = "/usr/bin/chromium"  # Debian's: Playwright's own download cannot be fetched here
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class WebProcess(Service):
    """`kamikaze web --port 0 ...`; `url` is the page, once it serves."""

    def __init__(self, *args: str, env: Mapping[str, str], timeout: float = 15.0) -> None:
        super().__init__("web", "--port", "0", *args, env=env)
        match = SERVING.search(self.expect("web page of", timeout=timeout))
        assert match, self.lines
        self.url: str = match[1]

    def stop_cleanly(self, timeout: float = 5.0) -> tuple[int, float]:
        return self.stop(signal.SIGTERM, timeout=timeout)


def token_file(directory: Path) -> tuple[Path, str]:
    token = secrets.token_urlsafe(24)
    path = directory / "web-token"
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path, token
