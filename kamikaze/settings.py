"""Settings: where Redis is and which queue key to use; builds the client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from kamikaze.embedded import EmbeddedServer

DEFAULT_KEY = "kamikaze"
CONNECT_TIMEOUT = 5.0
SOCKET_TIMEOUT = 3.0  # a command unanswered this long means a dead or frozen link


@dataclass(frozen=True)
class Settings:
    """Connection settings; a URL, when given, wins over host and port."""

    redis_url: str | None = None
    redis_host: str = "localhost"
    redis_port: int = 6379
    key: str = DEFAULT_KEY
    embedded: bool = False
    embedded_runtime_dir: str | None = None
    embedded_data_dir: str | None = None

    def embedded_server(self) -> EmbeddedServer:
        from kamikaze.embedded import EmbeddedServer

        return EmbeddedServer.at(self.embedded_runtime_dir, self.embedded_data_dir)

    @property
    def url(self) -> str | None:
        """The URL to connect to: the embedded server's socket, or the one given."""
        return self.embedded_server().url if self.embedded else self.redis_url

    @property
    def address(self) -> str:
        """Where Redis is, for messages: never includes credentials."""
        if self.embedded:
            return f"the embedded server ({self.embedded_server().socket})"
        if not self.redis_url:
            return f"{self.redis_host}:{self.redis_port}"
        url = urlsplit(self.redis_url)
        if not url.scheme or (not url.netloc and url.scheme != "unix"):
            return self.redis_url
        if url.scheme == "unix":
            return url.path
        host = url.hostname or "localhost"
        return f"{url.scheme}://{host}:{url.port or 6379}"

    def check(self) -> None:
        """Raise ValueError, naming it, if the URL is not one redis-py can use."""
        if not self.redis_url or self.embedded:
            return
        from redis.asyncio.connection import parse_url

        try:
            parse_url(self.redis_url)
            urlsplit(self.redis_url).port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"{self._address_for_error()}: {exc}") from None

    def _address_for_error(self) -> str:
        try:
            return repr(self.address)
        except ValueError:  # a port that is not a number
            return "the Redis URL"

    def client(self) -> Redis:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialWithJitterBackoff

        options: dict[str, Any] = {
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": SOCKET_TIMEOUT,
            # One quick retry for a blip; the service has its own reconnect loop.
            "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1),
        }
        try:  # redis-py >= 8 asks every new connection for maintenance
            # notifications (a round trip, refused by Redis 7); we need none.
            from redis.maint_notifications import MaintNotificationsConfig

            options["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
        except ImportError:
            pass
        if self.url:
            return Redis.from_url(self.url, **options)
        return Redis(host=self.redis_host, port=self.redis_port, **options)


def companion_key(key: str, suffix: str) -> str:
    """An extra key in the same Redis Cluster slot as `key` (SPEC §1).

    A key with a hash tag already (`a{b}c`) keeps it: `a{b}c:suffix`.
    A key without one is wrapped: `{key}:suffix`.
    """
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    if start >= 0 and end > start + 1:
        return f"{key}:{suffix}"
    if "}" in key:
        raise ValueError(
            f"key {key!r} contains '}}' but no hash tag: give it one, e.g. '{{{key}}}'"
        )
    return f"{{{key}}}:{suffix}"
