"""Settings: where Redis is, how to reach it safely, and which queue key to
use; builds the client (one server, Sentinel, or Cluster)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from kamikaze.embedded import EmbeddedServer

DEFAULT_KEY = "kamikaze"
DEFAULT_SENTINEL_PORT = 26379
CONNECT_TIMEOUT = 5.0
SOCKET_TIMEOUT = 3.0  # a command unanswered this long means a dead or frozen link


class SettingError(ValueError):
    """A setting that cannot work; `setting` is the field at fault, named like
    its command-line option (so the CLI can name the option or variable)."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class Settings:
    """Connection settings; a URL, when given, wins over host and port.

    Secrets (the URL may hold a password) are kept out of repr()."""

    redis_url: str | None = field(default=None, repr=False)
    redis_host: str = "localhost"
    redis_port: int = 6379
    key: str = DEFAULT_KEY
    embedded: bool = False
    embedded_runtime_dir: str | None = None
    embedded_data_dir: str | None = None
    password_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str | None = None
    cluster: bool = False

    def embedded_server(self) -> EmbeddedServer:
        from kamikaze.embedded import EmbeddedServer

        return EmbeddedServer.at(self.embedded_runtime_dir, self.embedded_data_dir)

    @property
    def url(self) -> str | None:
        """The URL to connect to: the embedded server's socket, or the one given."""
        return self.embedded_server().url if self.embedded else self.redis_url

    @property
    def uses_tls(self) -> bool:
        return self.tls_files or (self.url or "").startswith("rediss://")

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
        self._check_key()
        if self.embedded and (self.cluster or self.sentinels):
            raise ValueError("--embedded cannot be combined with --cluster or --sentinel")
        if self.cluster and self.sentinels:
            raise ValueError("--cluster and --sentinel exclude each other")
        if bool(self.sentinels) != bool(self.sentinel_master):
            raise ValueError("--sentinel and --sentinel-master go together")
        kwargs = self.connection_kwargs()
        if self.cluster and "unix_socket_path" in kwargs:
            raise ValueError("a Redis Cluster is not reached over a unix socket")
        if self.cluster and kwargs.get("db"):
            raise ValueError("a Redis Cluster has only database 0")

    def _check_key(self) -> None:
        try:
            self.key.encode("utf-8")
            companion_key(self.key, "expiry")
        except UnicodeEncodeError:  # a byte of argv that is not UTF-8, surrogate-escaped
            raise SettingError("the key is not valid UTF-8", "key") from None
        except ValueError as exc:
            raise SettingError(str(exc), "key") from None

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

    def client(self) -> Redis:
        """A client for the queue's server: Sentinel's master, a Cluster, or one server."""
        from redis.asyncio import Redis

        options = {**_client_options(), **self.connection_kwargs()}
        if self.sentinels:
            return self._sentinel_master(options)
        if self.cluster:
            from redis.asyncio.cluster import RedisCluster

            options.pop("db", None)
            cluster: Redis = RedisCluster(**options)  # type: ignore[assignment]
            return cluster
        return Redis(**options)

    def _sentinel_master(self, options: dict[str, Any]) -> Redis:
        from redis.asyncio.sentinel import Sentinel

        for name in ("host", "port", "unix_socket_path"):
            options.pop(name, None)
        # The sentinels get the same quick retry: a dead one (its host may
        # have died with the master) must not cost seconds on every connect.
        sentinel_kwargs = {
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": SOCKET_TIMEOUT,
            "retry": _client_options()["retry"],
        }
        sentinel = Sentinel(list(self.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
        assert self.sentinel_master is not None
        master: Redis = sentinel.master_for(self.sentinel_master, **options)
        return master


def _client_options() -> dict[str, Any]:
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.maint_notifications import MaintNotificationsConfig

    from kamikaze.writes import RecordingRetry

    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        # One quick retry for a blip; the service has its own reconnect loop.
        # Writes are safe to retry: their scripts recognise a repeated call.
        "retry": RecordingRetry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1),
        # redis-py 8 asks every new connection for maintenance notifications
        # (a round trip, refused by Redis 7); we need none.
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
        # Nor CLIENT SETINFO on every connection: Redis 7.2+ and Valkey would refuse
        # it to the README's least-privilege user and log each refusal in ACL LOG.
        "driver_info": None,
    }


def read_password(path: str) -> str:
    """The first line of a password file, without its line ending."""
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


def companion_key(key: str, suffix: str) -> str:
    """An extra key in the same Redis Cluster slot as `key` (SPEC §1).

    A key with a hash tag already (`a{b}c`) keeps it: `a{b}c:suffix`.
    A key without one is wrapped: `{key}:suffix`.
    """
    if not key:
        raise ValueError("the key is empty")
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    if start >= 0 and end > start + 1:
        return f"{key}:{suffix}"
    if "}" in key:
        raise ValueError(
            f"key {key!r} contains '}}' but no hash tag: give it one, e.g. '{{{key}}}'"
        )
    return f"{{{key}}}:{suffix}"
