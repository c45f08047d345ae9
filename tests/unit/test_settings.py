"""Settings: what each connection option turns into, and what is refused
before anything is sent (no server needed)."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from kamikaze import urls
from kamikaze.cli import main
from kamikaze.settings import Settings, parse_sentinel, read_password


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1:26380", ("10.0.0.1", 26380)),
        ("sentinel.example", ("sentinel.example", 26379)),
        ("[::1]:26381", ("::1", 26381)),
        ("[::1]", ("::1", 26379)),
    ],
)
def test_parse_sentinel(text: str, expected: tuple[str, int]) -> None:
    assert parse_sentinel(text) == expected


@pytest.mark.parametrize("text", ["host:port", "host:0", "host:70000", ":26379", ""])
def test_parse_sentinel_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_sentinel(text)


def test_read_password_takes_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("s3cret \r\nsecond line\n")
    assert read_password(str(path)) == "s3cret "


def test_connection_kwargs_of_each_url_form(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("from-file\n")
    plain = Settings(redis_url="redis://u@h:1234/2", password_file=str(password))
    assert plain.connection_kwargs() == {
        "host": "h",
        "port": 1234,
        "db": 2,
        "username": "u",
        "password": "from-file",
    }
    tls = Settings(redis_url="rediss://h/0", tls_ca_file="ca.pem").connection_kwargs()
    assert tls["ssl"] is True and tls["ssl_ca_certs"] == "ca.pem"
    unix = Settings(redis_url="unix:///run/redis.sock").connection_kwargs()
    assert unix == {"unix_socket_path": "/run/redis.sock"}
    files = Settings(tls_cert_file="c.pem", tls_key_file="k.pem").connection_kwargs()
    assert files["ssl"] is True and files["host"] == "localhost"


@pytest.mark.parametrize(
    ("settings", "address"),
    [
        (Settings(redis_url="redis://user:pw@h:7000/0"), "redis://h:7000"),
        (
            Settings(redis_url="redis://user:pw@h:7000/0", cluster=True),
            "cluster node redis://h:7000",
        ),
        (Settings(tls_ca_file="ca.pem", redis_port=6380), "rediss://localhost:6380"),
        (
            Settings(sentinels=(("a", 1), ("b", 2)), sentinel_master="m"),
            "master 'm' via Sentinel a:1,b:2",
        ),
    ],
)
def test_the_address_never_shows_credentials(settings: Settings, address: str) -> None:
    assert settings.address == address
    assert "pw" not in repr(settings)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--embedded", "--cluster"], "--embedded cannot be combined"),
        (["--cluster", "--sentinel", "h:1", "--sentinel-master", "m"], "exclude each other"),
        (["--sentinel", "h:1"], "--sentinel and --sentinel-master go together"),
        (["--sentinel-master", "m"], "--sentinel and --sentinel-master go together"),
        (["--cluster", "--redis-url", "unix:///tmp/s.sock"], "not reached over a unix socket"),
        (["--cluster", "--redis-url", "redis://h/3"], "only database 0"),
        (["--redis-url", "redis://h/0", "--tls-ca-file", "pyproject.toml"], "need a rediss:// URL"),
        (["--sentinel", "h:x", "--sentinel-master", "m"], "'h:x' is not HOST:PORT"),
    ],
)
def test_impossible_settings_are_exit_2_before_any_connection(
    args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["list", *args], env={"KAMIKAZE_REDIS_URL": None})
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_sentinels_from_the_environment_are_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Settings] = []

    def record(settings: Settings, work: object) -> tuple[list[object], float]:
        seen.append(settings)
        return [], 0.0

    monkeypatch.setattr("kamikaze.cli.run_redis", record)
    env = {"KAMIKAZE_SENTINELS": "a:1, b:2,[::1]:3", "KAMIKAZE_SENTINEL_MASTER": "m"}
    result = CliRunner().invoke(main, ["list", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert seen[0].sentinels == (("a", 1), ("b", 2), ("::1", 3))
    assert seen[0].sentinel_master == "m"


# URLs that do not name one server unambiguously (docs/security.rst) ---------------------

SECRET = "S3cretPW"

# Each: a URL a user might type, and the words the refusal must contain.
MALFORMED_URLS = [
    (f"redis:/:{SECRET}@127.0.0.1:6390/0", "redis:// (two slashes)"),
    ("redis:/127.0.0.1:6390/0", "redis:// (two slashes)"),
    (f"kamikaze:{SECRET}@host:6390", "not a redis://, rediss:// or unix:// URL"),
    (f"http://:{SECRET}@host:6390/0", "unknown scheme 'http'"),
    (f"redis://:{SECRET}@/0", "names no host"),
    ("redis:///0", "names no host"),
    (f"redis://:{SECRET[:3]}/{SECRET[3:]}@host:6390/0", "names no host"),
    (f"redis://:{SECRET}@host:port/0", "port is not a number from 1 to 65535"),
    (f"redis://host:{SECRET}", "port is not a number from 1 to 65535"),
    (f"redis://:{SECRET}@host:0/0", "port is not a number from 1 to 65535"),
    (f"redis://:{SECRET}@host:99999/0", "port is not a number from 1 to 65535"),
    (f"redis://:{SECRET}@host:6390/db1", "path is not a database number"),
    (f"redis://:{SECRET}@host:6390/0/1", "path is not a database number"),
    (f"redis://:{SECRET}@host:6390/0?foo=bar", "unknown query argument 'foo'"),
    (f"redis://:{SECRET}@[::1/0", "not a valid URL"),
    (f"unix:{SECRET}@/tmp/redis.sock", "unix:// (two slashes)"),
    (f"unix://{SECRET}/tmp/redis.sock", "absolute path"),
    (f"unix://:{SECRET}@", "names no socket path"),
]


@pytest.mark.parametrize(("url", "reason"), MALFORMED_URLS)
def test_a_malformed_url_is_refused_without_quoting_it(url: str, reason: str) -> None:
    settings = Settings(redis_url=url)
    with pytest.raises(ValueError, match=re.escape(reason)) as raised:
        settings.connection_kwargs()
    assert SECRET not in str(raised.value)
    assert SECRET not in settings.address
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h", {"host": "h", "port": 6379}),
        ("REDIS://h:1/2", {"host": "h", "port": 1, "db": 2}),
        ("redis://h:1/", {"host": "h", "port": 1}),
        (
            "redis://u:p%40ss@h/0?db=3",
            {"host": "h", "port": 6379, "db": 3, "username": "u", "password": "p@ss"},
        ),
        ("rediss://[::1]:6380/0", {"host": "::1", "port": 6380, "db": 0, "ssl": True}),
        ("unix:///run/redis.sock?db=1", {"unix_socket_path": "/run/redis.sock", "db": 1}),
        ("unix://:pw@/run/redis.sock", {"unix_socket_path": "/run/redis.sock", "password": "pw"}),
    ],
)
def test_a_well_formed_url_is_used_as_it_is(url: str, expected: dict[str, object]) -> None:
    # The URL wins over host and port: a URL without a port means 6379, not --redis-port.
    settings = Settings(redis_url=url, redis_host="elsewhere", redis_port=7000)
    assert settings.connection_kwargs() == expected


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://h", "redis://h:6379"),
        ("rediss://u:pw@[::1]:6380/0", "rediss://[::1]:6380"),
        ("unix://:pw@/run/redis.sock", "/run/redis.sock"),
    ],
)
def test_the_address_of_a_url(url: str, address: str) -> None:
    assert Settings(redis_url=url).address == address


@pytest.mark.parametrize("name", ["a#b?c%41", "relative"])
def test_the_embedded_socket_is_used_as_it_is(name: str, tmp_path: Path) -> None:
    """Not through a URL: '#', '?' and '%' in a path would change it, a relative one lose it
    (a relative directory is taken from the working directory)."""
    runtime_dir = tmp_path / name if name != "relative" else Path(name)
    settings = Settings(embedded=True, embedded_runtime_dir=str(runtime_dir))
    settings.check()
    socket = str(Path.cwd() / runtime_dir / "server.sock")
    assert settings.connection_kwargs() == {"unix_socket_path": socket}


def test_with_sentinel_a_url_may_leave_the_host_to_sentinel() -> None:
    settings = Settings(redis_url="redis://:pw@/1", sentinels=(("a", 1),), sentinel_master="m")
    settings.check()
    assert settings.connection_kwargs()["password"] == "pw"
    assert settings.connection_kwargs()["db"] == 1


PLAIN_URLS = [
    "redis://h",
    "REDIS://h:1/2",
    "redis://h:1/",
    "redis://u:p%40ss@h/0",
    "redis://:only%3Apassword@h:7000/15",
    "redis://user@h",
    "rediss://[::1]:6380/0",
    "rediss://u:p@host.example:6380",
    "unix:///run/redis.sock",
    "unix://:pw@/run/redis%20sock",
    "unix://u:pw@/tmp/a%23b.sock",
]


@pytest.mark.parametrize("url", PLAIN_URLS)
def test_a_url_without_a_query_is_read_as_redis_py_reads_it(url: str) -> None:
    """kamikaze.urls reads such URLs without importing redis-py (the one-shot
    commands start fast); redis-py's parse_url must agree."""
    from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

    expected: dict[str, object] = dict(parse_url(url))
    connection_class = expected.pop("connection_class", None)
    if connection_class is UnixDomainSocketConnection:
        expected["unix_socket_path"] = expected.pop("path")
    else:
        expected.setdefault("port", 6379)
        if connection_class is SSLConnection:
            expected["ssl"] = True
    assert urls.url_kwargs(url) == expected


@pytest.mark.timeout(10)  # a second read of the FIFO would wait forever
def test_a_password_file_is_read_once_per_process(tmp_path: Path) -> None:
    """`--redis-password-file <(echo pw)`, /dev/stdin or a FIFO can be read once:
    checking the settings, then connecting, must not read it twice."""
    fifo = tmp_path / "pw-fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("once\n"))
    writer.start()
    settings = Settings(redis_url="redis://h:1/0", password_file=str(fifo))
    settings.check()
    writer.join(timeout=5)
    assert settings.connection_kwargs()["password"] == "once"  # a second read would block
    assert Settings(password_file=str(fifo)).connection_kwargs()["password"] == "once"
