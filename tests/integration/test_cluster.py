"""Kamikaze on a real three-master Redis Cluster: the CLI and the service with
`--cluster`, a queue's keys in one slot, the sharded change signal, expiry, and a
service riding out a restart of the node that holds its queue.

Covers: kamikaze/connections.py, kamikaze/signals.py, kamikaze/keys.py, kamikaze/lua/ (SPUBLISH)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from kamikaze import Queue, SyncQueue
from kamikaze.keys import companion_key
from kamikaze.package import index_entry
from tests.integration.least_privilege import (
    SENT_WHEN_IDLE,
    USED_ON_LONG_WALKS,
    acl_rules,
    call_every_queue_method,
    call_every_sync_queue_method,
    check_grants,
    commands_that_talk_to_redis,
    public_names,
    readme_cluster_rules,
    reset,
    run_every_command,
)
from tests.integration.processes import Service, kamikaze_env, run
from tests.topologies import Cluster, Node

CONSUMER = "example_consumer.consumer.blocking_consumer_func"
NEVER = "\0no such line\0"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(masters=3) as topology:
        yield topology


def cluster_env(cluster: Cluster, key: str) -> dict[str, str]:
    return kamikaze_env(cluster.seed_url(), key, {"KAMIKAZE_CLUSTER": "1"})


def node_for(cluster: Cluster, key: str) -> Node:
    port = cluster.node_port_for_key(key)
    return next(node for node in cluster.nodes if node.port == port)


def keys_on_distinct_nodes(cluster: Cluster, prefix: str) -> dict[int, str]:
    """One key per master, {port: key}, named `prefix-N`."""
    found: dict[int, str] = {}
    for number in range(1000):
        key = f"{prefix}-{number}"
        found.setdefault(cluster.node_port_for_key(key), key)
        if len(found) == len(cluster.nodes):
            return found
    raise AssertionError(f"no key per node among {prefix}-0..999: {found}")


def quiet(service: Service, seconds: float) -> list[str]:
    """Collect what `service` prints within `seconds`, expecting nothing in
    particular (and that it keeps running); returns all its lines so far."""
    with pytest.raises(AssertionError, match="no line with"):
        service.expect(NEVER, timeout=seconds)
    return service.lines


def start_service(key: str, cluster: Cluster, services: list[Service]) -> Service:
    service = Service("service", CONSUMER, env=cluster_env(cluster, key))
    services.append(service)
    service.expect("Queue is empty", timeout=15)
    return service


def listed(env: dict[str, str]) -> list[dict[str, Any]]:
    result = run("list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    packages: list[dict[str, Any]] = json.loads(result.stdout)
    return packages


def wait_until_ok(cluster: Cluster, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for node in cluster.nodes:
            try:
                with node.client() as client:
                    states.append(client.cluster("INFO").get("cluster_state"))
            except (redis.RedisError, OSError) as error:
                states.append(repr(error))
        if all(state == "ok" for state in states):
            return
        assert time.monotonic() < deadline, f"cluster not ok again: {states}"
        time.sleep(0.05)


# -- the CLI ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "extra_keys"),
    [
        ("cli-queue", ["{cli-queue}:by-payload", "{cli-queue}:seq"]),
        ("orders{shop}", ["orders{shop}:by-payload", "orders{shop}:seq"]),  # its own hash tag
    ],
)
def test_push_list_remove_keep_the_queue_in_one_slot_on_its_node(
    cluster: Cluster, key: str, extra_keys: list[str]
) -> None:
    env = kamikaze_env("", key)
    del env["KAMIKAZE_REDIS_URL"]
    options = ["--redis-url", cluster.seed_url(), "--cluster", "--key", key]
    for payload, priority in (("low", "5"), ("high", "1"), ("mid", "3")):
        pushed = run("push", *options, payload, "100", priority, env=env)
        assert pushed.returncode == 0, pushed.stderr
    result = run("list", "--json", *options, env=env)
    assert result.returncode == 0, result.stderr
    assert [p["payload"] for p in json.loads(result.stdout)] == ["high", "mid", "low"]

    keys = [key, *extra_keys]
    node = node_for(cluster, key)
    with node.client() as client:
        assert [client.exists(k) for k in keys] == [1, 1, 1]
        slots = {client.execute_command("CLUSTER KEYSLOT", k) for k in keys}
        assert slots == {cluster.key_slot(key)}
    for other in cluster.nodes:
        if other is not node:
            with other.client() as client:
                assert client.execute_command("CLUSTER COUNTKEYSINSLOT", cluster.key_slot(key)) == 0

    removed = run("remove", *options, "mid", env=env)
    assert removed.returncode == 0, removed.stderr
    assert [p["payload"] for p in listed(cluster_env(cluster, key))] == ["high", "low"]
    for payload in ("high", "low"):
        assert run("remove", *options, payload, env=env).returncode == 0
    assert listed(cluster_env(cluster, key)) == []
    with node.client() as client:
        assert client.exists(*keys[:2]) == 0  # the queue and its index; the counter stays


def test_a_0_1_member_without_the_extra_keys_is_listed_and_removable(cluster: Cluster) -> None:
    key = "legacy-queue"
    env = cluster_env(cluster, key)
    node = node_for(cluster, key)
    expire = time.time() + 100
    with node.client() as client:
        client.zadd(key, {f"{expire}:old job": 2, ":forever": 4})
        assert client.exists(companion_key(key, "expiry"), companion_key(key, "payload")) == 0
    packages = listed(env)
    assert [(p["payload"], p["priority"]) for p in packages] == [("old job", 2.0), ("forever", 4.0)]
    assert packages[0]["expire_time"] == pytest.approx(expire, abs=0.01)
    assert packages[1]["expire_time"] is None

    result = run("remove", "old job", env=env)
    assert result.returncode == 0, result.stderr
    assert [p["payload"] for p in listed(env)] == ["forever"]
    with node.client() as client:
        assert client.zrange(key, 0, -1) == [":forever"]
    assert run("remove", "forever", env=env).returncode == 0
    assert listed(env) == []


def test_cluster_with_a_unix_socket_is_exit_2() -> None:
    env = kamikaze_env("unix:///tmp/kamikaze-no-such.sock", "q", {"KAMIKAZE_CLUSTER": "1"})
    result = run("list", env=env)
    assert result.returncode == 2
    assert "not reached over a unix socket" in result.stderr
    assert "Traceback" not in result.stderr


# -- services and the sharded signal ----------------------------------------------------


def test_each_service_sees_only_its_own_queue(cluster: Cluster, services: list[Service]) -> None:
    keys = list(keys_on_distinct_nodes(cluster, "shard").values())
    assert len({cluster.node_port_for_key(key) for key in keys}) == 3
    running = {key: start_service(key, cluster, services) for key in keys}

    # each service holds one sharded subscription, on its queue's node only
    for key in keys:
        for node in cluster.nodes:
            with node.client() as client:
                shard = client.execute_command("PUBSUB", "SHARDNUMSUB", key)
                plain = client.execute_command("PUBSUB", "NUMSUB", key)
            holds = node.port == cluster.node_port_for_key(key)
            assert shard == [key, 1 if holds else 0], (key, node.port)
            assert plain == [key, 0]

    for key in keys:
        pushed = run("push", f"for-{key}", "100", "1", env=cluster_env(cluster, key))
        assert pushed.returncode == 0, pushed.stderr
        running[key].expect(f"Consuming 'for-{key}'")
        time.sleep(0.5)
        for other in keys:
            if other != key:
                lines = quiet(running[other], 0.05)
                assert not any(f"for-{key}" in line for line in lines), (other, lines)

    for key, service in running.items():
        consumed = [line for line in quiet(service, 0.05) if "Consuming" in line]
        assert consumed == [f"Consuming 'for-{key}' (priority 1.0)"]


def test_the_signal_is_an_spublish_on_the_queue_s_node(cluster: Cluster) -> None:
    key = "signal-queue"
    node = node_for(cluster, key)
    clients = [each.client() for each in cluster.nodes]
    sharded = node.client()
    try:
        shard_sub = sharded.pubsub()  # type: ignore[no-untyped-call]
        shard_sub.ssubscribe(key)
        plain_subs = [client.pubsub() for client in clients]  # type: ignore[no-untyped-call]
        for sub in plain_subs:
            sub.subscribe(key)
        confirm = shard_sub.get_message(timeout=5)
        assert confirm is not None and confirm["type"] == "ssubscribe"
        for sub in plain_subs:
            confirm = sub.get_message(timeout=5)
            assert confirm is not None and confirm["type"] == "subscribe"

        assert run("push", "signalled", "100", "1", env=cluster_env(cluster, key)).returncode == 0
        message = shard_sub.get_message(timeout=5)
        assert message is not None
        assert (message["type"], message["channel"]) == ("smessage", key)
        assert message["data"].split(" ")[0] == "new_message"
        assert message["data"].endswith(":signalled")  # the top it tells

        deadline = time.monotonic() + 0.5
        for sub in plain_subs:
            got = sub.get_message(timeout=max(0.01, deadline - time.monotonic()))
            assert got is None, got
        assert run("remove", "signalled", env=cluster_env(cluster, key)).returncode == 0
        message = shard_sub.get_message(timeout=5)
        assert message is not None and message["data"].split(" ")[0] == "new_message"
        for sub in plain_subs:
            assert sub.get_message(timeout=0.01) is None
    finally:
        for client in [*clients, sharded]:
            client.close()


def test_the_service_follows_expiry_in_the_cluster(
    cluster: Cluster, services: list[Service]
) -> None:
    key = "expiry-queue"
    env = cluster_env(cluster, key)
    service = start_service(key, cluster, services)
    assert run("push", "later", "100", "5", env=env).returncode == 0
    service.expect("Consuming 'later'")
    started = time.monotonic()
    assert run("push", "soon", "0.5", "1", env=env).returncode == 0
    service.expect("Consuming 'soon' (priority 1.0)")
    service.expect("Consuming 'later' (priority 5.0)", timeout=5)
    assert time.monotonic() - started < 4
    assert [p["payload"] for p in listed(env)] == ["later"]
    with node_for(cluster, key).client(decode_responses=False) as client:  # its index too
        members = client.zrange(key, 0, -1)
        index = client.zrange(companion_key(key, "by-payload"), 0, -1)
    assert [m.split(b":", 1)[1] for m in members] == [b"later"]
    assert index == [index_entry(m) for m in members]


# -- a node restart (keep last: it disturbs the module's cluster) ------------------------


def test_the_service_survives_a_restart_of_its_queue_s_node(
    cluster: Cluster, services: list[Service]
) -> None:
    # a node that is not the seed: the service must find the new process itself
    key = next(
        k for k in keys_on_distinct_nodes(cluster, "restart").values()
        if cluster.node_port_for_key(k) != cluster.nodes[0].port
    )  # fmt: skip
    env = cluster_env(cluster, key)
    node = node_for(cluster, key)
    port = node.port
    service = start_service(key, cluster, services)
    assert run("push", "before", "100", "1", env=env).returncode == 0
    service.expect("Consuming 'before'")
    try:
        node.kill()  # SIGKILL; nodes.conf stays in its directory
        node.start()
        assert node.port == port
        # no persistence in these nodes: the queue comes back empty
        service.expect("lost Redis at", timeout=10)
        service.expect("reconnected to Redis", timeout=20)
        service.expect("Queue is empty", timeout=10)
        pushed = run("push", "after", "100", "1", env=env)
        assert pushed.returncode == 0, pushed.stderr
        service.expect("Consuming 'after'", timeout=10)
        assert service.process.poll() is None
        with node.client() as client:
            assert client.execute_command("PUBSUB", "SHARDNUMSUB", key) == [key, 1]
    finally:
        if not node.alive:
            node.start()
        wait_until_ok(cluster)


def test_watch_follows_a_queue_in_the_cluster(cluster: Cluster, services: list[Service]) -> None:
    env = cluster_env(cluster, "watched-queue")
    watch = Service("watch", env=env)
    services.append(watch)
    watch.expect(" 0 packages", timeout=15)
    assert run("push", "seen", "100", "1", env=env).returncode == 0
    watch.expect(" 1 package", timeout=5)
    assert watch.expect("\tseen\t", timeout=5).startswith("1.0\tseen\t")


@pytest.mark.parametrize(("user", "key"), [("default-key", "kamikaze"), ("tagged", "orders{shop}")])
async def test_the_readme_user_runs_every_command_and_method_on_the_cluster(
    cluster: Cluster, services: list[Service], user: str, key: str
) -> None:
    """The line of docs/security.rst plus what it says to add on a cluster, on every node."""
    rules = acl_rules(key, "cluster-pw") + readme_cluster_rules()
    cluster.slot_map(refresh=True)
    with contextlib.ExitStack() as stack:
        admins = [stack.enter_context(node.client()) for node in cluster.nodes]
        owner = stack.enter_context(node_for(cluster, key).client())
        for admin in admins:
            admin.execute_command("ACL", "SETUSER", user, *rules)
        reset(admins)
        url = f"redis://{user}:cluster-pw@127.0.0.1:{cluster.ports[0]}/0"
        env = kamikaze_env(url, key, {"KAMIKAZE_CLUSTER": "1"})
        assert run_every_command(env, services) == commands_that_talk_to_redis()
        methods = await call_every_queue_method(url, key, owner, cluster=True)
        assert methods == public_names(Queue)
        sync = await asyncio.to_thread(call_every_sync_queue_method, url, key, cluster=True)
        assert sync == public_names(SyncQueue)
        unused = {"publish", "subscribe"} | USED_ON_LONG_WALKS | SENT_WHEN_IDLE  # one server's
        check_grants(admins, rules, unused)


def migrate_slot(cluster: Cluster, slot: int, source: Node, target: Node) -> None:
    """Move one slot and its keys, as `redis-cli --cluster reshard` does."""
    with source.client() as src, target.client() as dst:
        source_id = src.execute_command("CLUSTER MYID")
        target_id = dst.execute_command("CLUSTER MYID")
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        for node in cluster.nodes:
            with node.client() as client:
                client.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
    cluster.slot_map(refresh=True)


def test_the_service_follows_its_queue_s_slot_to_another_node(
    cluster: Cluster, services: list[Service]
) -> None:
    """Last in this file: it changes the cluster's slot map."""
    wait_until_ok(cluster)
    key = "migrating-queue"
    env = cluster_env(cluster, key)
    source = node_for(cluster, key)
    target = next(node for node in cluster.nodes if node is not source)
    service = start_service(key, cluster, services)
    assert run("push", "before", "100", "5", env=env).returncode == 0
    service.expect("Consuming 'before'")

    migrate_slot(cluster, cluster.key_slot(key), source, target)

    assert cluster.node_port_for_key(key) == target.port
    lost = service.expect("lost Redis at", timeout=10)
    assert "the queue's slot moved to another node" in lost
    service.expect("reconnected to Redis", timeout=10)
    assert run("push", "after", "100", "1", env=env).returncode == 0
    service.expect("Consuming 'after'", timeout=10)
    assert [p["payload"] for p in listed(env)] == ["after", "before"]
    with target.client() as client:
        assert client.execute_command("PUBSUB", "SHARDNUMSUB", key) == [key, 1]


@pytest.mark.parametrize("full_cli", ["", "1"], ids=["fast", "full"])
def test_a_node_without_the_key_and_no_cluster_option_says_add_cluster(
    cluster: Cluster, full_cli: str
) -> None:
    """Before: `answered: 144 127.0.0.1:38359`, the MOVED reply stripped."""
    elsewhere = keys_on_distinct_nodes(cluster, "moved")
    port, key = next((p, k) for p, k in elsewhere.items() if p != cluster.nodes[0].port)
    url = f"redis://127.0.0.1:{cluster.nodes[0].port}/0"
    env = kamikaze_env(url, key, {"KAMIKAZE_FULL_CLI": full_cli})
    result = run("push", "job", "60", "1", env=env)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert line.startswith(f"Error: Redis at redis://127.0.0.1:{cluster.nodes[0].port} is a node")
    assert "(MOVED " in line and f"127.0.0.1:{port}): add --cluster" in line
