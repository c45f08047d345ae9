"""Sentinel against a real topology (`tests.topologies.SentinelSet`: a master, a
replica, three sentinels): the CLI asks the sentinels for the master, the
master's password applies to the master only, and the service follows a
failover after `kill -9` of the master.

Covers: kamikaze/connections.py (Sentinel), kamikaze/follower.py."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import Service, kamikaze_env, run
from tests.servers import free_port
from tests.topologies import SentinelSet

CONSUMER = "example_consumer.consumer.blocking_consumer_func"
MASTER = "kamikaze-master"
PASSWORD = "Sent1nel-Pa55word"


@pytest.fixture(scope="module")
def sentinel_set() -> Iterator[SentinelSet]:
    with SentinelSet(MASTER) as topology:
        yield topology


@pytest.fixture(scope="module")
def protected_set() -> Iterator[SentinelSet]:
    """Master and replica with requirepass; the sentinels themselves without one."""
    with SentinelSet(MASTER, password=PASSWORD) as topology:
        yield topology


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    """A queue of this test's own on the shared topology."""
    return f"sentinel-{request.node.name}"


def sentinel_options(topology: SentinelSet, master: str = MASTER) -> list[str]:
    options = []
    for host, port in topology.sentinel_addresses():
        options += ["--sentinel", f"{host}:{port}"]
    return [*options, "--sentinel-master", master]


def sentinel_env(topology: SentinelSet, key: str, url: str | None = None) -> dict[str, str]:
    """KAMIKAZE_SENTINELS (comma-separated) and KAMIKAZE_SENTINEL_MASTER; no URL
    unless one is given."""
    sentinels = ",".join(f"{host}:{port}" for host, port in topology.sentinel_addresses())
    extra = {"KAMIKAZE_SENTINELS": sentinels, "KAMIKAZE_SENTINEL_MASTER": MASTER}
    env = kamikaze_env(url or "", key, extra)
    if url is None:
        del env["KAMIKAZE_REDIS_URL"]
    return env


def bare_env(key: str) -> dict[str, str]:
    env = kamikaze_env("", key)
    del env["KAMIKAZE_REDIS_URL"]
    return env


def via(topology: SentinelSet, master: str = MASTER) -> str:
    """How the CLI names the master in its messages."""
    sentinels = ",".join(f"{host}:{port}" for host, port in topology.sentinel_addresses())
    return f"master {master!r} via Sentinel {sentinels}"


def payloads(listed: subprocess.CompletedProcess[str]) -> list[str]:
    assert listed.returncode == 0, listed.stderr
    return [package["payload"] for package in json.loads(listed.stdout)]


def master_zcard(topology: SentinelSet, key: str) -> int:
    """The queue's size on the current master, asked directly."""
    with topology.node(topology.master_port()).client() as direct:
        return int(direct.zcard(key))


# -- finding the master ---------------------------------------------------------------


def test_push_list_remove_with_sentinel_options(sentinel_set: SentinelSet, key: str) -> None:
    env = bare_env(key)
    options = sentinel_options(sentinel_set)
    assert len(options) == 8  # three --sentinel HOST:PORT and the master's name
    assert run("push", "job", "100", "2", *options, env=env).returncode == 0
    assert run("push", "urgent", "100", "1", *options, env=env).returncode == 0
    assert payloads(run("list", "--json", *options, env=env)) == ["urgent", "job"]
    assert master_zcard(sentinel_set, key) == 2  # on the master that Sentinel names
    assert run("remove", "urgent", *options, env=env).returncode == 0
    assert payloads(run("list", "--json", *options, env=env)) == ["job"]


def test_push_list_remove_with_sentinels_from_the_environment(
    sentinel_set: SentinelSet, key: str
) -> None:
    env = sentinel_env(sentinel_set, key)
    assert "," in env["KAMIKAZE_SENTINELS"]
    assert run("push", "from-env", "100", "1", env=env).returncode == 0
    assert payloads(run("list", "--json", env=env)) == ["from-env"]
    assert master_zcard(sentinel_set, key) == 1
    assert run("remove", "from-env", env=env).returncode == 0
    assert payloads(run("list", "--json", env=env)) == []


def test_a_dead_sentinel_is_skipped(sentinel_set: SentinelSet, key: str) -> None:
    host, port = sentinel_set.sentinel_addresses()[-1]
    env = bare_env(key)
    env["KAMIKAZE_SENTINELS"] = f"127.0.0.1:{free_port()},{host}:{port}"  # the dead one first
    env["KAMIKAZE_SENTINEL_MASTER"] = MASTER
    started = time.monotonic()
    assert run("push", "one-of-two", "100", "1", env=env).returncode == 0
    # Works, but slowly: the dead sentinel costs redis-py's default retries
    # with backoff (~4-5 s), since the sentinels get no `retry` of their own.
    print(f"\npush with a dead sentinel first: {time.monotonic() - started:.2f} s")
    assert master_zcard(sentinel_set, key) == 1


@pytest.mark.parametrize("command", [["push", "x", "10", "1"], ["list"], ["remove", "x"]])
def test_a_wrong_master_name_is_exit_1_and_one_line(
    sentinel_set: SentinelSet, key: str, command: list[str]
) -> None:
    result = run(*command, *sentinel_options(sentinel_set, "no-such-master"), env=bare_env(key))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot connect to Redis at {via(sentinel_set, 'no-such-master')}: "
        "No master found for 'no-such-master'"
    ]
    assert "Traceback" not in result.stderr


def test_no_live_sentinel_is_exit_1_and_one_line(key: str) -> None:
    env = bare_env(key)
    port = free_port()
    result = run("list", "--sentinel", f"127.0.0.1:{port}", "--sentinel-master", MASTER, env=env)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"Error: cannot connect to Redis at master {MASTER!r} via Sentinel 127.0.0.1:{port}: "
    )
    assert "Traceback" not in result.stderr


def test_sentinel_without_a_master_name_is_exit_2(sentinel_set: SentinelSet, key: str) -> None:
    env = sentinel_env(sentinel_set, key)
    del env["KAMIKAZE_SENTINEL_MASTER"]
    result = run("list", env=env)
    assert result.returncode == 2 and "--sentinel and --sentinel-master go together" in (
        result.stderr
    )


# -- the master's password ------------------------------------------------------------


def test_the_password_file_applies_to_the_master_not_the_sentinels(
    protected_set: SentinelSet, key: str, tmp_path: Path
) -> None:
    # The sentinels have no requirepass: a client that sent them the password
    # would get "AUTH ... called without any password configured" and fail.
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    options = [*sentinel_options(protected_set), "--redis-password-file", str(password_file)]
    env = bare_env(key)
    result = run("push", "protected", "100", "1", *options, env=env)
    assert result.returncode == 0, result.stderr
    assert payloads(run("list", "--json", *options, env=env)) == ["protected"]
    assert master_zcard(protected_set, key) == 1
    assert run("remove", "protected", *options, env=env).returncode == 0
    assert payloads(run("list", "--json", *options, env=env)) == []
    # the file from the environment
    env = sentinel_env(protected_set, key)
    env["KAMIKAZE_REDIS_PASSWORD_FILE"] = str(password_file)
    assert run("push", "env-file", "100", "1", env=env).returncode == 0
    assert payloads(run("list", "--json", env=env)) == ["env-file"]


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{PASSWORD}@/0",  # no host: Sentinel names it
        f"redis://default:{PASSWORD}@localhost/0",
        f"redis://:{PASSWORD}@nowhere.invalid:1/0",  # the URL's host is ignored
    ],
)
def test_the_password_in_the_url_applies_to_the_master(
    protected_set: SentinelSet, key: str, url: str
) -> None:
    env = sentinel_env(protected_set, key, url=url)
    assert run("push", "url-password", "100", "1", env=env).returncode == 0
    assert payloads(run("list", "--json", env=env)) == ["url-password"]
    assert run("remove", "url-password", env=env).returncode == 0


@pytest.mark.parametrize("password", [None, "wr0ng-Pa55"])
def test_a_missing_or_wrong_master_password_is_exit_1_and_one_line(
    protected_set: SentinelSet, key: str, password: str | None
) -> None:
    url = None if password is None else f"redis://:{password}@/0"
    result = run("push", "x", "10", "1", env=sentinel_env(protected_set, key, url=url))
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    said = "refused the credentials" if password else "wants credentials, and none were given"
    assert lines[0].startswith(f"Error: Redis at {via(protected_set)} {said}")
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr and "wr0ng-Pa55" not in result.stderr


# -- failover -------------------------------------------------------------------------


def test_the_service_follows_a_failover_without_losing_packages(
    services: list[Service],
) -> None:
    key = "failover"
    with SentinelSet(MASTER) as topology:
        env = sentinel_env(topology, key)
        service = Service("service", CONSUMER, env=env)
        services.append(service)
        service.expect(f"watching {key} at {via(topology)}")
        service.expect("Queue is empty")
        assert run("push", "A", "300", "5", env=env).returncode == 0
        service.expect("Consuming 'A' (priority 5.0)")

        old_port = topology.master_port()
        replica = next(node for node in topology.data_nodes if node.port != old_port)
        # Replication is asynchronous: kill only once the replica has A, so that
        # what is tested is Kamikaze, not the replication race.
        deadline = time.monotonic() + 10
        with replica.client() as direct:
            while direct.zcard(key) != 1:
                assert time.monotonic() < deadline, "the replica never got A"
                time.sleep(0.02)

        pushed: dict[str, float | int | None] = {"at": None, "attempts": 0}

        def push_until_accepted() -> None:
            # Exit 1 while Sentinel names no reachable master; B goes in once.
            give_up = time.monotonic() + 45
            while time.monotonic() < give_up:
                pushed["attempts"] = int(pushed["attempts"] or 0) + 1
                if run("push", "B", "300", "1", env=env).returncode == 0:
                    pushed["at"] = time.monotonic()
                    return
                time.sleep(0.05)

        killed_at = time.monotonic()
        assert topology.kill_master() == old_port
        pusher = threading.Thread(target=push_until_accepted, daemon=True)
        pusher.start()
        service.expect("Consuming 'B' (priority 1.0)", timeout=40)
        delivered = time.monotonic() - killed_at
        pusher.join(timeout=60)
        assert pushed["at"] is not None, f"B was never accepted ({pushed['attempts']} tries)"
        accepted = float(pushed["at"]) - killed_at
        print(
            f"\nfailover: kill to delivery {delivered:.2f} s "
            f"(push accepted after {accepted:.2f} s, {pushed['attempts']} tries)"
        )
        assert delivered < 30

        new_port = topology.master_port()
        assert new_port == replica.port
        # A was not lost: the promoted replica had it; B is on top, pushed once.
        assert payloads(run("list", "--json", env=env)) == ["B", "A"]
        # and the service goes on following the new master
        assert run("remove", "B", env=env).returncode == 0
        service.expect("Consuming 'A'")

        code, _ = service.stop(signal.SIGTERM)
        assert code == 0
        service.expect("shutting down")  # read everything it printed
    lost = [line for line in service.lines if "lost Redis at" in line]
    back = [line for line in service.lines if "reconnected to Redis at" in line]
    assert len(lost) == 1, service.lines
    assert len(back) == 1, service.lines
    assert f"lost Redis at {via(topology)} (" in lost[0] and "reconnecting" in lost[0]
    assert f"reconnected to Redis at {via(topology)} after " in back[0]
    # the order: lost, reconnected, then B delivered
    index = {line: number for number, line in enumerate(service.lines)}
    assert index[lost[0]] < index[back[0]] < index["Consuming 'B' (priority 1.0)"]
    assert "Traceback" not in "\n".join(service.lines)


def first_to_print(candidates: list[Service], text: str, timeout: float) -> tuple[Service, str]:
    """The service among `candidates` that prints a line with `text` first, and the line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for service in candidates:
            with contextlib.suppress(AssertionError):
                return service, service.expect(text, timeout=0.05)
    raise AssertionError(f"no service printed {text!r} in {timeout} s")


def test_exclusive_services_elect_a_new_term_after_a_failover(services: list[Service]) -> None:
    """docs/ha.rst, Sentinel: the lease lives in the master's data and is
    re-acquired, not carried over: the active service steps down when the
    master goes; after the failover one service takes a term above the one
    before and calls its consumer; the other calls nothing."""
    key = "exclusive-failover"
    with SentinelSet(MASTER) as topology:
        env = sentinel_env(topology, key)
        pair = [Service("service", CONSUMER, "--exclusive", env=env) for _ in range(2)]
        services.extend(pair)
        assert run("push", "A", "300", "5", env=env).returncode == 0
        active, line = first_to_print(pair, "active now, term ", timeout=15)
        term = int(line.rsplit(" ", 1)[1])
        active.expect("Consuming 'A'")
        assert topology.kill_master() is not None
        assert run_until_accepted(env, "push", "B", "300", "1")
        elected, line = first_to_print(pair, "active now, term ", timeout=40)
        assert int(line.rsplit(" ", 1)[1]) > term
        elected.expect("Consuming 'B' (priority 1.0)", timeout=10)
        time.sleep(1.0)  # the other one had time to call, were it active
        for service in pair:
            assert service.stop(signal.SIGTERM)[0] == 0
        outputs = {service: "\n".join(service.all_lines()) for service in pair}
    (other,) = [service for service in pair if service is not elected]
    after_failover = outputs[other].split("standby now")[-1]
    assert "Consuming 'B'" not in after_failover, outputs[other]
    assert "Traceback" not in "".join(outputs.values())


def run_until_accepted(env: dict[str, str], *args: str, timeout: float = 45.0) -> bool:
    """Run a command until it exits 0 (while Sentinel names no reachable master, 1)."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if run(*args, env=env).returncode == 0:
            return True
        time.sleep(0.05)
    return False
