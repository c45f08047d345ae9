"""A small synchronous Redis client for the one-shot commands (kamikaze.quick):
one connection over TCP, a unix socket or TLS; AUTH and SELECT; commands
pipelined; scripts by SHA, loaded on NOSCRIPT. hiredis parses the replies.

Why not redis-py here: `import redis` loads redis.asyncio and asyncio
whatever one uses (160-200 ms, more than the rest of a `kamikaze push`), and
so does valkey-py; hiredis is the protocol parser both of them use, and this
module only adds the socket around it. The Python API and the service keep
redis-py; failures here are turned into redis-py's exceptions (`as_redis_error`)
so that the CLI reports them in the very same words.
"""

from __future__ import annotations

import _socket as socket  # socket.py builds enums and imports selectors: ms at every start
import time

import hiredis

from kamikaze.connections import CONNECT_TIMEOUT, SOCKET_TIMEOUT

TYPE_CHECKING = False  # not typing's: the one-shot commands start without it
if TYPE_CHECKING:
    from typing import Any

ATTEMPTS = 2  # as redis-py's Retry(retries=1): one more try after a lost link
# The connection arguments (Settings.connection_kwargs()) this client honours;
# the fast path hands any other to the full CLI (kamikaze.quick).
TOPOLOGIES = frozenset({"single"})  # Settings.topology: one server, no Sentinel or Cluster
IMPLEMENTS = frozenset(
    {"host", "port", "unix_socket_path", "username", "password", "db"}
    | {"ssl", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"}
)
RETRY_PAUSE = 0.05


class WireError(Exception):
    """A failure of the link; `sent` when a request may have reached Redis."""

    def __init__(self, cause: BaseException, sent: bool, while_connecting: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.sent = sent
        self.while_connecting = while_connecting
        self.what: str | None = None  # the write it interrupted ("the push"), if any


class Connection:
    """One connection, made on first use; `kwargs` are redis-py's connection
    arguments (kamikaze.settings.Settings.connection_kwargs())."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.sock: socket.socket | None = None
        self.reader = new_reader()

    def execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send `commands` at once and return their replies (an error reply
        is a ReplyError among them). One more try after a lost link: a
        command may run twice, so writes carry a call key (kamikaze.writes)."""
        failure: WireError | None = None
        sent = False
        for attempt in range(ATTEMPTS):
            try:
                return self._execute(commands)
            except WireError as exc:
                sent = sent or exc.sent
                failure = WireError(exc.cause, sent, exc.while_connecting)
                self.close()
                if attempt + 1 < ATTEMPTS:
                    time.sleep(RETRY_PAUSE)
        assert failure is not None
        raise failure

    def _execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        sock = self.sock or self._connect()
        try:
            sock.sendall(b"".join(encode(command) for command in commands))
            return [self._reply(sock) for _ in commands]
        except (OSError, ConnectionError) as exc:
            raise WireError(exc, sent=True, while_connecting=False) from None

    def _connect(self) -> socket.socket:
        try:
            sock = self._open()
        except OSError as exc:
            raise WireError(exc, sent=False, while_connecting=True) from None
        self.sock = sock
        self.reader = new_reader()
        handshake: list[tuple[Any, ...]] = []
        password = self.kwargs.get("password")
        if password is not None:
            # As redis-py logs in (HELLO 3 AUTH): a password alone is the
            # default user's, which a server without passwords lets in.
            handshake.append(("AUTH", self.kwargs.get("username") or "default", password))
        if self.kwargs.get("db"):
            handshake.append(("SELECT", self.kwargs["db"]))
        if self.kwargs.get("ssl") or not handshake:
            # Only a server that has answered is connected (redis-py's HELLO):
            # a silent or trickling one is "cannot connect", not a write whose
            # outcome is unknown. And a TLS 1.3 server that refuses the
            # client's certificate says so only at the first read.
            handshake.append(("PING",))
        try:
            sock.sendall(b"".join(encode(command) for command in handshake))
            replies = [self._reply(sock) for _ in handshake]
        except (OSError, ConnectionError) as exc:
            raise WireError(exc, sent=False, while_connecting=True) from None
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise reply
        return sock

    def _open(self) -> socket.socket:
        kwargs = self.kwargs
        if "unix_socket_path" in kwargs:
            sock = _connected(socket.AF_UNIX, socket.SOCK_STREAM, 0, kwargs["unix_socket_path"])
        else:
            host, port = kwargs.get("host", "localhost"), int(kwargs.get("port", 6379))
            sock = _tcp(host, port)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if kwargs.get("ssl"):
                sock = self._tls(sock, host)
        sock.settimeout(SOCKET_TIMEOUT)
        return sock

    def _tls(self, sock: socket.socket, host: str) -> socket.socket:
        import socket as sockets
        import ssl

        sock = sockets.socket(fileno=sock.detach())  # ssl wraps socket.socket, not _socket's
        sock.settimeout(CONNECT_TIMEOUT)

        context = ssl.create_default_context(cafile=self.kwargs.get("ssl_ca_certs"))
        if self.kwargs.get("ssl_certfile"):
            context.load_cert_chain(self.kwargs["ssl_certfile"], self.kwargs.get("ssl_keyfile"))
        try:
            return context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise

    def _reply(self, sock: socket.socket) -> Any:
        """One reply, whole within SOCKET_TIMEOUT (as redis-py times a reply),
        however slowly it trickles in."""
        deadline = time.monotonic() + SOCKET_TIMEOUT
        try:
            while (reply := self.reader.gets()) is False:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("timed out")
                sock.settimeout(remaining)
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("Connection closed by server.")
                self.reader.feed(data)
        finally:
            sock.settimeout(SOCKET_TIMEOUT)
        return reply

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _connected(family: int, kind: int, proto: int, address: Any) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _tcp(host: str, port: int) -> socket.socket:
    """socket.create_connection: each address of `host` in turn. An ASCII host
    goes as bytes: getaddrinfo encodes a str with the idna codec, whose import
    costs more than looking up a local address."""
    error: OSError | None = None
    name = host.encode() if host.isascii() else host
    for family, kind, proto, _, address in socket.getaddrinfo(name, port, 0, socket.SOCK_STREAM):
        try:
            return _connected(family, kind, proto, address)
        except OSError as exc:
            error = exc
    raise error or OSError("getaddrinfo returned no address")


class ReplyError(Exception):
    """An error reply (-ERR ..., -WRONGTYPE ..., -NOSCRIPT ...)."""


class BadReply(Exception):
    """Bytes that are not RESP (an HTTP server on the port, say)."""


def new_reader() -> hiredis.Reader:
    return hiredis.Reader(replyError=ReplyError, protocolError=BadReply)


def encode(command: tuple[Any, ...]) -> bytes:
    """A command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        if isinstance(arg, str):
            arg = arg.encode("utf-8", "surrogateescape")
        elif isinstance(arg, int | float):
            arg = repr(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def as_redis_error(exc: BaseException, what: str | None = None) -> BaseException:
    """The exception redis-py would have raised, so that the CLI reports a
    failure here in the same words (kamikaze.errors); `what` names a write
    whose outcome a lost link leaves unknown."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from kamikaze.errors import OutcomeUnknown, outcome_unknown_message

    if isinstance(exc, ReplyError):
        from kamikaze import redispy

        return redispy.error_reply(str(exc))
    if isinstance(exc, BadReply):
        from redis.exceptions import InvalidResponse

        return InvalidResponse(str(exc))
    if not isinstance(exc, WireError):
        return exc
    cause = exc.cause
    if isinstance(cause, TimeoutError):
        error: BaseException = RedisTimeoutError(
            "Timeout connecting to server" if exc.while_connecting else "Timeout reading"
        )
    else:
        error = RedisConnectionError(str(cause))
    error.__cause__ = cause
    if exc.sent and what is not None:
        unknown = OutcomeUnknown(outcome_unknown_message(error, what))
        unknown.__cause__ = error
        return unknown
    return error
