"""The real kamikaze 0.1.1, from the package index, in a venv of its own
(.venv-0.1.1 at the project's root, made on first use and kept): what the
compatibility tests run against ours, never our reading of it. Its CLI does
not start on Python 3.7+ (`asyncio.async`), so its operations are called
from Python: `push`, `remove`, `list_` of kamikaze.operations, which always
use the key `kamikaze`."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-0.1.1"
# 0.1.1's own pins; asyncio-redis (its service) and wheel are left out: the
# service cannot start on this Python, and the operations need neither.
REQUIREMENTS = ["kamikaze==0.1.1", "redis==2.10.3", "argh==0.26.1", "tabulate==0.7.3"]
PYTHON = VENV / "bin" / "python"


def ensure_venv() -> Path:
    """The venv's python, installing 0.1.1 first if needed (once, whatever
    number of test processes ask at the same time)."""
    with open(ROOT / ".venv-0.1.1.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = VENV / "installed.json"
        if marker.exists() and json.loads(marker.read_text()) == REQUIREMENTS:
            return PYTHON
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        install = subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "-q", "--no-deps", *REQUIREMENTS],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            raise RuntimeError(
                f"cannot install kamikaze 0.1.1 from the package index into {VENV}: "
                f"{install.stderr.strip()[-500:]}"
            )
        marker.write_text(json.dumps(REQUIREMENTS))
    return PYTHON


class ZeroOne:
    """Calls 0.1.1's operations against one server (host and port)."""

    def __init__(self, python: Path, port: int, workdir: Path) -> None:
        self.python = python
        self.port = port
        self.workdir = workdir  # not the project's root: `import kamikaze` must find 0.1.1's

    def call(self, code: str, *args: str, tty: bool = False) -> subprocess.CompletedProcess[str]:
        script = f"import sys\nfrom kamikaze import operations\nport = {self.port}\n{code}"
        return subprocess.run(
            [str(self.python), "-I", "-c", script, *args],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def push(self, payload: str, ttl: float, priority: float) -> None:
        done = self.call(
            "operations.push(sys.argv[1], sys.argv[2], sys.argv[3], redis_port=port)",
            payload,
            repr(ttl),
            repr(priority),
        )
        assert done.returncode == 0, done.stderr

    def remove(self, *payloads: str) -> None:
        done = self.call(
            "for payload in sys.argv[1:]:\n    operations.remove(payload, redis_port=port)",
            *payloads,
        )
        assert done.returncode == 0, done.stderr

    def list(self) -> list[list[str]]:
        """0.1.1's `kamikaze list` piped: score, payload, expire time, TTL a line."""
        done = self.call("operations.list_(redis_port=port)")
        assert done.returncode == 0, done.stderr
        return [line.split() for line in done.stdout.splitlines() if line.strip()]
