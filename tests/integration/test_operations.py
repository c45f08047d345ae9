"""Operating kamikaze as a user would: `watch` on a pipe and on a terminal, the
service's metrics and health endpoint, JSON logs, shell completion. Real
`kamikaze` processes against throwaway servers.

Covers: kamikaze/watch.py, kamikaze/metrics.py, kamikaze/http_server.py, kamikaze/logs.py,
kamikaze/output.py."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
import redis

from kamikaze.package import MAX_EXPIRE_TIME
from kamikaze.settings import Settings
from tests.integration.processes import Service, kamikaze_env, run
from tests.servers import RedisServer, free_port, own_server_binary

T = TypeVar("T")

BLOCKING = "example_consumer.consumer.blocking_consumer_func"
FAILING_CONSUMER = textwrap.dedent("""
    def consumer(package):
        if package is None:
            print("nothing to do", flush=True)
            return
        print(f"working on {package.payload}", flush=True)
        raise RuntimeError(f"cannot handle {package.payload}")
""")
SNAPSHOT_HEADER = re.compile(r"# \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (\d+) packages?")
EXPIRE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
JSON_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
HUMAN_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+) ([\w.]+): (.*)")
METRICS_LINE = re.compile(r"metrics at http://127\.0\.0\.1:(\d+)/metrics, health at /health$")
ESCAPE = "\x1b"
REVERSE_ROW = re.compile(r"\x1b\[7m(.*?)\x1b\[0m")
ENTER_SCREEN = "\x1b[?1049h"
LEAVE_SCREEN = "\x1b[?1049l"
SHOW_CURSOR = "\x1b[?25h"
HOME = "\x1b[H"


# `python -m kamikaze ARGS` as an interactive shell starts it: SIGINT at its default. A
# background job of a non-interactive shell (this test run may be one) inherits SIGINT
# ignored, and a Python started so, rightly, leaves it ignored.
AS_FROM_A_SHELL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'kamikaze', *sys.argv[1:]])"
)


def as_from_a_shell(*args: str) -> list[str]:
    return [sys.executable, "-c", AS_FROM_A_SHELL, *args]


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `probe` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


class Collected:
    """Everything a pipe delivers, read by a thread; waited on with deadlines."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        fd = stream.fileno()
        while chunk := os.read(fd, 65536):
            with self._lock:
                self._data += chunk

    @property
    def text(self) -> str:
        with self._lock:
            return self._data.decode("utf-8", "replace")

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = 10.0) -> str:
        try:
            eventually(lambda: predicate(self.text), timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; got {self.text!r}") from None
        return self.text

    def closed(self, timeout: float = 10.0) -> str:
        """The whole output, once the writer closed the pipe."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the pipe stayed open; got {self.text!r}"
        return self.text


def http_get(url: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET (error statuses included)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


class Endpoint:
    """A service's /metrics and /health."""

    def __init__(self, port: int, key: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.key = key

    def health(self) -> tuple[int, Any]:
        status, content_type, body = http_get(self.base + "/health")
        assert content_type == "application/json"
        return status, json.loads(body)

    def samples(self) -> dict[str, float]:
        """`name` -> value for each sample labelled with this queue (and only that label)."""
        status, content_type, body = http_get(self.base + "/metrics")
        assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
        label = f'{{queue="{self.key}"}}'
        found = {}
        for line in body.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name_and_labels, value = line.rsplit(" ", 1)
            if name_and_labels.endswith(label):
                found[name_and_labels.removesuffix(label)] = float(value)
        return found

    def wait(self, name: str, value: float, timeout: float = 5.0) -> dict[str, float]:
        last: dict[str, float] = {}

        def probe() -> dict[str, float] | None:
            nonlocal last
            last = self.samples()
            return last if last.get(name) == value else None

        try:
            return eventually(probe, timeout, f"{name} == {value}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last {name} = {last.get(name)}") from None


def start_metrics_service(
    *args: str, env: dict[str, str], key: str, services: list[Service], cwd: Path | None = None
) -> tuple[Service, Endpoint]:
    service = Service("service", *args, "--metrics-port", "0", env=env, cwd=cwd)
    services.append(service)
    line = service.expect("metrics at")
    match = METRICS_LINE.search(line)
    assert match, line
    return service, Endpoint(int(match.group(1)), key)


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server of this test's own, which it may stop and start again."""
    server = RedisServer(own_server_binary()).start()
    yield server
    server.remove()


def snapshots(text: str) -> list[list[str]]:
    """Plain `watch` output as snapshots: each a `#` header and its rows."""
    return [block.split("\n") for block in text.rstrip("\n").split("\n\n")] if text else []


def snapshot_with(count: int) -> Callable[[str], bool]:
    def complete(text: str) -> bool:
        # Its header and all its rows are there (the last row may still be arriving).
        for block in snapshots(text):
            match = SNAPSHOT_HEADER.fullmatch(block[0])
            if match and int(match.group(1)) == count and len(block) == count + 1:
                return True
        return False

    return complete


# 1. `kamikaze watch` on a pipe ----------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_watch_on_a_pipe_prints_a_plain_snapshot_per_change(env: dict[str, str], sig: int) -> None:
    watch = subprocess.Popen(
        as_from_a_shell("watch"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert watch.stdout is not None and watch.stderr is not None
        out, err = Collected(watch.stdout), Collected(watch.stderr)
        out.wait_for(snapshot_with(0), "the first snapshot, of the empty queue")
        assert run("push", "later", "100", "5", env=env).returncode == 0
        out.wait_for(snapshot_with(1), "a snapshot after the first push")
        assert run("push", "urgent", "100", "1", env=env).returncode == 0
        out.wait_for(snapshot_with(2), "a snapshot after the second push")
        time.sleep(0.3)  # nothing more comes without a change
        watch.send_signal(sig)
        code = watch.wait(timeout=10)
        text = out.closed()
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()

    assert ESCAPE not in text
    blocks = snapshots(text)
    assert [SNAPSHOT_HEADER.fullmatch(block[0]) is not None for block in blocks] == [True] * 3
    assert [len(block) for block in blocks] == [1, 2, 3], text
    rows = [[line.split("\t") for line in block[1:]] for block in blocks]
    assert [[row[1] for row in block] for block in rows] == [[], ["later"], ["urgent", "later"]]
    for row in rows[1] + rows[2]:
        assert len(row) == 4 and EXPIRE_TIME.fullmatch(row[2]) and 95 < float(row[3]) <= 100
    # The rows are those of `kamikaze list` (but the TTL, which has moved on)
    listed = run("list", env=env).stdout.splitlines()
    assert [row[:3] for row in rows[2]] == [line.split("\t")[:3] for line in listed]
    assert code == 0  # SIGINT and SIGTERM alike: a quiet, clean exit
    assert err.closed() == ""


def test_watch_into_a_closed_pipe_exits_0_quietly(env: dict[str, str]) -> None:
    """`kamikaze watch | head -n 1`: the reader goes away, the next snapshot ends the watch."""
    reader, writer = os.pipe()
    watch = subprocess.Popen(
        as_from_a_shell("watch"), env=env, stdout=writer, stderr=subprocess.PIPE
    )
    os.close(writer)
    try:
        with os.fdopen(reader, "rb") as pipe:
            first = pipe.readline().decode()
        assert SNAPSHOT_HEADER.fullmatch(first.rstrip("\n")), first
        assert run("push", "nobody-reads-this", "100", "1", env=env).returncode == 0
        _, err = watch.communicate(timeout=10)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0 and err == b""


# 2. `kamikaze watch` on a terminal ------------------------------------------------------


# The pty becomes the session's controlling terminal, so that Ctrl-C on it is a SIGINT.
ON_TERMINAL = "import fcntl, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); " + AS_FROM_A_SHELL


class Terminal:
    """`kamikaze watch` on a pseudo-terminal of 80x24; the master side read non-blockingly."""

    def __init__(self, env: dict[str, str], code: str = ON_TERMINAL) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        os.set_blocking(self.master, False)
        self.mode_before = termios.tcgetattr(self.slave)
        self.data = b""
        env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, "watch"],
            env=env,
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            start_new_session=True,
        )

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def frames(self) -> list[str]:
        """The screens drawn so far (each starts at the home position)."""
        return self.text.split(HOME)[1:]

    def _drain(self, wait: float) -> None:
        readable, _, _ = select.select([self.master], [], [], wait)
        if readable:
            with contextlib.suppress(OSError):  # BlockingIOError included
                self.data += os.read(self.master, 65536)

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s; got {self.text[-2000:]!r}")
            self._drain(0.05)

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait_exit(self, timeout: float = 10.0) -> int:
        self.wait_for(lambda: self.process.poll() is not None, "the exit", timeout)
        for _ in range(5):  # what it wrote last
            self._drain(0.05)
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal(env: dict[str, str]) -> Iterator[Terminal]:
    term = Terminal(env)
    yield term
    term.close()


def payload_ttls(frames: list[str], payload: str) -> list[float]:
    """The TTL in the highlighted row of each frame that shows `payload` on top."""
    ttls = []
    for frame in frames:
        row = REVERSE_ROW.search(frame)
        if row and row.group(1).split()[1] == payload:
            ttls.append(float(row.group(1).split()[-1]))
    return ttls


def test_watch_on_a_terminal_counts_down_and_quits_on_q(
    env: dict[str, str], terminal: Terminal
) -> None:
    terminal.wait_for(lambda: "(queue empty)" in terminal.text, "the first screen")
    assert terminal.text.startswith(ENTER_SCREEN)
    during = termios.tcgetattr(terminal.slave)
    assert not during[3] & termios.ICANON  # keys without Enter, while it runs
    assert run("push", "job", "100", "1", env=env).returncode == 0
    terminal.wait_for(lambda: len(payload_ttls(terminal.frames(), "job")) >= 2, "two redraws")

    shown = [frame for frame in terminal.frames() if "job" in frame]
    header = shown[0].split("\r\n")[0]
    assert header.startswith("kamikaze watch  1 package  "), header
    assert header.removesuffix("\x1b[K").endswith("(q to quit)"), header
    assert "\x1b[7m1.0" in shown[0]  # the top, in reverse video
    first, second = payload_ttls(shown, "job")[:2]
    assert 95 < second < first <= 100
    assert 0.9 < first - second < 2.0, (first, second)  # a tick of the local clock, no push

    terminal.press(b"q")
    assert terminal.wait_exit() == 0
    tail = terminal.text.rsplit(HOME, 1)[1]
    assert terminal.text.endswith(LEAVE_SCREEN), repr(terminal.text[-80:])
    assert SHOW_CURSOR in tail
    after = termios.tcgetattr(terminal.slave)
    assert after == terminal.mode_before
    assert after[3] & termios.ICANON


def test_watch_on_a_terminal_quits_on_ctrl_c(env: dict[str, str], terminal: Terminal) -> None:
    assert run("push", "job", "100", "1", env=env).returncode == 0
    terminal.wait_for(lambda: "\x1b[7m1.0    job" in terminal.text, "the top on the screen")
    terminal.press(b"\x03")
    assert terminal.wait_exit() == 0
    assert terminal.text.endswith(LEAVE_SCREEN), repr(terminal.text[-80:])
    assert SHOW_CURSOR in terminal.text.rsplit(HOME, 1)[1]
    assert "Traceback" not in terminal.text and "KeyboardInterrupt" not in terminal.text
    after = termios.tcgetattr(terminal.slave)
    assert after == terminal.mode_before and after[3] & termios.ICANON


# 2b. Expire times past what a date can show ---------------------------------------------

LAST_SECOND = "9999-12-31T23:59:59"
# Members someone else wrote: any finite expire time (some long past), any score.
FOREIGN = {
    "1e17:far": 9,
    "1e300:x": 1,
    "-1e300:past": 1,
    "1e-300:tiny": 1,
    ":huge": 1e300,
    ":negative": -1e300,
    f"{MAX_EXPIRE_TIME}:last": 2,
}
LIVE_FOREIGN = [  # top first: payload, expire time shown
    ("negative", "never"),
    ("x", f">{LAST_SECOND}"),
    ("last", LAST_SECOND),
    ("far", f">{LAST_SECOND}"),
    ("huge", "never"),
]
# The view's drawing fails, as a bug would make it.
BROKEN_VIEW = (
    "import fcntl, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "import kamikaze.watch\n"
    "def broken(*args, **kwargs): raise RuntimeError('drawing failed')\n"
    "kamikaze.watch.render = broken\n"
    "from kamikaze.cli import main; sys.argv[0] = 'kamikaze'; main()\n"
)


@pytest.fixture
def sync_redis(settings: Settings) -> Iterator[redis.Redis]:
    assert settings.redis_url
    client = redis.Redis.from_url(settings.redis_url)
    yield client
    client.close()


def test_a_ttl_past_year_9999_is_refused_and_nothing_written(
    env: dict[str, str], settings: Settings, sync_redis: redis.Redis
) -> None:
    pushed = run("push", "far", "1e17", "9", env=env)
    assert pushed.returncode == 2, pushed
    assert pushed.stderr.splitlines()[-1] == (
        f"Error: Invalid value for 'TTL': TTL 1e+17 puts the expire time past {LAST_SECOND}"
    )
    lines = (
        '{"payload": "ok", "ttl": 100, "priority": 1}\n'
        '{"payload": "far", "ttl": 1e17, "priority": 9}\n'
    )
    pushed = run("push", "-", env=env, stdin=lines)
    assert pushed.returncode == 2, pushed
    assert pushed.stderr.splitlines()[-1] == (
        f"Error: line 2: TTL 1e+17 puts the expire time past {LAST_SECOND} "
        "(pushed 0 packages before it)"
    )
    assert sync_redis.zcard(settings.key) == 0
    assert sync_redis.keys(f"*{settings.key}*") == []


def test_list_shows_any_expire_time_and_score(
    env: dict[str, str], settings: Settings, sync_redis: redis.Redis
) -> None:
    sync_redis.zadd(settings.key, FOREIGN)
    listed = run("list", env=env)
    assert (listed.returncode, listed.stderr) == (0, "")
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(row[1], row[2]) for row in rows] == LIVE_FOREIGN
    assert [row[0] for row in rows] == ["-1e+300", "1.0", "2.0", "9.0", "1e+300"]
    assert float(rows[1][3]) == 1e300

    listed = run("list", "--json", env=env)
    assert (listed.returncode, listed.stderr) == (0, "")
    items = json.loads(listed.stdout)
    assert [item["payload"] for item in items] == [payload for payload, _ in LIVE_FOREIGN]
    assert [item["expire_time"] for item in items] == [None, 1e300, MAX_EXPIRE_TIME, 1e17, None]


def test_watch_on_a_pipe_shows_any_expire_time(
    env: dict[str, str], settings: Settings, sync_redis: redis.Redis
) -> None:
    sync_redis.zadd(settings.key, FOREIGN)
    watch = subprocess.Popen(
        as_from_a_shell("watch"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert watch.stdout is not None and watch.stderr is not None
        out, err = Collected(watch.stdout), Collected(watch.stderr)
        # (The count includes the expired members, which no expiry index knows of.)
        out.wait_for(lambda text: text.count("\n") > len(LIVE_FOREIGN), "the snapshot")
        watch.send_signal(signal.SIGTERM)
        code = watch.wait(timeout=10)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert (code, err.closed()) == (0, "")
    rows = [line.split("\t") for line in snapshots(out.closed())[0][1:]]
    assert [(row[1], row[2]) for row in rows] == LIVE_FOREIGN


@pytest.mark.parametrize("key", [b"q", b"\x03"], ids=["q", "Ctrl-C"])
def test_watch_on_a_terminal_shows_any_expire_time_and_quits(
    settings: Settings, sync_redis: redis.Redis, terminal: Terminal, key: bytes
) -> None:
    terminal.wait_for(lambda: "(queue empty)" in terminal.text, "the first screen")
    sync_redis.zadd(settings.key, FOREIGN)
    sync_redis.publish(settings.key, "new_message")
    terminal.wait_for(lambda: "far" in terminal.text, "the far-future package")
    frame = terminal.frames()[-1]
    assert f">{LAST_SECOND}" in frame and "1e+300" in frame
    terminal.press(key)
    assert terminal.wait_exit() == 0
    assert terminal.text.endswith(LEAVE_SCREEN), repr(terminal.text[-80:])
    assert termios.tcgetattr(terminal.slave) == terminal.mode_before


def test_an_internal_error_of_watch_restores_the_terminal_in_one_line(
    env: dict[str, str],
) -> None:
    terminal = Terminal(env, BROKEN_VIEW)
    try:
        assert terminal.wait_exit() == 1
        before, _, after = terminal.text.rpartition(LEAVE_SCREEN)
        assert before.startswith(ENTER_SCREEN)
        assert (
            after == "Error: watch stopped by an internal error: RuntimeError: drawing failed\r\n"
        )
        assert termios.tcgetattr(terminal.slave) == terminal.mode_before
    finally:
        terminal.close()


# 3. Metrics and health ------------------------------------------------------------------


def test_metrics_count_calls_expiries_and_the_queue_size(
    env: dict[str, str], settings: Settings, services: list[Service]
) -> None:
    service, endpoint = start_metrics_service(
        BLOCKING, "--sweep-interval", "1", env=env, key=settings.key, services=services
    )
    service.expect("Queue is empty")
    assert endpoint.wait("kamikaze_consumer_calls_total", 1.0)["kamikaze_redis_connected"] == 1
    assert endpoint.health() == (200, {"redis": "connected"})

    assert run("push", "short", "0.3", "1", env=env).returncode == 0
    service.expect("Consuming 'short'")
    service.expect("Queue is empty")  # it expired
    samples = endpoint.wait("kamikaze_consumer_calls_total", 3.0)
    assert samples["kamikaze_consumer_errors_total"] == 0
    assert samples["kamikaze_expiry_lateness_seconds_count"] == 1
    assert 0 <= samples["kamikaze_expiry_lateness_seconds_sum"] < 0.5
    assert samples["kamikaze_change_to_call_lag_seconds_count"] == 3
    assert samples["kamikaze_consumer_duration_seconds_count"] == 3
    assert samples["kamikaze_reconnects_total"] == 0

    assert run("push", "a", "100", "1", env=env).returncode == 0
    assert run("push", "b", "100", "2", env=env).returncode == 0
    service.expect("Consuming 'a'")
    endpoint.wait("kamikaze_queue_size", 2.0, timeout=3.5)  # after a sweep (every 1 s)
    code, _ = service.stop(signal.SIGTERM)
    assert code == 0


def test_a_consumer_that_raises_counts_as_an_error(
    env: dict[str, str], settings: Settings, services: list[Service], tmp_path: Path
) -> None:
    (tmp_path / "failing_consumer.py").write_text(FAILING_CONSUMER)
    service, endpoint = start_metrics_service(
        "failing_consumer.consumer", env=env, key=settings.key, services=services, cwd=tmp_path
    )
    service.expect("nothing to do")
    samples = endpoint.wait("kamikaze_consumer_calls_total", 1.0)
    assert samples["kamikaze_consumer_errors_total"] == 0
    assert run("push", "boom", "100", "1", env=env).returncode == 0
    service.expect("RuntimeError: cannot handle boom")
    samples = endpoint.wait("kamikaze_consumer_errors_total", 1.0)
    assert samples["kamikaze_consumer_calls_total"] == 2
    assert service.process.poll() is None  # it goes on
    assert endpoint.health() == (200, {"redis": "connected"})


def test_health_follows_redis_down_and_back(
    own_server: RedisServer, services: list[Service]
) -> None:
    env = kamikaze_env(own_server.url, "health")
    service, endpoint = start_metrics_service(BLOCKING, env=env, key="health", services=services)
    service.expect("Queue is empty")
    endpoint.wait("kamikaze_redis_connected", 1.0)
    assert endpoint.health() == (200, {"redis": "connected"})

    own_server.stop()
    eventually(lambda: endpoint.health()[0] == 503, 5.0, "/health 503 with Redis down")
    assert endpoint.health() == (503, {"redis": "disconnected"})
    assert endpoint.samples()["kamikaze_redis_connected"] == 0
    service.expect("lost Redis at")

    again = RedisServer(own_server_binary(), port=own_server.port, dir=own_server.dir).start()
    try:
        eventually(lambda: endpoint.health()[0] == 200, 10.0, "/health 200 with Redis back")
        assert endpoint.health() == (200, {"redis": "connected"})
        samples = endpoint.samples()
        assert samples["kamikaze_reconnects_total"] == 1
        assert samples["kamikaze_redis_connected"] == 1
        service.expect("reconnected to Redis at")
    finally:
        again.stop()


def test_watch_rides_out_a_redis_restart(own_server: RedisServer, services: list[Service]) -> None:
    env = kamikaze_env(own_server.url, "watched")
    watch = Service("watch", env=env)  # stdout is a pipe: plain snapshots, log lines merged
    services.append(watch)
    watch.expect(" 0 packages")
    assert run("push", "before", "100", "1", env=env).returncode == 0
    watch.expect("\tbefore\t")
    own_server.stop()
    watch.expect("lost Redis at")
    again = RedisServer(own_server_binary(), port=own_server.port, dir=own_server.dir).start()
    try:
        watch.expect("reconnected to Redis at", timeout=10)
        watch.expect(" 0 packages")  # restarted empty: read again when back
        assert run("push", "after", "100", "1", env=env).returncode == 0
        watch.expect("\tafter\t")
        assert watch.process.poll() is None
    finally:
        again.stop()


def test_a_taken_metrics_port_is_exit_1_and_one_line(own_server: RedisServer) -> None:
    env = kamikaze_env(own_server.url, "taken")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "kamikaze", "service", BLOCKING, "--metrics-port", str(port)],
            env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == f"Error: cannot serve metrics on 127.0.0.1:{port}: the port is in use", lines
    assert result.stdout == ""


# Under `ulimit -n 1024`, as a service manager may start it; uvloop (when installed) or
# plain asyncio, whose accept() errors used to flood the log.
FD_LIMIT = 1024
IDLE_CONNECTIONS = 2000
WITHOUT_UVLOOP = (
    "import sys; sys.modules['uvloop'] = None; "
    "from kamikaze.cli import main; sys.argv[0] = 'kamikaze'; main()"
)
LOOPS = {"default": ("-m", "kamikaze"), "asyncio": ("-c", WITHOUT_UVLOOP)}


def limit_open_files() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def open_idle_connections(port: int, count: int, timeout: float = 5.0) -> list[socket.socket]:
    """`count` connections that never send a byte; established, or given up on at `timeout`."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 200), hard))
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        sockets.append(sock)
    poll = select.poll()
    pending = {sock.fileno() for sock in sockets}
    for fd in pending:
        poll.register(fd, select.POLLOUT)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for fd, _ in poll.poll(100):
            poll.unregister(fd)
            pending.discard(fd)
    return sockets


@pytest.mark.any_server  # the HTTP endpoint's connections, not Redis'
@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_health_answers_at_once_beside_2000_idle_connections(
    env: dict[str, str], settings: Settings, services: list[Service], loop: str
) -> None:
    service = Service(
        "service", BLOCKING, "--metrics-port", "0",
        env=env, argv=(sys.executable, *LOOPS[loop]), preexec_fn=limit_open_files,
    )  # fmt: skip
    services.append(service)
    match = METRICS_LINE.search(service.expect("metrics at"))
    assert match
    endpoint = Endpoint(int(match.group(1)), settings.key)
    service.expect("Queue is empty")
    idle = open_idle_connections(int(match.group(1)), IDLE_CONNECTIONS)
    try:
        # Idle connections, not a storm of connects: the kernel drops a probe's connect
        # (retried after 1 s) while the listen queue is full, whatever the server does.
        time.sleep(0.5)
        took = []
        for _ in range(6):  # while the idle connections stay
            started = time.monotonic()
            assert endpoint.health() == (200, {"redis": "connected"})
            took.append(time.monotonic() - started)
            time.sleep(0.5)
        assert max(took) < 1.0, took
        code, _ = service.stop(signal.SIGTERM)  # with them still open
    finally:
        for sock in idle:
            sock.close()
    assert code == 0
    lines = service.all_lines()
    assert len(lines) < 10, (len(lines), lines[:20])
    assert not any("Traceback" in line for line in lines)


# 4. JSON logs ---------------------------------------------------------------------------


def json_lines(stderr: str) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in stderr.splitlines()]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        assert JSON_TIME.fullmatch(entry["time"]), entry
    return entries


def test_the_cli_logs_json_lines(env: dict[str, str]) -> None:
    lines = "".join(json.dumps({"payload": p, "ttl": 100, "priority": 1}) + "\n" for p in "xy")
    pushed = run("--log-format", "json", "push", "-", env=env, stdin=lines)
    assert pushed.returncode == 0 and pushed.stdout == ""
    entries = json_lines(pushed.stderr)
    assert [(e["level"], e["logger"], e["message"]) for e in entries] == [
        ("INFO", "kamikaze", "pushed 2 packages")
    ]

    debug = run("--log-format", "json", "--loglevel", "DEBUG", "push", "x", "100", "2", env=env)
    assert debug.returncode == 0
    messages = [e["message"] for e in json_lines(debug.stderr) if e["logger"] == "kamikaze"]
    assert len(messages) == 1 and messages[0].startswith("pushed Package(payload='x'"), messages

    removed = run("remove", "x", env={**env, "KAMIKAZE_LOG_FORMAT": "json"})
    assert removed.returncode == 0
    entries = json_lines(removed.stderr)
    assert [(e["level"], e["logger"], e["message"]) for e in entries] == [
        ("INFO", "kamikaze", "removed 2 packages with payload 'x'")
    ]


def test_a_fatal_error_is_a_json_line_too() -> None:
    port = free_port()
    env = kamikaze_env(f"redis://127.0.0.1:{port}/0", "k", {"KAMIKAZE_LOG_FORMAT": "json"})
    result = run("list", env=env)
    assert result.returncode == 1 and result.stdout == ""
    (entry,) = json_lines(result.stderr)
    assert entry["level"] == "ERROR"
    assert (
        entry["message"]
        == f"cannot connect to Redis at redis://127.0.0.1:{port}: Connection refused"
    )


def test_the_human_log_format_is_the_default(env: dict[str, str]) -> None:
    removed = run("remove", "x", env=env)
    assert removed.returncode == 0
    lines = removed.stderr.splitlines()
    assert len(lines) == 1, lines
    match = HUMAN_LINE.fullmatch(lines[0])
    assert match, lines
    assert match.groups() == ("INFO", "kamikaze", "removed 0 packages with payload 'x'")


def test_the_service_logs_json_on_stderr_and_the_consumer_prints_on_stdout(
    env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "failing_consumer.py").write_text(FAILING_CONSUMER)
    service = subprocess.Popen(
        [sys.executable, "-m", "kamikaze", "--log-format", "json", "service",
         "failing_consumer.consumer"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert service.stdout is not None and service.stderr is not None
        out, err = Collected(service.stdout), Collected(service.stderr)
        out.wait_for(lambda text: "nothing to do\n" in text, "the first call")
        err.wait_for(lambda text: "watching" in text, "the watching line")
        assert run("push", "boom", "100", "1", env=env).returncode == 0
        out.wait_for(lambda text: "working on boom\n" in text, "the call with the package")
        err.wait_for(lambda text: '"exception"' in text, "the logged exception")
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=10) == 0
        stdout, stderr = out.closed(), err.closed()
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()

    assert stdout.splitlines() == ["nothing to do", "working on boom"]
    entries = json_lines(stderr)
    messages = [e["message"] for e in entries]
    assert f"watching {settings.key} at {settings.address}" in messages, messages
    raised = [e for e in entries if "exception" in e]
    assert len(raised) == 1, entries
    assert raised[0]["level"] == "ERROR" and raised[0]["logger"] == "kamikaze.consumer"
    assert raised[0]["message"].startswith("consumer raised on Package(payload='boom'")
    trace = raised[0]["exception"]
    assert trace.startswith("Traceback (most recent call last):")
    assert 'failing_consumer.py", line 7, in consumer' in trace
    assert trace.endswith("RuntimeError: cannot handle boom")
    assert messages[-1] == "received SIGTERM, shutting down"


# 5. Shell completion --------------------------------------------------------------------


def completion(variables: dict[str, str], program: list[str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAMIKAZE_", "_KAMIKAZE"))}
    env.update(variables)
    result = subprocess.run(
        program or [sys.executable, "-m", "kamikaze"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0 and result.stderr == "", result
    return result.stdout


@pytest.mark.parametrize(
    ("shell", "registration"),
    [
        ("bash", "complete -o nosort -F _kamikaze_completion kamikaze"),
        ("zsh", "compdef _kamikaze_completion kamikaze"),
        ("fish", 'complete --no-files --command kamikaze --arguments "(_kamikaze_completion)"'),
    ],
    ids=["bash", "zsh", "fish"],
)
def test_the_completion_script_for_each_shell(shell: str, registration: str) -> None:
    script = completion({"_KAMIKAZE_COMPLETE": f"{shell}_source"})
    assert "_kamikaze_completion" in script and registration in script
    assert f"_KAMIKAZE_COMPLETE={shell}_complete" in script


def test_bash_completes_commands_and_option_values() -> None:
    def complete(words: str, cword: int, program: list[str] | None = None) -> list[str]:
        variables = {
            "_KAMIKAZE_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(cword),
        }
        return completion(variables, program).splitlines()

    assert complete("kamikaze pu", 1) == ["plain,push"]
    assert complete("kamikaze ", 1) == [
        f"plain,{c}"
        for c in ("clear", "list", "push", "remove", "service", "version", "watch", "web")
    ]
    assert complete("kamikaze --log-format ", 2) == ["plain,human", "plain,json"]
    assert complete("kamikaze service --metrics", 2) == [
        "plain,--metrics-port",
        "plain,--metrics-host",
    ]
    script = Path(sys.executable).parent / "kamikaze"  # the installed console script
    if script.exists():
        assert complete("kamikaze pu", 1, [str(script)]) == ["plain,push"]
