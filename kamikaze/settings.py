"""Settings: where Redis is and which queue key to use; builds the client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from redis.asyncio import Redis

DEFAULT_KEY = "kamikaze"
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Settings:
    """Connection settings; a URL, when given, wins over host and port."""

    redis_url: str | None = None
    redis_host: str = "localhost"
    redis_port: int = 6379
    key: str = DEFAULT_KEY

    @property
    def address(self) -> str:
        """Where Redis is, for messages: never includes credentials."""
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
        if not self.redis_url:
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

        options = {
            "socket_connect_timeout": CONNECT_TIMEOUT,
            # One quick retry for a blip; the service has its own reconnect loop.
            "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1),
        }
        if self.redis_url:
            return Redis.from_url(self.redis_url, **options)
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
