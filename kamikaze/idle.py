"""The embedded server's idle stop (docs/operations.rst, "The embedded
server"): a small process started with every embedded server, which stops
it once nothing has used it for its idle timeout: no command processed but
its own, no other client connected (a service, `watch`, `web`), no service
registered. One per server: it holds `keeper.lock` in the runtime directory.

    python -m kamikaze.idle RUNTIME_DIR DATA_DIR SECONDS
"""

from __future__ import annotations

import fcntl
import sys
import time
from pathlib import Path

from kamikaze import wire
from kamikaze.embedded import EmbeddedServer, _try_lock

OWN_COMMANDS = 1  # each look is one INFO, counted by the next one


def keep(server: EmbeddedServer) -> None:
    """Until the server is gone for good, or stopped here once idle."""
    poll = min(max(server.idle_timeout / 10, 0.05), 5.0)
    with server.keeper_lock() as lock:
        if not _try_lock(lock, fcntl.LOCK_EX):
            return  # another one keeps it
        last_total: int | None = None
        idle_since = time.monotonic()
        connection = wire.Connection({"unix_socket_path": str(server.socket)})
        try:
            while True:
                time.sleep(poll)
                used = usage(connection)
                if used is None:  # not answering: stopped, or being started again
                    connection.close()
                    if not server._healthy() and not server._being_started():
                        return
                    last_total = None
                    continue
                total, clients = used
                busy = clients > 1 or (last_total is not None and total - last_total > OWN_COMMANDS)
                last_total = total
                if busy or server._being_started():
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= server.idle_timeout and stop_if_idle(
                    server, connection
                ):
                    return
        finally:
            connection.close()


def usage(connection: wire.Connection) -> tuple[int, int] | None:
    """Commands the server has processed, and clients connected (this one included)."""
    try:
        (info,) = connection.execute([("INFO",)])
    except (wire.WireError, wire.ReplyError, wire.BadReply):
        return None
    fields = dict(line.split(":", 1) for line in info.decode().splitlines() if ":" in line)
    return int(fields["total_commands_processed"]), int(fields["connected_clients"])


def stop_if_idle(server: EmbeddedServer, connection: wire.Connection) -> bool:
    """Stop it, unless someone came meanwhile: under the lifecycle lock, so
    that no command or service starts or joins it while it stops."""
    with server._lifecycle_lock():
        before = usage(connection)
        after = usage(connection)
        if server._live_users() or before is None or after is None:
            return before is None and not server._healthy()
        if after[1] > 1 or after[0] - before[0] > OWN_COMMANDS:
            return False
        connection.close()
        server._stop()
    return True


def main() -> None:
    runtime_dir, data_dir, seconds = sys.argv[1:4]
    keep(EmbeddedServer(Path(runtime_dir), Path(data_dir), float(seconds)))


if __name__ == "__main__":
    main()
