"""One-line descriptions of failures (Redis, a socket to listen on), for users:
never a password, never errno numbers."""

from __future__ import annotations

import errno
import os
import re
import socket
import ssl
from typing import TYPE_CHECKING

from redis.exceptions import ConnectionError

if TYPE_CHECKING:
    from kamikaze.settings import Settings

TIMED_OUT = "timed out"
EMBEDDED_HINT = (
    " (nothing configured, so the default address was tried; for the embedded server, "
    "add --embedded or export KAMIKAZE_EMBEDDED=1)"
)


class OutcomeUnknown(ConnectionError):
    """A write whose reply was lost: Redis applied it once or not at all,
    and which of the two cannot be told. Check (``Queue.packages()``)
    before trying again."""


def outcome_unknown_message(exc: BaseException, what: str) -> str:
    """Why a write's outcome is unknown; `what` names it ("the push")."""
    return (
        f"did not answer ({connection_failure(exc)}): {what} may have been applied or not; "
        "look before trying again"
    )


def redis_error_line(settings: Settings, exc: BaseException) -> str:
    from redis.exceptions import (
        AskError,
        AuthenticationError,
        InvalidResponse,
        MovedError,
        TimeoutError,
    )

    if isinstance(exc, OutcomeUnknown):
        return f"Redis at {settings.address} {exc}"
    if isinstance(exc, AuthenticationError):
        if not settings.has_credentials:  # the server's words differ with RESP2 and 3
            return (
                f"Redis at {settings.address} wants credentials, and none were given: "
                "put them in the URL (redis://USER:PASSWORD@HOST) or use --redis-password-file"
            )
        return f"Redis at {settings.address} refused the credentials: {exc}"
    if isinstance(exc, MovedError | AskError):
        return (
            f"Redis at {settings.address} is a node of a Redis Cluster that does not hold "
            f"the queue ({type(exc).__name__.removesuffix('Error').upper()} {exc}): add --cluster"
        )
    if isinstance(exc, InvalidResponse):
        return (
            f"cannot talk to Redis at {settings.address}: the reply is not Redis' protocol "
            f"({exc}); is a Redis server listening there?"
        )
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        why = connection_failure(exc)
        if settings.uses_tls and why == os.strerror(errno.ECONNRESET):
            # TLS 1.3 servers refuse a missing client certificate after the handshake.
            why += " (does the server demand a client certificate? see --tls-cert-file)"
        elif settings.uses_tls and why == TIMED_OUT:
            # A server without TLS waits for a command and never answers the handshake.
            why += " (does the server speak TLS on that port?)"
        return f"cannot connect to Redis at {settings.address}: {why}"
    return f"Redis at {settings.address} answered: {script_reply(str(exc))}"


def is_refused(exc: BaseException) -> bool:
    """A connection refused: nothing listens at that address."""
    from redis.exceptions import ConnectionError

    return isinstance(exc, ConnectionError | OSError) and connection_failure(exc) == os.strerror(
        errno.ECONNREFUSED
    )


# Redis: "script: <sha>, on @user_script:12."; Valkey: "script: on @user_script:12."
_SCRIPT_POSITION = re.compile(r"\s*script: (?:[0-9a-f]{40}, )?on @user_script:\d+\.?$")


def script_reply(text: str) -> str:
    """An error raised inside a Lua script, without the script's SHA and line,
    which tell a user nothing."""
    return _SCRIPT_POSITION.sub("", text)


def connection_failure(exc: BaseException) -> str:
    reason = exc.__cause__ or exc.__context__ or exc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({reason.verify_message})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failed ({reason.reason or reason})"
    number = getattr(reason, "errno", None)
    if isinstance(number, int) and number > 0:
        return os.strerror(number)
    if isinstance(reason, TimeoutError):  # the TLS handshake's is "_ssl.c:989: The handshake…"
        return TIMED_OUT
    text = getattr(reason, "strerror", None) or str(reason)
    if not text:
        return TIMED_OUT if isinstance(reason, TimeoutError) else type(reason).__name__
    # redis-py appends its client objects' reprs to "No master found for 'name'".
    return text.split(" : ", 1)[0] if text.startswith("No master found") else text


class ListenError(OSError):
    """A server (metrics, web) cannot listen where it was told: one line
    naming host and port; `bad_host` when the host is to blame (no such
    host, not an address of this machine) rather than the machine."""

    def __init__(self, what: str, host: str, port: int, exc: OSError) -> None:
        self.host = host
        self.reason, self.bad_host = listen_failure(exc)
        shown = f"[{host}]" if ":" in host else host
        super().__init__(f"cannot serve {what} on {shown}:{port}: {self.reason}")


def listen_failure(exc: OSError) -> tuple[str, bool]:
    """Why a server cannot listen on a host and port, and whether the host is to blame."""
    if isinstance(exc, socket.gaierror):
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return "no such host", True
        return exc.strerror or str(exc), False  # say, DNS is down (EAI_AGAIN)
    if exc.errno == errno.EADDRNOTAVAIL:
        return "not an address of this machine", True
    if exc.errno == errno.EADDRINUSE:
        return "the port is in use", False
    return (os.strerror(exc.errno) if exc.errno else str(exc)), False


def is_fatal(exc: BaseException) -> bool:
    """A failure that retrying cannot mend: wrong credentials or permissions,
    a certificate that does not verify."""
    from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError

    if isinstance(exc, (AuthenticationError, AuthorizationError, NoPermissionError)):
        return True
    return isinstance(exc.__cause__ or exc.__context__, ssl.SSLCertVerificationError)


def is_outage(exc: BaseException) -> bool:
    """A failure the service rides out by reconnecting: the link, or Redis
    refusing for now (a key of the wrong type, a busy script, a replica)."""
    from redis.exceptions import (
        ConnectionError,
        RedisClusterException,
        ResponseError,
        TimeoutError,
    )

    return isinstance(
        exc, (ConnectionError, TimeoutError, OSError, ResponseError, RedisClusterException)
    )
