"""TLS against real redis-servers (`tests.topologies.TlsServer`): a rediss:// URL
with the test CA, a client certificate for a server that demands one, and the
one-line exit 1 when the server's certificate does not verify.

Covers: kamikaze/settings.py, kamikaze/connections.py, kamikaze/errors.py (TLS)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.integration.processes import Service, kamikaze_env, run
from tests.servers import TLS, needs
from tests.topologies import Certs, TlsServer, cluster_port, create_cluster, stop_all

pytestmark = needs(TLS)

CONSUMER = "example_consumer.consumer.blocking_consumer_func"


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    """A queue of this test's own on the shared servers."""
    return f"tls-{request.node.name}"


def connect_error(server: TlsServer) -> str:
    return f"Error: cannot connect to Redis at rediss://127.0.0.1:{server.port}: "


def payloads(listed: subprocess.CompletedProcess[str]) -> list[str]:
    assert listed.returncode == 0, listed.stderr
    return [package["payload"] for package in json.loads(listed.stdout)]


def assert_one_line(result: subprocess.CompletedProcess[str], prefix: str) -> str:
    """Exit 1 with one stderr line starting with `prefix`; return the line."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(prefix), lines
    return lines[0]


# -- working connections --------------------------------------------------------------


def test_push_list_remove_with_the_ca_file_from_the_environment(
    tls_server: TlsServer, certs: Certs, key: str
) -> None:
    env = kamikaze_env(tls_server.url, key, {"KAMIKAZE_TLS_CA_FILE": str(certs.ca)})
    assert run("push", "secret-job", "100", "1", env=env).returncode == 0
    assert run("push", "later", "100", "5", env=env).returncode == 0
    assert payloads(run("list", "--json", env=env)) == ["secret-job", "later"]
    assert run("remove", "secret-job", env=env).returncode == 0
    assert payloads(run("list", "--json", env=env)) == ["later"]
    with tls_server.client() as direct:  # really written over TLS, to that server
        assert direct.zcard(key) == 1


def test_push_list_remove_with_the_tls_options(
    tls_server: TlsServer, certs: Certs, key: str
) -> None:
    env = kamikaze_env("", "")
    for name in ("KAMIKAZE_REDIS_URL", "KAMIKAZE_KEY"):
        del env[name]
    options = ["--redis-url", tls_server.url, "--tls-ca-file", str(certs.ca), "--key", key]
    assert run("push", "by-option", "100", "2", *options, env=env).returncode == 0
    assert payloads(run("list", "--json", *options, env=env)) == ["by-option"]
    assert run("remove", "by-option", *options, env=env).returncode == 0
    assert payloads(run("list", "--json", *options, env=env)) == []


def test_the_service_follows_pushes_over_tls(
    tls_server: TlsServer, certs: Certs, key: str, services: list[Service]
) -> None:
    env = kamikaze_env(tls_server.url, key, {"KAMIKAZE_TLS_CA_FILE": str(certs.ca)})
    service = Service("service", CONSUMER, env=env)
    services.append(service)
    service.expect(f"watching {key} at rediss://127.0.0.1:{tls_server.port}")
    service.expect("Queue is empty")
    assert run("push", "over-tls", "100", "3", env=env).returncode == 0
    service.expect("Consuming 'over-tls' (priority 3.0)")
    assert run("push", "more-urgent", "100", "1", env=env).returncode == 0
    service.expect("Consuming 'more-urgent' (priority 1.0)")
    assert run("remove", "more-urgent", env=env).returncode == 0
    service.expect("Consuming 'over-tls'")


def test_a_server_demanding_a_client_certificate_accepts_ours(
    mutual_tls_server: TlsServer, certs: Certs, key: str
) -> None:
    env = kamikaze_env(mutual_tls_server.url, key, {"KAMIKAZE_TLS_CA_FILE": str(certs.ca)})
    client_cert = ["--tls-cert-file", str(certs.client_cert)]
    client_cert += ["--tls-key-file", str(certs.client_key)]
    assert run("push", "mutual", "100", "1", *client_cert, env=env).returncode == 0
    assert payloads(run("list", "--json", *client_cert, env=env)) == ["mutual"]
    # the same from the environment
    env["KAMIKAZE_TLS_CERT_FILE"] = str(certs.client_cert)
    env["KAMIKAZE_TLS_KEY_FILE"] = str(certs.client_key)
    assert run("remove", "mutual", env=env).returncode == 0
    assert payloads(run("list", "--json", env=env)) == []


# -- failures -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["push", "x", "10", "1"], ["list"], ["remove", "x"]])
def test_a_certificate_from_another_ca_is_exit_1_and_one_line(
    tls_server: TlsServer, certs: Certs, key: str, command: list[str]
) -> None:
    env = kamikaze_env(tls_server.url, key, {"KAMIKAZE_TLS_CA_FILE": str(certs.wrong_ca)})
    result = run(*command, env=env)
    line = assert_one_line(
        result, connect_error(tls_server) + "TLS certificate verification failed ("
    )
    assert line.endswith(")")
    with tls_server.client() as direct:  # nothing was written
        assert direct.exists(key) == 0


def test_without_a_ca_file_the_system_cas_do_not_trust_a_private_ca(
    tls_server: TlsServer, key: str
) -> None:
    env = kamikaze_env(tls_server.url, key)  # rediss:// alone: TLS, verified by the system CAs
    result = run("push", "x", "10", "1", env=env)
    assert_one_line(result, connect_error(tls_server) + "TLS certificate verification failed (")
    with tls_server.client() as direct:
        assert direct.exists(key) == 0


@pytest.mark.parametrize("command", [["push", "x", "10", "1"], ["list"]])
def test_a_server_demanding_a_client_certificate_refuses_none_with_one_line(
    mutual_tls_server: TlsServer, certs: Certs, key: str, command: list[str]
) -> None:
    env = kamikaze_env(mutual_tls_server.url, key, {"KAMIKAZE_TLS_CA_FILE": str(certs.ca)})
    result = run(*command, env=env)
    # With TLS 1.3 the client learns of the refusal only after its handshake:
    # mostly as "Connection reset by peer", sometimes as "TLS failed (...)".
    assert_one_line(result, connect_error(mutual_tls_server))
    with mutual_tls_server.client() as direct:
        assert direct.exists(key) == 0


@pytest.mark.parametrize("option", ["ca", "cert", "key"])
def test_a_tls_option_with_a_redis_url_is_exit_2(
    tls_server: TlsServer, certs: Certs, key: str, option: str
) -> None:
    path = {"ca": certs.ca, "cert": certs.client_cert, "key": certs.client_key}[option]
    env = kamikaze_env(f"redis://127.0.0.1:{tls_server.port}/0", key)
    result = run("list", f"--tls-{option}-file", str(path), env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "--tls-* options need a rediss:// URL" in result.stderr
    assert "Traceback" not in result.stderr
    # the same from the environment
    env[f"KAMIKAZE_TLS_{option.upper()}_FILE"] = str(path)
    result = run("push", "x", "10", "1", env=env)
    assert result.returncode == 2 and "--tls-* options need a rediss:// URL" in result.stderr


def test_the_service_with_the_wrong_ca_exits_1_at_once(
    tls_server: TlsServer, certs: Certs, key: str
) -> None:
    env = kamikaze_env(tls_server.url, key, {"KAMIKAZE_TLS_CA_FILE": str(certs.wrong_ca)})
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "kamikaze", "service", CONSUMER],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert elapsed < 10, f"took {elapsed:.1f} s to give up"
    assert "Traceback" not in result.stderr
    assert "Queue is empty" not in result.stdout  # the consumer was never called
    watching, *rest = result.stderr.strip().splitlines()
    assert watching.endswith(f"watching {key} at rediss://127.0.0.1:{tls_server.port}")
    assert len(rest) == 1, rest  # fatal at once: no "lost Redis ... reconnecting" loop
    assert rest[0].startswith(connect_error(tls_server) + "TLS certificate verification failed (")


@pytest.fixture(scope="module")
def tls_cluster(certs: Certs) -> Iterator[list[TlsServer]]:
    """Three TLS-only masters whose cluster bus is TLS too."""
    ports: list[int] = []
    for _ in range(3):
        ports.append(cluster_port(ports))
    bus = (
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", "2000",
        "--tls-cluster", "yes",
        "--tls-client-cert-file", str(certs.client_cert),
        "--tls-client-key-file", str(certs.client_key),
    )  # fmt: skip
    nodes = [TlsServer(certs=certs, port=port, extra_args=bus) for port in ports]
    try:
        for node in nodes:
            node.start()
        create_cluster(nodes)
        deadline = time.monotonic() + 30
        while not all(cluster_ok(node) for node in nodes):
            assert time.monotonic() < deadline, "the TLS cluster did not form"
            time.sleep(0.1)
        yield nodes
    finally:
        stop_all(nodes)
        for node in nodes:
            node.remove()


def cluster_ok(node: TlsServer) -> bool:
    with node.client() as client:
        return client.execute_command("CLUSTER INFO").get("cluster_state") == "ok"


def test_a_tls_cluster_serves_every_command(
    tls_cluster: list[TlsServer], certs: Certs, services: list[Service]
) -> None:
    env = kamikaze_env(
        tls_cluster[0].url,
        "tls-cluster-queue",
        {"KAMIKAZE_CLUSTER": "1", "KAMIKAZE_TLS_CA_FILE": str(certs.ca)},
    )
    service = Service("service", CONSUMER, env=env)
    services.append(service)
    service.expect("watching tls-cluster-queue at cluster node rediss://127.0.0.1:")
    service.expect("Queue is empty", timeout=15)
    assert run("push", "over-tls", "100", "1", env=env).returncode == 0
    service.expect("Consuming 'over-tls'")  # SSUBSCRIBE on the key's node, over TLS
    assert payloads(run("list", "--json", env=env)) == ["over-tls"]
    assert run("remove", "over-tls", env=env).returncode == 0
    service.expect("Queue is empty")
