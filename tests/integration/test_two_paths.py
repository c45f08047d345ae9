"""The one-shot commands answer the same on both paths: the fast one
(kamikaze.quick on kamikaze.wire) and the full CLI (click, redis-py), for
every case here: the same exit code, the same output (times aside) and the
same Redis state, on good input, bad input and misbehaving servers. Both run
in this process, as `kamikaze` would run them (kamikaze.quick.main).

Covers: kamikaze/quick.py, kamikaze/wire.py, kamikaze/cli.py, kamikaze/errors.py,
kamikaze/urls.py, kamikaze/connections.py."""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kamikaze import connections, quick, wire
from kamikaze.cli import main as full_cli
from kamikaze.logs import configure as real_configure
from kamikaze.parameters import COMMANDS
from kamikaze.settings import Settings
from tests.servers import RedisServer, own_server_binary

_keys = itertools.count()


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    fast: bool  # the fast path took it (else it handed it to the full CLI)
    state: list[Any] = field(default_factory=list)


def invoke(path: str, argv: list[str], env: dict[str, str], stdin: bytes) -> Outcome:
    """`kamikaze ARGV` on one path, as kamikaze.quick.main runs it."""
    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("KAMIKAZE_")}
    overrides.update(env)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = []
    fast = False
    try:
        with CliRunner().isolation(input=stdin, env=overrides) as (out, err, _):
            code = quick.run(argv, os.environ) if path == "fast" else None
            fast = code is not None
            if code is None:
                try:
                    full_cli.main(args=argv, prog_name="kamikaze")
                    code = 0
                except SystemExit as exit:
                    code = exit.code if isinstance(exit.code, int) else 1
            sys_flush()
            return Outcome(code, out.getvalue().decode(), err.getvalue().decode(), fast)
    finally:
        root.handlers, level = saved
        root.setLevel(level)


def sys_flush() -> None:
    import sys

    sys.stdout.flush()
    sys.stderr.flush()


# Times differ from one run to the next; everything else must not.
VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"), "<log time>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}Z)?"), "<date>"),
    (re.compile(r"(?<![\d.])1\d{9}\.\d+"), "<expire time>"),  # in an index entry too
    (re.compile(r"\b\d+\.\d{3}\b"), "<ttl>"),
    (re.compile(r'"ttl": [\d.]+'), '"ttl": <ttl>'),
]


def normal(text: str, key: str) -> str:
    text = text.replace(key, "<key>")
    for pattern, placeholder in VARYING:
        text = pattern.sub(placeholder, text)
    return text


def redis_state(client: redis.Redis, key: str) -> list[Any]:
    """The queue, its index and its change counter, expire texts aside (the
    calls' outcomes are kept by random tokens); no stray keys."""
    names = sorted(k.decode() for k in client.keys(f"*{key}*"))
    calls = [name for name in names if name.endswith((":calls", ":call-expiries"))]
    state: list[Any] = [[normal(name, key) for name in names]]
    for name in names:
        if client.type(name) == b"string":
            state.append(client.get(name))
        if name not in calls and client.type(name) == b"zset":
            entries = client.zrange(name, 0, -1, withscores=True)
            shown = [index_shown(e) if name.endswith(":by-payload") else e for e, _ in entries]
            state.append(
                [
                    (normal(e.decode(errors="replace"), key), when(s))
                    for e, (_, s) in zip(shown, entries, strict=True)
                ]
            )
    return state


def index_shown(entry: bytes) -> bytes:
    """A payload-index entry: the digest in hex, the expire time aside."""
    if entry.startswith(b"d"):
        return b"d" + entry[1:9].hex().encode() + (b" <expire time>" if entry[9:] else b"")
    return entry


def when(score: float) -> float | str:
    """A score, unless it is an expire time (the expiry index's)."""
    return "<expire time>" if 1e9 < score < float("inf") else score


# Servers that misbehave, each on a port of its own --------------------------------------


class FakeServer:
    """Answers every connection in one way: `http` (an HTTP server on the
    port), `trickle` (a bulk reply, a byte every 0.3 s) or `silent`."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                if self.mode == "http":
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                elif self.mode == "trickle":
                    conn.sendall(b"$100000\r\n")
                    while not self.stopped.wait(0.3):
                        conn.sendall(b"x")
                self.stopped.wait(30)
            except OSError:
                pass

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    server = RedisServer(own_server_binary()).start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def password_server() -> Iterator[RedisServer]:
    server = RedisServer(own_server_binary(), extra_args=("--requirepass", "sesame")).start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeServer]]:
    found = {mode: FakeServer(mode) for mode in ("http", "trickle", "silent")}
    yield found
    for fake in found.values():
        fake.close()


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both paths give up on a silent server after the same timeouts; shorter here."""
    for module in (connections, wire):
        monkeypatch.setattr(module, "SOCKET_TIMEOUT", 0.4)
        monkeypatch.setattr(module, "CONNECT_TIMEOUT", 0.4)


# The cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    argv: list[str]
    where: str = "server"  # server, password_server, http, trickle, silent, refused
    url: str = "redis://127.0.0.1:{port}/0"
    stdin: bytes = b""
    env: dict[str, str] = field(default_factory=dict)
    fast: bool | None = None  # must the fast path take it (True) or hand it on (False)?


JSON_LINES = (
    b'{"payload": "a", "ttl": 60, "priority": 1}\n{"payload": "b", "ttl": 5, "priority": 2}\n'
)
CASES: dict[str, Case] = {
    # Good input: the fast path takes it.
    "push": Case(["push", "job", "60", "1"], fast=True),
    "push a negative priority": Case(["push", "job", "60", "-1.5"], fast=True),
    "push colons and unicode": Case(["push", "a:b::ü 🚀", "1e5", "0"], fast=True),
    "push exponent ttl": Case(["push", "job", "1E3", "+2"], fast=True),
    "remove": Case(["remove", "seeded"], fast=True),
    "remove nothing": Case(["remove", "absent"], fast=True),
    "list": Case(["list"], fast=True),
    "list --json": Case(["list", "--json"], fast=True),
    "push - lines": Case(["push", "-"], stdin=JSON_LINES, fast=True),
    "push - batch size": Case(["push", "-", "--batch-size", "1"], stdin=JSON_LINES, fast=True),
    "push - a bad line": Case(["push", "-"], stdin=JSON_LINES + b'{"payload": 1}\n', fast=True),
    "push - invalid utf-8": Case(
        ["push", "-"], stdin=b'{"payload": "\xff", "ttl": 1, "priority": 1}\n'
    ),
    "--key option": Case(["list", "--key", "{key}"], fast=True),
    "--redis-url= option": Case(["list", "--redis-url={url}"], fast=True),
    "host and port": Case(["list", "--redis-host", "127.0.0.1", "--redis-port", "{port}"]),
    "list --raw": Case(["list", "--raw"], fast=True),
    "clear --yes": Case(["clear", "--yes"], fast=True),
    "clear, no --yes, not on a terminal": Case(["clear"], fast=False),
    "list --raw --json": Case(["list", "--raw", "--json"], fast=False),
    "--json=1": Case(["list", "--json=1"], fast=False),
    # Log settings.
    "--loglevel WARNING": Case(["--loglevel", "WARNING", "remove", "seeded"], fast=True),
    "--loglevel=error, in lower case": Case(["--loglevel=error", "remove", "seeded"], fast=True),
    "KAMIKAZE_LOGLEVEL": Case(["remove", "seeded"], env={"KAMIKAZE_LOGLEVEL": "warning"}),
    "--log-format json": Case(["--log-format", "json", "remove", "seeded"], fast=True),
    "--log-format json, a failure": Case(
        ["--log-format", "json", "push", "job", "60", "1"], where="refused"
    ),
    "KAMIKAZE_LOG_FORMAT=json, a failure": Case(
        ["list"], where="refused", env={"KAMIKAZE_LOG_FORMAT": "json"}
    ),
    "--loglevel DEBUG": Case(["--loglevel", "DEBUG", "list"], fast=False),
    "a bad log level": Case(["--loglevel", "LOUD", "list"], fast=False),
    "a global option after the command": Case(["list", "--loglevel", "INFO"], fast=False),
    "--help": Case(["push", "--help"], fast=False),
    # Odd but valid input.
    "an empty payload": Case(["push", "", "60", "1"], fast=True),
    "a newline and a NUL in a payload": Case(["push", "a\nb\x00c", "60", "1"]),
    "a payload that is not UTF-8": Case(["push", "\udcffx", "60", "1"]),
    "remove a glob": Case(["remove", "*"], fast=True),
    "a tiny ttl": Case(["push", "job", "1e-300", "1"]),
    "a huge priority": Case(["push", "job", "60", "1e308"]),
    "a negative zero priority": Case(["push", "job", "60", "-0.0"]),
    "a percent-encoded password": Case(["list"], url="redis://:p%40ss@127.0.0.1:{port}/0"),
    "a database out of range": Case(["push", "job", "60", "1"], url="redis://127.0.0.1:{port}/99"),
    "an IPv6 host nobody listens on": Case(["list"], where="refused", url="redis://[::1]:{port}/0"),
    # Bad input: exit 2, nothing changed.
    "ttl 0": Case(["push", "job", "0", "1"], fast=False),
    "ttl nan": Case(["push", "job", "nan", "1"], fast=False),
    "ttl inf": Case(["push", "job", "inf", "1"], fast=False),
    "ttl text": Case(["push", "job", "soon", "1"], fast=False),
    "ttl past 9999": Case(["push", "job", "1e17", "1"], fast=False),
    "priority nan": Case(["push", "job", "60", "nan"], fast=False),
    "missing priority": Case(["push", "job", "60"], fast=False),
    "extra argument": Case(["push", "job", "60", "1", "2"], fast=False),
    "unknown option": Case(["push", "job", "60", "1", "--bogus"], fast=False),
    "a dash payload": Case(["push", "--", "-x", "60", "1"]),
    "batch size 0": Case(["push", "-", "--batch-size", "0"], stdin=JSON_LINES, fast=False),
    "port 0": Case(["list", "--redis-port", "0"], url="", fast=False),
    "bad port variable": Case(["list"], url="", env={"KAMIKAZE_REDIS_PORT": "abc"}, fast=False),
    "a key without a tag": Case(["list", "--key", "a}b"], fast=False),
    "unknown scheme": Case(["list"], url="http://127.0.0.1:{port}/0", fast=False),
    "a user without a password": Case(
        ["push", "job", "60", "1"], url="redis://kz@127.0.0.1:{port}/0"
    ),
    "TLS verification off by the URL": Case(
        ["push", "job", "60", "1"], url="rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none"
    ),
    "a hostname check off by the URL": Case(
        ["list"], url="rediss://127.0.0.1:{port}/0?ssl_check_hostname=false"
    ),
    # Credentials.
    "a password, on a server without": Case(
        ["push", "job", "60", "1"], url="redis://:x@127.0.0.1:{port}/0", fast=True
    ),
    "no password, on a server with one": Case(["list"], where="password_server"),
    "a wrong password": Case(
        ["push", "job", "60", "1"], where="password_server", url="redis://:nope@127.0.0.1:{port}/0"
    ),
    "the right password": Case(
        ["push", "job", "60", "1"],
        where="password_server",
        url="redis://:sesame@127.0.0.1:{port}/0",
    ),
    # Servers that fail.
    "nothing listens": Case(["push", "job", "60", "1"], where="refused"),
    "nothing listens, nothing configured": Case(["list"], where="refused", url=""),
    "an HTTP server": Case(["list"], where="http"),
    "an HTTP server, a push": Case(["push", "job", "60", "1"], where="http"),
    "a reply that trickles in": Case(["list"], where="trickle"),
    "a silent server": Case(["push", "job", "60", "1"], where="silent"),
    "TLS to a plain port": Case(["list"], url="rediss://127.0.0.1:{port}/0"),
    "a wrong key type": Case(["push", "job", "60", "1"], env={"SEED": "string"}),
}


def port_of(case: Case, servers: dict[str, Any]) -> int:
    if case.where == "refused":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    return int(servers[case.where].port)


@pytest.mark.usefixtures("short_timeouts")
@pytest.mark.parametrize("name", list(CASES))
def test_both_paths_answer_the_same(
    name: str,
    server: RedisServer,
    password_server: RedisServer,
    fakes: dict[str, FakeServer],
) -> None:
    case = CASES[name]
    servers: dict[str, Any] = {"server": server, "password_server": password_server, **fakes}
    port = port_of(case, servers)
    admin = redis.Redis(port=server.port)
    outcomes = {}
    for path in ("fast", "full"):
        key = f"two-paths-{next(_keys)}"
        url = placed(case.url, port=str(port))
        env = {"KAMIKAZE_KEY": key, **({"KAMIKAZE_REDIS_URL": url} if url else {})}
        env |= {k: v for k, v in case.env.items() if k.startswith("KAMIKAZE_")}
        if not url and case.where == "refused":
            env["KAMIKAZE_REDIS_PORT"] = str(port)
        seed(admin, key, case.env.get("SEED", "queue"))
        argv = [placed(arg, key=key, url=url, port=str(port)) for arg in case.argv]
        outcome = invoke(path, argv, env, case.stdin)
        outcomes[path] = Outcome(
            outcome.code,
            normal(outcome.stdout, key),
            normal(outcome.stderr, key),
            outcome.fast,
            redis_state(admin, key),
        )
    fast, full = outcomes["fast"], outcomes["full"]
    assert (fast.code, fast.stdout, fast.stderr) == (full.code, full.stdout, full.stderr)
    assert fast.state == full.state
    assert "Traceback" not in fast.stderr + full.stderr
    assert fast.stderr.count("Error:") <= 1, fast.stderr  # one line says what went wrong
    if case.fast is not None:
        assert fast.fast is case.fast
    admin.close()


def placed(text: str, **values: str) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def seed(admin: redis.Redis, key: str, how: str) -> None:
    """What the queue holds before the command: one package, or a string."""
    if how == "string":
        admin.set(key, "not a queue")
        return
    admin.zadd(key, {f"{time.time() + 3600!r}:seeded": 3})


def test_the_cases_cover_every_one_shot_command() -> None:
    commands = {next(a for a in case.argv if a in COMMANDS) for case in CASES.values()}
    assert commands == set(quick.RUNNERS)


# The contract as a property: for any command line and environment, what the
# fast path takes, the full CLI takes with equal settings (and log settings),
# and both give the same exit code, output and Redis state.

EMBEDDED_DIR = Path(tempfile.gettempdir()) / f"kz-two-paths-{os.getpid()}"

# Mostly what a user types, now and then what they should not.
PAYLOADS = ["job", "a:b", "ü", "", "-5", "x y"]
TTLS = ["60", "1e3", "0.5", "+2", "1_0"]
PRIORITIES = ["1", "-1.5", "0", "1e308", "5."]
ODD = ["-", "--", "-x", "nan", "inf", "1e17", "abc", "0", "--bogus", "--json=1", "--help",
       "--cluster", "--embedded", "extra"]  # fmt: skip
FLAGS = {"push": [], "remove": [], "list": ["--json", "--raw"], "clear": ["--yes"]}
VALUED = {
    "--key": ["k1", "{t}a", "k1", "a}b", "-odd"],
    "--batch-size": ["1", "2", "500", "0", "x"],
    "--redis-port": ["{port}", "{port}", "0", "abc", "+{port}"],
    "--redis-host": ["127.0.0.1", "localhost"],
    "--redis-url": ["{url}", "{url}", "{url}?db=0", "redis://kz@127.0.0.1:{port}/0", "http://h"],
}
LEVELS = ["INFO", "warning", "ERROR", "LOUD"]
ENVIRONMENT = {
    "KAMIKAZE_KEY": ["k2", "k2", ""],
    "KAMIKAZE_REDIS_URL": ["{url}", "redis://127.0.0.1:{port}/1", "", "nope"],
    "KAMIKAZE_LOGLEVEL": ["ERROR", "info", "warning", "DEBUG", "LOUD"],
    "KAMIKAZE_LOG_FORMAT": ["json", "human", "human", "xml"],
    "KAMIKAZE_EMBEDDED": ["0", "0", "maybe", ""],
    "KAMIKAZE_CLUSTER": ["0", "0", "1"],
    "KAMIKAZE_REDIS_PORT": ["{port}", "abc"],
}
ARGUMENTS = {"push": [PAYLOADS, TTLS, PRIORITIES], "remove": [PAYLOADS], "list": [], "clear": []}


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[list[str], dict[str, str]]:
    pick = lambda values: draw(st.sampled_from(values))  # noqa: E731
    argv: list[str] = []
    if draw(st.integers(0, 3)) == 0:
        argv += ["--loglevel", pick(LEVELS)]
    command = pick(sorted(ARGUMENTS))
    argv.append(command)
    words = [pick(values) for values in ARGUMENTS[command]]
    if command == "push" and draw(st.integers(0, 3)) == 0:
        words = ["-"]  # JSON lines from stdin
    options = []
    for _ in range(draw(st.integers(0, 3))):
        if FLAGS[command] and draw(st.booleans()):
            flag = pick(FLAGS[command])
            options.append(
                [f"{flag}={pick(['1', 'no'])}" if draw(st.integers(0, 3)) == 0 else flag]
            )
        else:
            flag = pick(sorted(VALUED))
            value = pick(VALUED[flag])
            options.append([f"{flag}={value}"] if draw(st.booleans()) else [flag, value])
    if draw(st.integers(0, 5)) == 0:
        options.append([pick(ODD)])
    for option in options:  # options go anywhere among the values
        words.insert(draw(st.integers(0, len(words))), " ".join(option))
    argv += [
        part for word in words for part in (word.split(" ") if word.startswith("--") else [word])
    ]
    names = draw(st.lists(st.sampled_from(sorted(ENVIRONMENT)), unique=True, max_size=3))
    return argv, {name: pick(ENVIRONMENT[name]) for name in names}


def recording(patch: pytest.MonkeyPatch, record: list[Any]) -> None:
    """Record the settings each path checks and the log settings it applies."""
    check = Settings.check

    def checked(self: Settings) -> None:
        record.append(self)
        check(self)

    def configured(level: str, fmt: str = "human", stream: Any = None) -> None:
        record.append((level, fmt))
        real_configure(level, fmt, stream)

    patch.setattr(Settings, "check", checked)
    patch.setattr("kamikaze.logs.configure", configured)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command_lines())
def test_what_the_fast_path_takes_the_full_cli_takes_alike(
    server: RedisServer, line: tuple[list[str], dict[str, str]]
) -> None:
    argv, env = line
    port, url = str(server.port), f"redis://127.0.0.1:{server.port}/0"
    argv = [placed(arg, port=port, url=url) for arg in argv]
    # Never the machine's own Redis: host and port are the test server's unless told otherwise;
    # never an embedded server in the user's home: one that cannot start, the same on both paths.
    env = {"KAMIKAZE_REDIS_HOST": "127.0.0.1", "KAMIKAZE_REDIS_PORT": port}
    env |= {
        "KAMIKAZE_EMBEDDED_RUNTIME_DIR": str(EMBEDDED_DIR / "run"),
        "KAMIKAZE_EMBEDDED_DATA_DIR": str(EMBEDDED_DIR / "data"),
        "KAMIKAZE_EMBEDDED_SERVER": str(EMBEDDED_DIR / "no-server"),
    }
    env |= {name: placed(value, port=port, url=url) for name, value in line[1].items()}
    try:
        taken = quick.parse(argv, {**env, "KAMIKAZE_FULL_CLI": ""})
    except quick.Declined:
        return  # the full CLI alone runs it: nothing to compare
    admin = redis.Redis(port=server.port)
    seen: dict[str, list[Any]] = {"fast": [], "full": []}
    outcomes = {}
    for path in ("fast", "full"):
        admin.flushall()
        seed(admin, taken.settings.key, "queue")
        with pytest.MonkeyPatch.context() as patch:
            recording(patch, seen[path])
            outcome = invoke(path, argv, env, b'{"payload": "p", "ttl": 9, "priority": 1}\n')
        outcomes[path] = (outcome, redis_state(admin, taken.settings.key))
    admin.close()
    (fast, fast_state), (full, full_state) = outcomes["fast"], outcomes["full"]
    key = taken.settings.key
    assert fast.fast, argv
    assert (fast.code, normal(fast.stdout, key), normal(fast.stderr, key)) == (
        full.code, normal(full.stdout, key), normal(full.stderr, key)
    ), (argv, env)  # fmt: skip
    assert fast_state == full_state, (argv, env)
    full_settings = [item for item in seen["full"] if isinstance(item, Settings)]
    assert full_settings and full_settings[-1] == taken.settings, (argv, env)
    full_logs = [item for item in seen["full"] if isinstance(item, tuple)]
    assert full_logs[:1] == [(taken.loglevel, taken.log_format)], (argv, env)


@pytest.fixture(autouse=True, scope="module")
def _no_embedded_dirs_left() -> Iterator[None]:
    yield
    shutil.rmtree(EMBEDDED_DIR, ignore_errors=True)
