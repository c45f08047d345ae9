"""Settings: where Redis is, how to reach it safely, and which queue key to
use. Its fields are the connection options declared in
kamikaze.parameters (CONNECTION: flag, environment variable, kind, default,
help), from which the CLI's options, the environment, `Queue.connect(**options)`
and the docs' tables are made. To add a connection option: declare it there
and give it a typed attribute here.

A plain class, not a dataclass: the one-shot commands import it at every
start, and `dataclasses` costs more than the rest of a `kamikaze push`.
"""

from __future__ import annotations

from kamikaze.keys import check_key
from kamikaze.parameters import CONNECTION, DEFAULT_SENTINEL_PORT, sentinel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from redis.asyncio import Redis

    from kamikaze.embedded import EmbeddedServer

__all__ = ["DEFAULT_SENTINEL_PORT", "SettingError", "Settings", "parse_sentinel", "read_password"]
parse_sentinel = sentinel
FIELDS = tuple(param.name for param in CONNECTION)
_DEFAULTS = {param.name: param.default for param in CONNECTION}
_SHOWN = tuple(param.name for param in CONNECTION if not param.secret)


class SettingError(ValueError):
    """A setting that cannot work; `setting` is the field at fault (the CLI
    names its option, or its environment variable)."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


class Settings:
    """Connection settings; a URL, when given, wins over host and port.
    Immutable; `replace(**changes)` makes a changed copy.

    Secrets (the URL may hold a password) are kept out of repr()."""

    __slots__ = FIELDS
    # The fields, as kamikaze.parameters.CONNECTION declares them.
    redis_url: str | None
    redis_host: str
    redis_port: int
    key: str
    embedded: bool
    embedded_runtime_dir: str | None
    embedded_data_dir: str | None
    embedded_idle_timeout: float
    password_file: str | None
    tls_ca_file: str | None
    tls_cert_file: str | None
    tls_key_file: str | None
    sentinels: tuple[tuple[str, int], ...]
    sentinel_master: str | None
    cluster: bool

    def __init__(self, **values: Any) -> None:
        for name in values:
            if name not in _DEFAULTS:
                raise TypeError(f"Settings() got an unexpected keyword argument {name!r}")
        for name, default in _DEFAULTS.items():
            object.__setattr__(self, name, values.get(name, default))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Settings are immutable: use replace({name}=...)")

    def values(self) -> dict[str, Any]:
        """Every field and its value."""
        return {name: getattr(self, name) for name in FIELDS}

    def replace(self, **changes: Any) -> Settings:
        return Settings(**{**self.values(), **changes})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return self.values() == other.values()

    def __hash__(self) -> int:
        return hash(tuple(repr(value) for value in self.values().values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _SHOWN)
        return f"Settings({shown})"

    def embedded_server(self) -> EmbeddedServer:
        from kamikaze.embedded import EmbeddedServer

        return EmbeddedServer.at(
            self.embedded_runtime_dir, self.embedded_data_dir, self.embedded_idle_timeout
        )

    @property
    def embedded_socket(self) -> str:
        """Where the embedded server listens (kamikaze.places; no kamikaze.embedded)."""
        from kamikaze import places

        return places.socket_path(places.runtime_dir(self.embedded_runtime_dir))

    def client(self) -> Redis:
        """A client for the queue's server (kamikaze.connections builds it)."""
        from kamikaze import connections

        return connections.client(self)

    @property
    def url(self) -> str | None:
        """The URL to connect to: the embedded server's socket, or the one given."""
        return f"unix://{self.embedded_socket}" if self.embedded else self.redis_url

    @property
    def topology(self) -> str:
        """ "sentinel", "cluster" or "single" (one server, the embedded one too)."""
        return "sentinel" if self.sentinels else "cluster" if self.cluster else "single"

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
            return f"the embedded server ({self.embedded_socket})"
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
            kwargs: dict[str, Any] = {"unix_socket_path": self.embedded_socket}
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
