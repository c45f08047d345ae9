"""Running `kamikaze` as a real process, reading its output with deadlines."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

FULL_CLI = "KAMIKAZE_FULL_CLI"


def kamikaze_env(url: str, key: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # KAMIKAZE_FULL_CLI (the path a one-shot command takes) is the test's choice.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMIKAZE_") or k == FULL_CLI}
    env.update({"KAMIKAZE_REDIS_URL": url, "KAMIKAZE_KEY": key, "PYTHONUNBUFFERED": "1"})
    # An embedded server a command started stops soon after a test (docs/operations.rst).
    env["KAMIKAZE_EMBEDDED_IDLE_TIMEOUT"] = "5"
    env.update(extra or {})
    return env


def run(
    *args: str,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kamikaze", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Service:
    """`kamikaze service ...` in the background; its output lines, merged, in order."""

    def __init__(
        self,
        *args: str,
        env: Mapping[str, str],
        cwd: Path | None = None,
        argv: Sequence[str] = (sys.executable, "-m", "kamikaze"),
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.process = subprocess.Popen(
            [*argv, *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=preexec_fn,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, text: str, timeout: float = 10.0) -> str:
        """Wait for an output line containing `text`; return it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(
                    f"no line with {text!r} in {timeout} s; got {self.lines}"
                ) from None
            if line is None:
                raise AssertionError(f"exited before printing {text!r}; got {self.lines}")
            self.lines.append(line)
            if text in line:
                return line

    def all_lines(self, timeout: float = 10.0) -> list[str]:
        """Every line it printed, once it has closed its output (say, after stop())."""
        deadline = time.monotonic() + timeout
        while (line := self._queue.get(timeout=max(deadline - time.monotonic(), 0))) is not None:
            self.lines.append(line)
        self._queue.put(None)  # the end stays visible to expect() and to a second call
        return self.lines

    def stop(self, sig: int, timeout: float = 10.0) -> tuple[int, float]:
        """Send `sig`; return the exit code and how long the exit took."""
        started = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
