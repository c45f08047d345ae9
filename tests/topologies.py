"""Real Redis topologies on loopback for the integration tests: a TLS server, a
Sentinel set (master, replica, three sentinels) and a three-master Cluster, from
the server binary `tests.servers.server_binary` picks (redis-server, else the
embedded Valkey; TLS only from a binary that has it), driven by redis-py alone.

Same rules as `tests.servers`: every process has its own temp directory (`--save ''`,
log file inside), is stopped by pid (SIGTERM, then SIGKILL), `remove()` deletes the
directories, and never the machine's shared instance. Every class is a context
manager and stops whatever it started even when start-up fails half way; an atexit
hook kills anything a crashed test run left behind.
"""

from __future__ import annotations

import atexit
import datetime
import ipaddress
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import redis

from tests.servers import TLS, free_port, missing, own_server_binary, server_binary

__all__ = [
    "Certs",
    "Cluster",
    "Node",
    "SentinelNode",
    "SentinelSet",
    "TlsServer",
    "cluster_port",
    "create_cluster",
    "make_certs",
    "stop_all",
]

HOST = "127.0.0.1"
CLUSTER_BUS_OFFSET = 10000
CLUSTER_SLOTS = 16384

# Every process started here and not yet reaped; killed at exit if a run crashes.
_LIVE: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_LIVE):
        if process.poll() is None:
            process.kill()
            process.wait()
        _LIVE.discard(process)


def tls_binary() -> str:
    binary = server_binary(TLS)
    if binary is None:
        raise RuntimeError(f"a TLS server {missing(TLS)}")
    return binary


def _tempdir(prefix: str = "kamikaze-topo-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def cluster_port(taken: Iterable[int] = ()) -> int:
    """A port P < 55535 with P and its cluster bus port P+10000 both free and
    neither in `taken`. Picked at random below the kernel's ephemeral range where
    possible, so outgoing connections do not grab them meanwhile."""
    taken = set(taken)
    try:
        low_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low_ephemeral = 32768
    high = min(55535, low_ephemeral - CLUSTER_BUS_OFFSET)
    low = 10000 if high - 10000 >= 2000 else 1024
    if high - low < 2000:  # odd ephemeral range: anywhere that is legal
        low, high = 1024, 55535
    for _ in range(500):
        port = random.randrange(low, high)
        bus = port + CLUSTER_BUS_OFFSET
        if {port, bus} & taken or {port, bus} & {p + CLUSTER_BUS_OFFSET for p in taken}:
            continue
        if _port_is_free(port) and _port_is_free(bus):
            return port
    raise RuntimeError("no free port pair (P, P+10000) found for a cluster node")


# -- certificates ---------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca: Path


def make_certs(directory: Path) -> Certs:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate
    signed by it, plus an unrelated `wrong_ca`. EC P-256 keys, unencrypted PEM, 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kamikaze tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )

    def new_key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> Any:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )

    def make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = new_key()
        cert = (
            builder(name(common_name), name(common_name), key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def make_leaf(
        common_name: str,
        usage: x509.ObjectIdentifier,
        ca_key: ec.EllipticCurvePrivateKey,
        ca_cert: x509.Certificate,
        san: list[x509.GeneralName] | None = None,
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = new_key()
        cert = (
            builder(name(common_name), ca_cert.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if san:
            cert = cert.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return key, cert.sign(ca_key, hashes.SHA256())

    def write_cert(path: Path, cert: x509.Certificate) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(path, 0o600)
        return path

    ca_key, ca_cert = make_ca("kamikaze test CA")
    server_key, server_cert = make_leaf(
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        ca_key,
        ca_cert,
        san=[x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")],
    )
    client_key, client_cert = make_leaf(
        "kamikaze test client", ExtendedKeyUsageOID.CLIENT_AUTH, ca_key, ca_cert
    )
    _, wrong_ca_cert = make_ca("unrelated test CA")
    return Certs(
        ca=write_cert(directory / "ca.crt", ca_cert),
        server_cert=write_cert(directory / "server.crt", server_cert),
        server_key=write_key(directory / "server.key", server_key),
        client_cert=write_cert(directory / "client.crt", client_cert),
        client_key=write_key(directory / "client.key", client_key),
        wrong_ca=write_cert(directory / "wrong-ca.crt", wrong_ca_cert),
    )


# -- processes ------------------------------------------------------------------------


class Started:
    """`with X(...) as x:` starts x unless it is running, and removes it (stops
    every process, deletes every directory) at the end, also when starting
    fails half way."""

    def _running(self) -> bool:
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def remove(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        if not self._running():
            try:
                self.start()
            except BaseException:
                self.remove()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class AddressInUse(RuntimeError):
    """The server could not listen on its port; another one may do."""


def stop_all(nodes: Iterable[Node], timeout: float = 10.0) -> None:
    """SIGTERM every live node at once, wait, SIGKILL whatever is left; by pid."""
    nodes = [node for node in nodes if node.process is not None]
    for node in nodes:
        assert node.process is not None
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for node in nodes:
        process = node.process
        assert process is not None
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _LIVE.discard(process)
        node.process = None


def _wait(
    condition: Callable[[], Any], timeout: float, what: str, describe: Callable[[], str] = str
) -> Any:
    """Poll `condition` until it returns something truthy; errors count as "not yet"."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
        except (redis.RedisError, OSError) as error:
            last_error, result = error, None
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = describe()
            raise TimeoutError(
                f"{what}: not within {timeout} s"
                + (f" (last error: {last_error!r})" if last_error else "")
                + (f"\n{detail}" if detail else "")
            )
        time.sleep(0.05)


@dataclass(kw_only=True)
class Node(Started):
    """One redis-server process on loopback in its own temp directory.

    `port=0` (the default) picks a free one with `port_picker`, and picks another if
    the server finds it taken after all. `password` sets requirepass and masterauth.
    """

    port: int = 0
    password: str | None = None
    extra_args: tuple[str, ...] = ()
    port_picker: Callable[[], int] = free_port
    binary: str = field(default_factory=own_server_binary)
    dir: Path = field(default_factory=_tempdir)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _auto_port: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.port:
            self.port = self.port_picker()
            self._auto_port = True

    # what to run
    def listen_args(self) -> list[str]:
        return ["--port", str(self.port)]

    def command(self) -> list[str]:
        auth = []
        if self.password:
            auth = ["--requirepass", self.password, "--masterauth", self.password]
        return [
            self.binary,
            *self.listen_args(),
            "--bind",
            HOST,
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(self.dir / "server.log"),
            *auth,
            *self.extra_args,
        ]

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.port

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # life cycle
    def start(self, timeout: float = 10.0, attempts: int = 5) -> Self:
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except AddressInUse:
                if not self._auto_port or attempt == attempts - 1:
                    raise
                self.port = self.port_picker()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> Self:
        if self.alive:
            raise RuntimeError(f"{self} is already running")
        self.log_path.unlink(missing_ok=True)
        # errors before the log file is open (bad config...) go to stderr: keep them
        with open(self.dir / "stderr.log", "wb") as output:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=output, stderr=output
            )
        _LIVE.add(self.process)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    log = self.log()
                    if "in use" in log:
                        raise AddressInUse(f"port {self.port} is taken: {log}")
                    raise RuntimeError(f"{self.command()[:2]} exited: {log}")
                if self.ping():
                    return self
                time.sleep(0.02)
            raise RuntimeError(f"{self.binary} did not answer on port {self.port}: {self.log()}")
        except BaseException:
            self.stop()
            raise

    def ping(self) -> bool:
        """PING over a raw socket (AUTH first when there is a password)."""
        try:
            with self._raw_socket() as sock:
                commands: list[tuple[str, ...]] = [("PING",)]
                if self.password:
                    commands.insert(0, ("AUTH", self.password))
                sock.sendall(b"".join(_resp(*c) for c in commands))
                data = b""
                while data.count(b"\r\n") < len(commands):
                    chunk = sock.recv(256)
                    if not chunk:
                        return False
                    data += chunk
                return data.splitlines()[-1].startswith(b"+PONG")
        except OSError:
            return False

    def _raw_socket(self) -> socket.socket:
        return socket.create_connection(self.address, timeout=0.5)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A plain sync client for this node (decoded responses)."""
        options: dict[str, Any] = {
            "host": HOST,
            "port": self.port,
            "password": self.password,
            "decode_responses": True,
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
        }
        options.update(kwargs)
        return redis.Redis(**options)

    def info(self, section: str) -> dict[str, Any]:
        with self.client() as client:
            return client.info(section)  # type: ignore[no-any-return]

    def log(self) -> str:
        """The tail of the server's log file and of its stdout/stderr."""
        texts = [
            path.read_text(errors="replace")[-3000:]
            for path in (self.log_path, self.dir / "stderr.log")
            if path.exists()
        ]
        return "\n".join(text for text in texts if text.strip())

    def kill(self) -> None:
        """SIGKILL, by pid, and reap."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            _LIVE.discard(self.process)

    def stop(self, timeout: float = 10.0) -> None:
        stop_all([self], timeout)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _running(self) -> bool:
        return self.process is not None


def _resp(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@dataclass(kw_only=True)
class TlsServer(Node):
    """A redis-server that speaks TLS only (`--port 0 --tls-port PORT`)."""

    certs: Certs
    binary: str = field(default_factory=tls_binary)
    require_client_cert: bool = False

    def listen_args(self) -> list[str]:
        return [
            "--port",
            "0",
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.certs.server_cert),
            "--tls-key-file",
            str(self.certs.server_key),
            "--tls-ca-cert-file",
            str(self.certs.ca),
            "--tls-auth-clients",
            "yes" if self.require_client_cert else "no",
        ]

    @property
    def url(self) -> str:
        return f"rediss://{HOST}:{self.port}/0"

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.certs.ca))
        if self.require_client_cert:
            context.load_cert_chain(str(self.certs.client_cert), str(self.certs.client_key))
        return context

    def _raw_socket(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=0.5)
        try:
            return self.ssl_context().wrap_socket(sock, server_hostname=HOST)
        except BaseException:
            sock.close()
            raise

    def client(self, **kwargs: Any) -> redis.Redis:
        """A sync TLS client trusting the test CA (with the client cert if required)."""
        options: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(self.certs.ca)}
        if self.require_client_cert:
            options["ssl_certfile"] = str(self.certs.client_cert)
            options["ssl_keyfile"] = str(self.certs.client_key)
        options.update(kwargs)
        return super().client(**options)


@dataclass(kw_only=True)
class SentinelNode(Node):
    """One sentinel, its (rewritable) config file in its own directory."""

    master_name: str = "kamikaze-master"
    master_port: int = 0
    master_password: str | None = None
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000

    @property
    def config_path(self) -> Path:
        return self.dir / "sentinel.conf"

    @property
    def log_path(self) -> Path:
        return self.dir / "sentinel.log"

    def command(self) -> list[str]:
        name = self.master_name
        lines = [
            f"port {self.port}",
            f"bind {HOST}",
            f'dir "{self.dir}"',
            f'logfile "{self.log_path}"',
            "daemonize no",
            "sentinel resolve-hostnames no",
            f"sentinel monitor {name} {HOST} {self.master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self.master_password:
            lines.append(f"sentinel auth-pass {name} {self.master_password}")
        self.config_path.write_text("\n".join(lines) + "\n")
        # `redis-sentinel CONFIG` is the same binary as `redis-server CONFIG --sentinel`
        return [self.binary, str(self.config_path), "--sentinel", *self.extra_args]


# -- Sentinel -------------------------------------------------------------------------


class SentinelSet(Started):
    """A master, a replica of it and `sentinels` sentinels watching it (quorum 2).

    `start()` returns once the replica is in sync and every sentinel reports the
    master, knows the replica and all the other sentinels.
    """

    def __init__(
        self,
        master_name: str = "kamikaze-master",
        *,
        password: str | None = None,
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        self.master_name = master_name
        self.password = password
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.sentinel_count = sentinels
        # the no-delay diskless sync makes the replica's first sync immediate
        data_args = ("--repl-diskless-sync-delay", "0")
        self.master = Node(password=password, extra_args=data_args)
        self.replica: Node | None = None
        self.sentinels: list[SentinelNode] = []
        self._data_args = data_args

    @property
    def data_nodes(self) -> list[Node]:
        return [self.master] + ([self.replica] if self.replica else [])

    @property
    def nodes(self) -> list[Node]:
        return [*self.data_nodes, *self.sentinels]

    def start(self, timeout: float = 30.0) -> Self:
        try:
            deadline = time.monotonic() + timeout
            self.master.start()
            self.replica = Node(
                password=self.password,
                extra_args=(*self._data_args, "--replicaof", HOST, str(self.master.port)),
            )
            self.replica.start()
            _wait(self._replica_in_sync, _left(deadline), "replica sync", self._logs)
            for _ in range(self.sentinel_count):
                sentinel = SentinelNode(
                    master_name=self.master_name,
                    master_port=self.master.port,
                    master_password=self.password,
                    quorum=self.quorum,
                    down_after_ms=self.down_after_ms,
                    failover_timeout_ms=self.failover_timeout_ms,
                )
                self.sentinels.append(sentinel)
                sentinel.start()
            _wait(self._sentinels_ready, _left(deadline), "sentinel discovery", self._logs)
            return self
        except BaseException:
            self.stop()
            raise

    def _replica_in_sync(self) -> bool:
        assert self.replica is not None
        replica = self.replica.info("replication")
        if replica.get("master_link_status") != "up":
            return False
        master = self.master.info("replication")
        slaves = [v for k, v in master.items() if k.startswith("slave") and isinstance(v, dict)]
        return any(
            s.get("port") == self.replica.port and s.get("state") == "online" for s in slaves
        )

    def _sentinels_ready(self) -> bool:
        assert self.replica is not None
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                master = client.sentinel_master(self.master_name)
                if master["port"] != self.master.port or not master.get("is_master"):
                    return False
                if master.get("is_sdown") or master.get("is_odown"):
                    return False
                replicas = client.sentinel_slaves(self.master_name)
                if not any(
                    r["port"] == self.replica.port and not r.get("is_sdown") for r in replicas
                ):
                    return False
                others = client.sentinel_sentinels(self.master_name)
                if len(others) < len(self.sentinels) - 1:
                    return False
        return True

    def _logs(self) -> str:
        return "\n".join(f"--- {n.log_path}\n{n.log()[-1200:]}" for n in self.nodes)

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [sentinel.address for sentinel in self.sentinels]

    def sentinel_master_ports(self) -> list[int | None]:
        """What each sentinel answers to get-master-addr-by-name (None: no answer)."""
        ports: list[int | None] = []
        for sentinel in self.sentinels:
            try:
                with sentinel.client() as client:
                    address = client.sentinel_get_master_addr_by_name(self.master_name)
                ports.append(int(address[1]) if address else None)
            except (redis.RedisError, OSError):
                ports.append(None)
        return ports

    def master_port(self) -> int:
        """The master's port, as the first sentinel that answers says."""
        for port in self.sentinel_master_ports():
            if port is not None:
                return port
        raise RuntimeError("no sentinel knows the master")

    def node(self, port: int) -> Node:
        for node in self.data_nodes:
            if node.port == port:
                return node
        raise KeyError(f"no data node on port {port}")

    def kill_master(self) -> int:
        """SIGKILL the current master's process (by pid); returns its port."""
        port = self.master_port()
        self.node(port).kill()
        return port

    def wait_for_failover(
        self, old_port: int, timeout: float = 30.0, all_sentinels: bool = True
    ) -> int:
        """The new master's port, once the sentinels (every live one, or one with
        `all_sentinels=False`) name a master other than `old_port` and that
        server itself reports role:master."""

        def new_master() -> int | None:
            answers = [p for p in self.sentinel_master_ports() if p is not None]
            candidates = {p for p in answers if p != old_port}
            if len(candidates) != 1:
                return None
            (port,) = candidates
            if all_sentinels and len(answers) != sum(s.alive for s in self.sentinels):
                return None
            if all_sentinels and any(p != port for p in answers):
                return None
            if self.node(port).info("replication").get("role") != "master":
                return None
            return port

        return int(_wait(new_master, timeout, f"failover away from port {old_port}", self._logs))

    def stop(self) -> None:
        stop_all(self.nodes)

    def remove(self) -> None:
        self.stop()
        for node in self.nodes:
            node.remove()

    def _running(self) -> bool:
        return self.master.alive


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def create_cluster(nodes: Sequence[Node]) -> None:
    """What `redis-cli --cluster create ... --cluster-replicas 0` does, through
    each node's own client (TLS or not): contiguous slot ranges, a distinct config
    epoch each, then every node meets the first. The caller waits for
    cluster_state:ok."""
    bounds = [CLUSTER_SLOTS * i // len(nodes) for i in range(len(nodes) + 1)]
    for epoch, node in enumerate(nodes, start=1):
        with node.client() as client:
            first, last = bounds[epoch - 1], bounds[epoch] - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
    with nodes[0].client() as client:
        for node in nodes[1:]:
            client.execute_command("CLUSTER", "MEET", HOST, node.port)


# -- Cluster --------------------------------------------------------------------------


class Cluster(Started):
    """`masters` cluster nodes (no replicas), joined by `create_cluster`.

    `start()` returns once every node reports cluster_state:ok, all 16384 slots
    assigned and knows every other node.
    """

    def __init__(self, masters: int = 3, *, node_timeout_ms: int = 2000) -> None:
        self.masters = masters
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[Node] = []
        self._slots: list[tuple[int, int, int]] | None = None

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def seed_url(self) -> str:
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> Self:
        try:
            deadline = time.monotonic() + timeout
            for _ in range(self.masters):
                node = Node(
                    port_picker=self._pick_port,
                    extra_args=(
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        str(self.node_timeout_ms),
                    ),
                )
                self.nodes.append(node)
                node.start()
            create_cluster(self.nodes)
            _wait(self._ready, _left(deadline), "cluster_state:ok on every node", self._logs)
            return self
        except BaseException:
            self.stop()
            raise

    def _pick_port(self) -> int:
        return cluster_port(taken=self.ports)

    def _ready(self) -> bool:
        for node in self.nodes:
            with node.client() as client:
                info = client.cluster("INFO")
            if info.get("cluster_state") != "ok":
                return False
            if int(info.get("cluster_slots_assigned", 0)) != CLUSTER_SLOTS:
                return False
            if int(info.get("cluster_known_nodes", 0)) != len(self.nodes):
                return False
        return True

    def _logs(self) -> str:
        return "\n".join(f"--- {n.log_path}\n{n.log()[-1200:]}" for n in self.nodes)

    def slot_map(self, refresh: bool = False) -> list[tuple[int, int, int]]:
        """(first slot, last slot, master port) for every range, from CLUSTER SLOTS."""
        if self._slots is None or refresh:
            with self.nodes[0].client() as client:
                rows = client.execute_command("CLUSTER SLOTS")
            if isinstance(rows, dict):  # redis-py's parsed form: {(start, end): {...}}
                self._slots = sorted(
                    (int(start), int(end), int(value["primary"][1]))
                    for (start, end), value in rows.items()
                )
            else:
                self._slots = sorted((int(r[0]), int(r[1]), int(r[2][1])) for r in rows)
        return self._slots

    def key_slot(self, key: str | bytes) -> int:
        with self.nodes[0].client() as client:
            return int(client.execute_command("CLUSTER KEYSLOT", key))

    def node_port_for_key(self, key: str | bytes) -> int:
        """The port of the master that serves `key`."""
        slot = self.key_slot(key)
        for start, end, port in self.slot_map():
            if start <= slot <= end:
                return port
        raise LookupError(f"slot {slot} is not served")

    def stop(self) -> None:
        stop_all(self.nodes)

    def remove(self) -> None:
        self.stop()
        for node in self.nodes:
            node.remove()

    def _running(self) -> bool:
        return bool(self.nodes)
