"""The least-privilege ACL user of docs/security.rst, put through every command
and every public method of the Python API; shared by test_acl.py (one server)
and test_cluster.py.

What the user was refused comes from ACL LOG; what it ran comes from INFO
commandstats (commands run inside scripts included). Together they derive the
docs' command list: a command used but not granted fails, and so does one
granted but used by nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import redis

from kamikaze import Queue, SyncQueue
from kamikaze.cli import main
from kamikaze.keys import QueueKeys, companion_key
from tests.integration.processes import Service, run

SECURITY = Path(__file__).parents[2] / "docs" / "security.rst"
CONSUMER = "example_consumer.consumer.blocking_consumer_func"
FAR = 4102444800.0  # 2100-01-01: a package as 0.1.x wrote it, alive all test long
# Sent by every connection before it authenticates (HELLO carries AUTH), and by
# the admins' new ones after (redis-py's CLIENT SETINFO, Redis 7.2+ and Valkey;
# Kamikaze sends none, and the user would be refused it: ACL LOG).
HANDSHAKE = {"auth", "hello", "client|setinfo"}
# Sent by the tests themselves, as the admin, around the exercise.
ADMIN = {"acl|log", "acl|setuser", "config|resetstat", "info", "script|flush"}
# Used only where a walk goes on past an entry that has gone (a listing past
# 2,000 entries, a top below 256 of others' members): not in this exercise.
USED_ON_LONG_WALKS = {"zrank"}
# Sent only when a subscription stays idle for 2 s, which it may not here.
SENT_WHEN_IDLE = {"ping"}
# Run by the server itself, not by a client: Valkey's Lua engine reads its
# lua-enable-insecure-api setting when it runs a script.
BY_THE_SERVER = {"config|get"}


def readme_acl_line() -> str:
    """The docs' line, from the user's name on: `kamikaze on >PASSWORD ...`."""
    readme = SECURITY.read_text()
    line = next(line.strip() for line in readme.splitlines() if "ACL SETUSER kamikaze" in line)
    return line.split("ACL SETUSER ", 1)[1]


def readme_cluster_rules() -> list[str]:
    """What docs/security.rst says to add on a Redis Cluster."""
    text = " ".join(SECURITY.read_text().split())
    found = re.search(r"On a Redis Cluster also add ``([^`]+)``", text)
    assert found, "docs/security.rst no longer says what to add on a Redis Cluster"
    return found[1].split()


def key_patterns(key: str) -> str:
    """The keys and channel of the queue `key`, by the docs' rule for another --key."""
    templates = {
        comment.strip(): template.strip()
        for line in SECURITY.read_text().splitlines()
        if line.strip().startswith("~NAME ")
        for template, comment in [line.split("#", 1)]
    }
    has_own_tag = companion_key(key, "expiry") == f"{key}:expiry"
    wanted = "with a hash tag of its own" if has_own_tag else "without a hash tag"
    (template,) = [t for comment, t in templates.items() if comment.startswith(f"NAME {wanted}")]
    return template.replace("NAME", re.sub(r"([*?\[\]\\])", r"\\\1", key))


def acl_rules(key: str, password: str) -> list[str]:
    """The docs' rules (without the user's name) for the queue `key`."""
    _user, rules = readme_acl_line().split(" ", 1)
    mine = key_patterns("kamikaze")
    assert mine in rules, f"the docs' line does not follow its own rule: {mine}"
    return rules.replace(mine, key_patterns(key)).replace("PASSWORD", password).split()


def granted(rules: Iterable[str]) -> set[str]:
    return {rule[1:] for rule in rules if rule.startswith("+")}


def reset(admins: Iterable[redis.Redis]) -> None:
    """Forget what ran before: statistics, loaded scripts, the ACL log."""
    for admin in admins:
        admin.execute_command("CONFIG", "RESETSTAT")
        admin.execute_command("SCRIPT", "FLUSH")
        admin.execute_command("ACL", "LOG", "RESET")


def check_grants(admins: Iterable[redis.Redis], rules: list[str], unused: set[str]) -> None:
    """Nothing was refused, everything run was granted, and every grant but
    `unused` was needed."""
    admins = list(admins)
    refused = [(entry["reason"], entry["object"]) for a in admins for entry in a.acl_log()]
    assert refused == [], f"the docs' ACL user was refused: {refused}"
    ran = {
        name.removeprefix("cmdstat_")
        for admin in admins
        for name, stats in admin.info("commandstats").items()
        if stats["calls"] or stats["rejected_calls"]
    }
    used = ran - HANDSHAKE - ADMIN - BY_THE_SERVER
    lacking = sorted(f"+{command}" for command in used - granted(rules))
    assert not lacking, f"the docs' ACL line lacks {' '.join(lacking)}"
    needless = sorted(f"+{command}" for command in granted(rules) - used - unused)
    assert not needless, f"the docs' ACL line grants {' '.join(needless)}, which nothing used"


def run_every_command(env: Mapping[str, str], services: list[Service]) -> set[str]:
    """Every command that talks to Redis, as a user runs it (watch piped);
    returns their names."""
    service = Service("service", CONSUMER, "--exclusive", env=env)  # what its lease needs too
    watch = Service("watch", env=env)
    services += [service, watch]
    service.expect("Queue is empty", timeout=15)
    watch.expect(" 0 packages", timeout=15)
    standby = Service("service", CONSUMER, "--exclusive", env=env)  # sees the lease held
    services.append(standby)
    standby.expect("watching")

    def ok(*args: str, stdin: str | None = None) -> str:
        result = run(*args, env=env, stdin=stdin)
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout + result.stderr

    ok("push", "job", "100", "1")
    service.expect("Consuming 'job'")
    watch.expect(" 1 package")
    ok("push", "-", stdin='{"payload": "soon", "ttl": 0.3, "priority": 0}\n')
    service.expect("Consuming 'soon'")
    service.expect("Consuming 'job'")  # the top expired: as this user too
    assert "\tjob\t" in ok("list")
    assert '"payload": "job"' in ok("list", "--json")
    assert "removed 1 package " in ok("remove", "job")
    service.expect("Queue is empty")
    watch.expect(" 0 packages")
    ok("push", "left", "100", "1")
    service.expect("Consuming 'left'")
    assert ok("list", "--raw").endswith(":left\n")
    assert "cleared 1 package " in ok("clear", "--yes")
    service.expect("Queue is empty")
    watch.expect(" 0 packages")
    exercise_web(env, services)
    for process in (service, watch, standby):
        assert process.stop(signal.SIGTERM)[0] == 0
    return {"service", "watch", "push", "list", "remove", "clear", "web"}


def exercise_web(env: Mapping[str, str], services: list[Service]) -> None:
    """`kamikaze web` with writes: its state, a push and a remove through it."""
    import json
    import tempfile
    import time
    import urllib.request

    with tempfile.NamedTemporaryFile("w", suffix=".token") as token_file:
        token = "least-privilege-token-0123456789"
        token_file.write(token + "\n")
        token_file.flush()
        web = Service(
            "web", "--port", "0", "--allow-writes", "--token-file", token_file.name, env=env
        )
        services.append(web)
        url = web.expect("on http://", timeout=15).split("on ", 1)[1].split(" ", 1)[0]

        def post(path: str, body: dict[str, Any]) -> int:
            request = urllib.request.Request(
                url + path, json.dumps(body).encode(),
                {"Content-Type": "application/json", "X-Kamikaze-Token": token},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)

        def payloads() -> list[str]:
            with urllib.request.urlopen(url + "api/state", timeout=10) as response:
                return [row["payload"] for row in json.load(response)["packages"]]

        assert post("api/push", {"payload": "from-web", "ttl": 100, "priority": 1}) == 200
        deadline = time.monotonic() + 10
        while payloads() != ["from-web"]:
            assert time.monotonic() < deadline, payloads()
            time.sleep(0.05)
        assert post("api/remove", {"payload": "from-web"}) == 200
        assert web.stop(signal.SIGTERM)[0] == 0


def commands_that_talk_to_redis() -> set[str]:
    return set(main.commands) - {"version"}


class Calls:
    """Stands in for an object and records which of its attributes were used."""

    def __init__(self, target: Any, names: set[str]) -> None:
        self._target = target
        self._names = names

    def __getattr__(self, name: str) -> Any:
        self._names.add(name)
        return getattr(self._target, name)


def public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


async def call_every_queue_method(
    url: str, key: str, admin: redis.Redis, **options: Any
) -> set[str]:
    """Every public method of Queue, as the user; `admin` writes as 0.1.x did.
    Returns the names used."""
    names = {"connect", "from_environment"}
    queue: Any = Calls(Queue.connect(url, key, **options), names)
    try:
        with the_environment_of(url, key, options):
            async with Queue.from_environment() as same:
                assert await same.top() is None
        await queue.push_many([("b", 100, 2), ("brief", 0.2, 1)])
        await queue.push("a", 100, 3)
        assert (await queue.top()).payload == "brief"
        await asyncio.sleep(0.3)
        assert (await queue.read_top()).top.payload == "b"  # 'brief' expired
        assert [p.payload for p in await queue.packages()] == ["b", "a"]
        listed, _ = await queue.listing(limit=1)
        assert [p.payload for p in listed] == ["b"]
        assert await queue.server_time() > 0
        assert await queue.active_service() == ""  # no exclusive service here
        assert await queue.size() == 2
        admin.zadd(key, {f"{FAR}:old": 4, f"{FAR}:older": 5})  # 0.1.x: in no index
        # A call's outcome past its minute: the next write forgets it (HDEL).
        admin.hset(QueueKeys(key).calls, "old-call", "1")
        admin.zadd(QueueKeys(key).call_expiries, {"old-call": 0})
        assert await queue.remove("old") == 1  # walks the queue, in bounded steps
        await reconcile(queue, "queue")
        assert await queue.sizes() == (3, 3)
        admin.zrem(key, f"{FAR}:older")  # 0.1.x: the index does not know
        await reconcile(queue, "index")  # it cannot tell: 'older' expires in 2286
        assert await queue.remove("older") == 0  # its entry goes with our remove
        assert await queue.sizes() == (2, 2)
        await queue.push("swept", 0.1, 9)
        await asyncio.sleep(0.2)
        assert await queue.sweep() == 1
        assert await queue.sweep_step() == (0, None)
        reading = await queue.read_top()
        assert reading.seq == await queue.change_number() >= 1
        assert queue.signalled(reading, []) is reading  # no signal, nothing new
        changes = queue.follow()  # `watch` is the same method, by its old name
        assert Queue.watch is Queue.follow
        names.add("watch")
        assert (await anext(changes)).payload == "b"
        await queue.push("c", 100, 0)
        assert (await anext(changes)).payload == "c"
        await changes.aclose()
        for payload in ("a", "b"):
            assert await queue.remove(payload) == 1
        assert [member[-2:] for member, _ in await queue.entries()] == [b":c"]
        assert await queue.clear() == 1
        assert await queue.size() == 0
    finally:
        await queue.aclose()
    return names


async def reconcile(queue: Any, walked: str) -> None:
    cursor = None
    while cursor != 0:
        cursor, _changed = await queue.reconcile_step(walked, cursor or 0)


def the_environment_of(url: str, key: str, options: dict[str, Any]) -> Any:
    """os.environ as a service with these settings exports it to its consumer."""
    from unittest import mock

    from kamikaze.environment import export_settings
    from kamikaze.settings import Settings

    environ = dict(os.environ)
    export_settings(Settings(redis_url=url, key=key, **options), environ)
    return mock.patch.dict(os.environ, environ, clear=True)


def call_every_sync_queue_method(url: str, key: str, **options: Any) -> set[str]:
    names: set[str] = {"from_environment"}
    sync: Any = Calls(SyncQueue(url, key, **options), names)
    try:
        with the_environment_of(url, key, options), SyncQueue.from_environment() as same:
            assert same.top() is None
        assert sync.key == key
        sync.push("s1", 100, 1)
        sync.push_many([("s2", 100, 0)])
        assert sync.top().payload == "s2"
        assert [p.payload for p in sync.packages()] == ["s2", "s1"]
        assert sync.remove("s1") == 1
        assert sync.clear() == 1
        assert sync.packages() == []
    finally:
        sync.close()
    return names
