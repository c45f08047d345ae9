"""At most once: every write call carries a call key, so that a call sent
again (its reply was lost, and redis-py retried it) is applied once; and
telling a lost reply (the outcome is unknown) from a connection that was
never made (nothing was sent).
"""

from __future__ import annotations

import ssl
import traceback
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError
from redis.exceptions import AuthenticationError, ConnectionError, TimeoutError

from kamikaze.errors import OutcomeUnknown, outcome_unknown_message

T = TypeVar("T")

# The failed attempts of the write call running in this task, if any.
_failed_attempts: ContextVar[list[BaseException] | None] = ContextVar(
    "kamikaze_failed_attempts", default=None
)


class RecordingRetry(Retry):
    """redis-py's Retry that also records each failed attempt of a write
    call, so that the call can tell whether anything may have been sent."""

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        failures = _failed_attempts.get()
        if failures is None:
            return await super().call_with_retry(do, fail, is_retryable, with_failure_count)

        async def recording(error: Exception, *count: int) -> Any:
            failures.append(error)
            return await fail(error, *count)

        return await super().call_with_retry(do, recording, is_retryable, with_failure_count)


def never_connected(exc: BaseException) -> bool:
    """A failure to make the connection, to log in, to agree on TLS or to
    find the master: nothing was sent, or nothing the server would run."""
    if isinstance(exc, AuthenticationError | MasterNotFoundError):
        return True
    if isinstance(exc.__cause__ or exc.__context__, ssl.SSLError):
        return True
    if _raised_while_connecting(exc):
        return True
    if isinstance(exc, TimeoutError):
        return str(exc) == "Timeout connecting to server"
    return isinstance(exc, ConnectionError) and " connecting to " in str(exc)


def _raised_while_connecting(exc: BaseException) -> bool:
    """Raised inside redis-py's connection set-up (socket, TLS, AUTH, HELLO),
    before any command of ours was sent on that connection."""
    return any(
        frame.f_code.co_name == "connect_check_health"
        and frame.f_globals.get("__name__", "").startswith("redis.")
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


async def at_most_once(call: Callable[[], Awaitable[T]], what: str) -> T:
    """Run a write call (whose scripts recognise a repeat by its call key);
    raise OutcomeUnknown when a failed attempt may have reached Redis."""
    failures: list[BaseException] = []
    token = _failed_attempts.set(failures)
    try:
        return await call()
    except (ConnectionError, TimeoutError) as exc:
        if all(never_connected(failure) for failure in [*failures, exc]):
            raise
        raise OutcomeUnknown(outcome_unknown_message(exc, what)) from exc
    finally:
        _failed_attempts.reset(token)
