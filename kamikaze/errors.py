"""One-line descriptions of Redis failures, for users: never a password."""

from __future__ import annotations

import os
import ssl

from kamikaze.settings import Settings


def redis_error_line(settings: Settings, exc: BaseException) -> str:
    from redis.exceptions import AuthenticationError, ConnectionError, TimeoutError

    if isinstance(exc, AuthenticationError):
        return f"Redis at {settings.address} refused the credentials: {exc}"
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return f"cannot connect to Redis at {settings.address}: {connection_failure(exc)}"
    return f"Redis at {settings.address} answered: {exc}"


def connection_failure(exc: BaseException) -> str:
    reason = exc.__cause__ or exc.__context__ or exc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({reason.verify_message})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failed ({reason.reason or reason})"
    errno = getattr(reason, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno)
    return getattr(reason, "strerror", None) or str(reason)


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
