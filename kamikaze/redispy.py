"""Where redis-py's type hints end: the few calls into its untyped or private
parts (the Sentinel constructor, hinted only since 8.2; the reply parser's
error table; the cluster client, which is not a `Redis`), each wrapped once
and typed here, so that mypy --strict passes on every release in the tested
range (pyproject.toml) without a `type: ignore` that one release needs and
another calls unused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.sentinel import Sentinel


def sentinel(sentinels: list[tuple[str, int]], sentinel_kwargs: dict[str, Any]) -> Sentinel:
    from redis.asyncio.sentinel import Sentinel

    make: Any = Sentinel
    made: Sentinel = make(sentinels, sentinel_kwargs=sentinel_kwargs)
    return made


def cluster(options: dict[str, Any]) -> Redis:
    """A RedisCluster, used where a Redis is: the commands we send are the same."""
    from redis.asyncio.cluster import RedisCluster

    make: Any = RedisCluster
    made: Redis = make(**options)
    return made


def cluster_nodes(cluster: Redis) -> list[Any]:
    nodes: list[Any] = getattr(cluster, "get_nodes")()  # noqa: B009 - not in Redis' type
    return nodes


def error_reply(text: str) -> Exception:
    """The exception redis-py raises for the error reply `text`
    (-WRONGTYPE, -NOAUTH, -MOVED ...): its parser's own table."""
    from redis._parsers.base import BaseParser

    parse: Any = BaseParser.parse_error
    error: Exception = parse(text)
    return error
