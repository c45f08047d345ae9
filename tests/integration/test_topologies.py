"""Self-checks of `tests.topologies`: each real topology comes up and behaves as the
other integration tests expect, seen through plain sync redis-py clients.

Covers: tests/topologies.py (the tests' own servers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from tests.servers import TLS, needs
from tests.topologies import Certs, Cluster, SentinelSet, TlsServer


@pytest.fixture(scope="module")
def sentinel_set() -> Iterator[SentinelSet]:
    with SentinelSet() as topology:
        yield topology


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster() as topology:
        yield topology


# Connections meant to fail: no retries with backoff (redis-py's default), fail at once.
NO_RETRY: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "socket_timeout": 2}

# -- TLS ------------------------------------------------------------------------------


def test_certs_are_files_with_private_keys(certs: Certs) -> None:
    for path in (certs.server_key, certs.client_key):
        assert path.stat().st_mode & 0o777 == 0o600
    for path in (certs.ca, certs.server_cert, certs.client_cert, certs.wrong_ca):
        assert Path(path).read_text().startswith("-----BEGIN CERTIFICATE-----")


@needs(TLS)
def test_tls_with_the_right_ca(tls_server: TlsServer, certs: Certs) -> None:
    assert tls_server.url == f"rediss://127.0.0.1:{tls_server.port}/0"
    client = redis.Redis(
        host="127.0.0.1", port=tls_server.port, ssl=True, ssl_ca_certs=str(certs.ca)
    )
    with client:
        assert client.set("tls-key", "v")
        assert client.get("tls-key") == b"v"
    with redis.Redis.from_url(tls_server.url, ssl_ca_certs=str(certs.ca)) as client:
        assert client.ping()


@needs(TLS)
def test_tls_with_the_wrong_ca_fails(tls_server: TlsServer, certs: Certs) -> None:
    client = redis.Redis(
        host="127.0.0.1",
        port=tls_server.port,
        ssl=True,
        ssl_ca_certs=str(certs.wrong_ca),
        **NO_RETRY,
    )
    with client, pytest.raises(redis.ConnectionError, match=r"(?i)certificate verify failed"):
        client.ping()


@needs(TLS)
def test_plain_text_is_not_served(tls_server: TlsServer) -> None:
    with (
        redis.Redis(host="127.0.0.1", port=tls_server.port, **NO_RETRY) as client,
        pytest.raises(redis.ConnectionError),
    ):
        client.ping()


@needs(TLS)
def test_required_client_cert_missing_fails(mutual_tls_server: TlsServer, certs: Certs) -> None:
    client = redis.Redis(
        host="127.0.0.1",
        port=mutual_tls_server.port,
        ssl=True,
        ssl_ca_certs=str(certs.ca),
        **NO_RETRY,
    )
    with client, pytest.raises(redis.ConnectionError):
        client.ping()


@needs(TLS)
def test_required_client_cert_given_works(mutual_tls_server: TlsServer, certs: Certs) -> None:
    client = redis.Redis(
        host="127.0.0.1",
        port=mutual_tls_server.port,
        ssl=True,
        ssl_ca_certs=str(certs.ca),
        ssl_certfile=str(certs.client_cert),
        ssl_keyfile=str(certs.client_key),
    )
    with client:
        assert client.ping()
    with mutual_tls_server.client() as client:
        assert client.ping()


# -- Sentinel -------------------------------------------------------------------------


def test_sentinel_client_finds_the_master(sentinel_set: SentinelSet) -> None:
    sentinel = Sentinel(sentinel_set.sentinel_addresses(), socket_timeout=2)
    host, port = sentinel.discover_master(sentinel_set.master_name)
    assert (host, port) == ("127.0.0.1", sentinel_set.master_port())
    master = sentinel.master_for(sentinel_set.master_name, socket_timeout=2)
    assert master.set("sentinel-key", "v")
    assert master.get("sentinel-key") == b"v"
    master.close()


def test_failover_promotes_the_replica(sentinel_set: SentinelSet) -> None:
    old_port = sentinel_set.master_port()
    replica = next(node for node in sentinel_set.data_nodes if node.port != old_port)
    assert sentinel_set.kill_master() == old_port
    new_port = sentinel_set.wait_for_failover(old_port, timeout=30)
    assert new_port == replica.port
    sentinel = Sentinel(sentinel_set.sentinel_addresses(), socket_timeout=2)
    assert sentinel.discover_master(sentinel_set.master_name) == ("127.0.0.1", new_port)
    master = sentinel.master_for(sentinel_set.master_name, socket_timeout=2)
    assert master.set("after-failover", "v")
    master.close()


# -- Cluster --------------------------------------------------------------------------


def test_cluster_spreads_keys_over_nodes(cluster: Cluster) -> None:
    assert cluster.seed_url() == f"redis://127.0.0.1:{cluster.ports[0]}/0"
    keys = [f"cluster-key-{i}" for i in range(20)]
    client = RedisCluster.from_url(cluster.seed_url(), socket_timeout=2)
    try:
        for key in keys:
            assert client.set(key, key)
        assert [client.get(key) for key in keys] == [key.encode() for key in keys]
    finally:
        client.close()
    homes = {key: cluster.node_port_for_key(key) for key in keys}
    assert len(set(homes.values())) >= 2
    for key, port in homes.items():  # the key really is on the node named for it
        node = next(node for node in cluster.nodes if node.port == port)
        with node.client() as direct:
            assert direct.get(key) == key
