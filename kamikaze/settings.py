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
        if url.scheme == "unix":
            return url.path
        host = url.hostname or "localhost"
        return f"{url.scheme}://{host}:{url.port or 6379}"

    def client(self) -> Redis:
        from redis.asyncio import Redis

        if self.redis_url:
            return Redis.from_url(self.redis_url, socket_connect_timeout=CONNECT_TIMEOUT)
        return Redis(
            host=self.redis_host,
            port=self.redis_port,
            socket_connect_timeout=CONNECT_TIMEOUT,
        )


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
        raise ValueError(f"key {key!r} contains '}}' but no hash tag: give it one, e.g. '{{{key}}}'")
    return f"{{{key}}}:{suffix}"
