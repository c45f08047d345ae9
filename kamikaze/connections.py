"""Connections: the one module that knows Redis topologies. It builds the
client for one server, a Sentinel-managed master or a Redis Cluster, with
the timeouts and retry policy every command shares; says which change-signal
commands a topology uses (PUBLISH/SUBSCRIBE, or SPUBLISH/SSUBSCRIBE on a
cluster's shard); makes the client for the shard that holds a key; and
checks that a combination of settings can work.

To add a topology: a branch in `client()` and `check()`, its signal
commands in `signal_commands()`, its pause between reconnections in
`backoff_cap()`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the one-shot commands start without it
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from kamikaze.settings import Settings

CONNECT_TIMEOUT = 5.0
SOCKET_TIMEOUT = 3.0  # a command unanswered this long means a dead or frozen link
BACKOFF_CAP = 2.0  # seconds between reconnection tries, at most
SENTINEL_BACKOFF_CAP = 0.5  # asking the sentinels is cheap, and a failover is brief


def client(settings: Settings) -> Redis:
    """A client for the queue's server: Sentinel's master, a Cluster, or one server."""
    from redis.asyncio import Redis

    from kamikaze import redispy

    options = {**client_options(), **settings.connection_kwargs()}
    if settings.sentinels:
        return _sentinel_master(settings, options)
    if settings.cluster:
        options.pop("db", None)
        return redispy.cluster(options)
    return Redis(**options)


def client_options() -> dict[str, Any]:
    """Timeouts and retry policy, the same for every topology."""
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
        # it to the least-privilege user (docs/security.rst) and log each refusal.
        "driver_info": None,
    }


def _sentinel_master(settings: Settings, options: dict[str, Any]) -> Redis:
    from kamikaze import redispy

    for name in ("host", "port", "unix_socket_path"):
        options.pop(name, None)
    # The sentinels get the same quick retry: a dead one (its host may
    # have died with the master) must not cost seconds on every connect.
    sentinel_kwargs = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "retry": client_options()["retry"],
    }
    sentinel = redispy.sentinel(list(settings.sentinels), sentinel_kwargs)
    assert settings.sentinel_master is not None
    master: Redis = sentinel.master_for(settings.sentinel_master, **options)
    return master


def check(settings: Settings, kwargs: dict[str, Any]) -> None:
    """Raise ValueError for a combination of topology settings that cannot
    work; `kwargs` are the settings' connection arguments."""
    if settings.embedded and (settings.cluster or settings.sentinels):
        raise ValueError("--embedded cannot be combined with --cluster or --sentinel")
    if settings.cluster and settings.sentinels:
        raise ValueError("--cluster and --sentinel exclude each other")
    if bool(settings.sentinels) != bool(settings.sentinel_master):
        raise ValueError("--sentinel and --sentinel-master go together")
    if settings.cluster and "unix_socket_path" in kwargs:
        raise ValueError("a Redis Cluster is not reached over a unix socket")
    if settings.cluster and kwargs.get("db"):
        raise ValueError("a Redis Cluster has only database 0")
    if kwargs.get("username") and kwargs.get("password") is None:
        # redis-py would send AUTH with no password, the fast path nothing.
        raise ValueError(
            "the URL names a user but no password: write redis://USER:PASSWORD@HOST "
            "(any password, for a user with nopass), or give --redis-password-file"
        )


def backoff_cap(settings: Settings) -> float:
    return SENTINEL_BACKOFF_CAP if settings.sentinels else BACKOFF_CAP


def is_cluster(redis: Redis) -> bool:
    from redis.asyncio.cluster import RedisCluster

    return isinstance(redis, RedisCluster)


def signal_command(redis: Redis) -> str:
    """How a script signals a change: 0.1.x's PUBLISH, or SPUBLISH on a
    cluster, where sharded pub/sub stays on the queue's shard."""
    return "SPUBLISH" if is_cluster(redis) else "PUBLISH"


async def subscription_client(redis: Redis, key: str) -> tuple[Redis, bool]:
    """The client to subscribe to `key`'s signals on, and whether it is a
    shard's (SSUBSCRIBE, made here, to be closed by the caller) or `redis`
    itself (SUBSCRIBE)."""
    if not is_cluster(redis):
        return redis, False
    return await shard_client(redis, key), True


async def shard_client(cluster: Any, key: str) -> Redis:
    """A client for the cluster node that holds `key`, with the cluster's
    credentials and TLS settings."""
    from redis.asyncio import ConnectionPool, Redis

    await cluster.initialize()
    node = cluster.get_node_from_key(key)
    pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
    return Redis.from_pool(pool)


def describe(redis: Redis) -> str:
    """Where a client points, for log lines: no credentials."""
    if is_cluster(redis):
        from kamikaze import redispy

        nodes = redispy.cluster_nodes(redis)
        return "cluster " + ",".join(f"{node.host}:{node.port}" for node in nodes[:3])
    pool = redis.connection_pool
    service = getattr(pool, "service_name", None)  # a Sentinel-managed master
    if service:
        return f"master {service!r} via Sentinel"
    kwargs = pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
