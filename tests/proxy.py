"""A small TCP proxy of the tests' own, put between the service and Redis to
cut or stall connections on demand.

One thread forwards bytes for every connection with a selector. On demand it
drops every current connection (closes both sides), freezes them (stops
reading, so nothing is forwarded either way, while both sockets stay open;
the bytes wait in the kernel's buffers) or thaws them (forwarding resumes,
the waiting bytes included). New connections are accepted and forwarded
while others are frozen. Commands run on the proxy's thread, so a call
returns once it has taken effect.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

CHUNK = 65536
SEND_TIMEOUT = 2.0  # a peer that takes no bytes this long loses its connection
HEAD = 4096  # bytes of what the client sent first, kept to tell connections apart


@dataclass(eq=False)
class _Pipe:
    client: socket.socket
    upstream: socket.socket
    head: bytes = b""  # the first bytes the client sent
    frozen: bool = False
    closed: bool = False
    peers: dict[socket.socket, socket.socket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.peers = {self.client: self.upstream, self.upstream: self.client}


class Proxy:
    """Forwards 127.0.0.1:`port` (a free port) to `target_host`:`target_port`."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.port: int = self.listener.getsockname()[1]
        self.accepted = 0  # connections accepted so far, over the proxy's life
        self._pipes: list[_Pipe] = []
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._commands: queue.Queue[tuple[Callable[[], object], queue.Queue[object]]] = (
            queue.Queue()
        )
        self._running = True
        self._selector.register(self.listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._serve, name=f"proxy:{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # The commands: each runs on the proxy's thread; the call waits for it.

    def drop(self) -> int:
        """Close every current connection, both sides; returns how many."""
        return self._call(self._drop)  # type: ignore[return-value]

    def freeze(self, matching: bytes | None = None) -> int:
        """Stop forwarding on every current connection (or those whose client
        sent `matching` among its first bytes); returns how many."""
        return self._call(lambda: self._freeze(matching))  # type: ignore[return-value]

    def thaw(self) -> int:
        """Forward again on every frozen connection; returns how many."""
        return self._call(self._thaw)  # type: ignore[return-value]

    def connections(self) -> int:
        """How many connections are open now."""
        return self._call(lambda: len(self._pipes))  # type: ignore[return-value]

    def close(self, timeout: float = 5.0) -> None:
        """Close every connection and the listener; stop the thread."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self._call(self._stop, timeout)
            self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"proxy on port {self.port} did not stop")

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, command: Callable[[], object], timeout: float = 5.0) -> object:
        if not self._running or not self._thread.is_alive():
            raise RuntimeError("the proxy is closed")
        answer: queue.Queue[object] = queue.Queue()
        self._commands.put((command, answer))
        self._wake_w.send(b"x")
        result = answer.get(timeout=timeout)
        if isinstance(result, BaseException):
            raise result
        return result

    # The proxy's thread.

    def _serve(self) -> None:
        try:
            while self._running:
                for key, _ in self._selector.select(timeout=1.0):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._run_commands()
                    elif not (key.data.closed or key.data.frozen):
                        self._forward(key.data, key.fileobj)  # type: ignore[arg-type]
        finally:
            self._stop()
            self._run_commands()  # answer whoever still waits
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _run_commands(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)
        while True:
            try:
                command, answer = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                answer.put(command())
            except Exception as exc:
                answer.put(exc)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.accepted += 1
            try:
                upstream = socket.create_connection(self.target, timeout=2.0)
            except OSError:  # nothing listens upstream: the client sees a closed connection
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(SEND_TIMEOUT)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pipe = _Pipe(client, upstream)
            self._pipes.append(pipe)
            self._watch(pipe)

    def _watch(self, pipe: _Pipe) -> None:
        for sock in (pipe.client, pipe.upstream):
            self._selector.register(sock, selectors.EVENT_READ, pipe)

    def _unwatch(self, pipe: _Pipe) -> None:
        for sock in (pipe.client, pipe.upstream):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)

    def _forward(self, pipe: _Pipe, sock: socket.socket) -> None:
        try:
            data = sock.recv(CHUNK)
            if data:
                if sock is pipe.client and len(pipe.head) < HEAD:
                    pipe.head += data[: HEAD - len(pipe.head)]
                pipe.peers[sock].sendall(data)
                return
        except OSError:
            pass
        self._close(pipe)  # one side closed (or failed): close the other too

    def _close(self, pipe: _Pipe) -> None:
        if pipe.closed:
            return
        pipe.closed = True
        if not pipe.frozen:
            self._unwatch(pipe)
        for sock in (pipe.client, pipe.upstream):
            with contextlib.suppress(OSError):
                sock.close()
        with contextlib.suppress(ValueError):
            self._pipes.remove(pipe)

    def _drop(self) -> int:
        pipes = list(self._pipes)
        for pipe in pipes:
            self._close(pipe)
        return len(pipes)

    def _freeze(self, matching: bytes | None) -> int:
        frozen = 0
        for pipe in self._pipes:
            if pipe.frozen or (matching is not None and matching not in pipe.head):
                continue
            self._unwatch(pipe)
            pipe.frozen = True
            frozen += 1
        return frozen

    def _thaw(self) -> int:
        thawed = 0
        for pipe in self._pipes:
            if pipe.frozen:
                pipe.frozen = False
                self._watch(pipe)
                thawed += 1
        return thawed

    def _stop(self) -> None:
        if not self._running and self.listener.fileno() == -1:
            return
        self._running = False
        self._drop()
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(self.listener)
        self.listener.close()
