"""Consumers: resolving a dotted path, decoding CLI arguments, and the Runner
that calls a plain function inline or runs a coroutine as a cancellable task.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib.machinery
import importlib.util
import inspect
import json
import logging
import os
import pkgutil
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kamikaze.package import Package
from kamikaze.runtime import stop_task

if TYPE_CHECKING:
    from kamikaze.metrics import Metrics

log = logging.getLogger(__name__)

CANCEL_GRACE = 1.0  # seconds a cancelled consumer task may take to finish
SETTLED_AT_ONCE = 0.005  # a cancelled task that ends within this ended at once


class ConsumerError(ValueError):
    """A consumer path or its arguments cannot be used."""


def resolve(path: str) -> Callable[..., Any]:
    """Import `module.attribute`; the module's top-level package or module may
    come from the working directory, nothing else does (docs/security.rst)."""
    _refuse_file_name(path)
    if "." not in path.strip(".") and ":" not in path:
        raise ConsumerError(f"consumer {path!r} is not of the form module.function")
    top_level = path.replace(":", ".").split(".", 1)[0]
    try:
        import_from_working_directory(top_level)
        consumer = pkgutil.resolve_name(path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConsumerError(f"cannot import consumer {path!r}: {exc}{_hint(exc)}") from exc
    except SystemExit as exc:  # the module ended the import itself
        raise ConsumerError(
            f"cannot import consumer {path!r}: importing it called sys.exit({exc.code!r})"
        ) from exc
    except Exception as exc:  # the module itself failed while importing
        raise ConsumerError(
            f"cannot import consumer {path!r}: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(consumer):
        raise ConsumerError(f"consumer {path!r} is not callable")
    return consumer  # type: ignore[no-any-return]


def import_from_working_directory(name: str) -> None:
    """Import the top-level module or package `name` from the working directory,
    if it is there, without putting the working directory on sys.path: so that
    a json.py or uvloop.py lying there is never imported instead of the real one.
    """
    if name in sys.modules or not name.isidentifier():
        return
    spec = importlib.machinery.PathFinder.find_spec(name, [os.getcwd()])
    if spec is None:
        return  # not there: an installed module, or one on PYTHONPATH
    if spec.loader is None and importlib.util.find_spec(name) is not None:
        return  # a bare directory yields to a module found elsewhere, as on sys.path
    if name in sys.stdlib_module_names:
        found = os.path.relpath(spec.origin or name)
        raise ImportError(
            f"{found} in the working directory has the name of a standard library module; rename it"
        )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        assert spec.loader is not None  # module_from_spec gives a namespace package one
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def _hint(exc: BaseException) -> str:
    """Why a module that lies in the working directory could not be imported."""
    missing = getattr(exc, "name", None)
    if not isinstance(exc, ModuleNotFoundError) or not missing:
        return ""
    spec = importlib.machinery.PathFinder.find_spec(missing.split(".")[0], [os.getcwd()])
    if spec is None:
        return ""
    return (
        f" ({os.path.relpath(spec.origin or missing)} is in the working directory, but only "
        "the consumer's own module is imported from there: move it into your package, or "
        "install your project)"
    )


def decode_arg(text: str) -> Any:
    """A CLI argument as JSON when it parses (`3` -> 3, `true` -> True), else as is."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def decode_kwargs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        kwargs = json.loads(text)
    except ValueError as exc:
        raise ConsumerError(f"consumer kwargs {text!r} are not valid JSON: {exc}") from exc
    if not isinstance(kwargs, dict):
        raise ConsumerError(f"consumer kwargs {text!r} are not a JSON object")
    return kwargs


# The term of the exclusive service whose consumer call this is (kamikaze.term()).
_term: contextvars.ContextVar[int | None] = contextvars.ContextVar("kamikaze_term", default=None)


def term() -> int | None:
    """The term of the exclusive service calling this consumer: a number that
    only grows, one per period of activity (docs/ha.rst), for a consumer's own
    side effects to refuse a service that is no longer active (a fencing
    token). None outside an exclusive service's consumer call."""
    return _term.get()


class Runner:
    """Calls the consumer with each new top.

    A plain function runs inline and the service waits for it; a coroutine
    runs as a task, cancelled when the top changes before the next call.
    Whatever a consumer raises, sys.exit() included, is logged: a consumer
    cannot stop the service (SIGTERM does).
    """

    def __init__(
        self,
        consumer: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.consumer = consumer
        self.args = tuple(args)
        self.kwargs = kwargs or {}
        self.task: asyncio.Task[Any] | None = None
        self.awaitable: Awaitable[Any] | None = None
        self.metrics: Metrics | None = None
        # An exclusive service's lease: the consumer is called only while it says
        # active, and with its term (kamikaze.lease).
        self.lease: Any = None

    async def deliver(self, package: Package | None) -> None:
        await self.cancel()
        lease = self.lease
        if lease is not None and not lease.active:
            return  # standby: an exclusive service calls nothing
        _term.set(lease.term if lease is not None else None)
        log.debug("calling consumer with %r", package)
        started = time.perf_counter()
        try:
            if lease is not None and not inspect.iscoroutinefunction(self.consumer):
                result = await self._in_thread(package)
            else:
                result = self.consumer(package, *self.args, **self.kwargs)
        except (Exception, SystemExit):
            log.exception("consumer raised on %r", package)
            self._observe(started, failed=True)
            return
        if inspect.isawaitable(result):
            self.awaitable = result
            self.task = asyncio.ensure_future(self._contained(result, package, started))
        else:
            self._observe(started, failed=False)

    async def _in_thread(self, package: Package | None) -> Any:
        """Call a plain consumer of an exclusive service in a thread, so that the
        event loop renews the lease meanwhile (docs/ha.rst). A plain call
        cannot be cut short: a cancellation waits for it to return, then
        goes on."""
        call = functools.partial(self.consumer, package, *self.args, **self.kwargs)
        future = asyncio.get_running_loop().run_in_executor(
            None, contextvars.copy_context().run, call
        )
        cancelled = False
        while not future.done():
            try:
                await asyncio.wait({future})
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        return future.result()

    def _observe(self, started: float, failed: bool) -> None:
        if self.metrics is not None:
            self.metrics.observe_call(time.perf_counter() - started, failed)

    async def _contained(
        self, awaitable: Awaitable[Any], package: Package | None, started: float
    ) -> Any:
        """Run a coroutine consumer; log what it raises (SystemExit too, which
        asyncio would otherwise let out of the event loop)."""
        try:
            result = await awaitable
        except asyncio.CancelledError:
            self._observe(started, failed=False)  # a call all the same, cut short
            raise
        except (Exception, SystemExit):
            log.exception("consumer raised on %r", package)
            self._observe(started, failed=True)
            return None
        self._observe(started, failed=False)
        return result

    async def settle(self) -> bool:
        """Get ready for the next call: cancel a running consumer task and
        wait (briefly) until it has stopped. True if that took more than
        SETTLED_AT_ONCE: what was read before may be stale by now."""
        running = self.task is not None and not self.task.done()
        started = time.monotonic()
        await self.cancel()
        return running and time.monotonic() - started > SETTLED_AT_ONCE

    def interrupt(self) -> None:
        """Cancel a running consumer task now (an exclusive service that
        stopped being active); cancel() waits for it."""
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def cancel(self) -> None:
        """Cancel a running consumer task and wait (briefly) until it has stopped."""
        task, self.task = self.task, None
        awaitable, self.awaitable = self.awaitable, None
        if task is None or task.done():
            return
        done = await stop_task(task, CANCEL_GRACE, insist=False)  # it may tidy up
        if (
            inspect.iscoroutine(awaitable)
            and inspect.getcoroutinestate(awaitable) == "CORO_CREATED"
        ):
            awaitable.close()  # cancelled before it ever ran
        if not done:
            log.warning(
                "consumer task ignored cancellation for %.1f s; going on without it",
                CANCEL_GRACE,
            )


def _refuse_file_name(path: str) -> None:
    """`pkg/mod.py[:function]` is a file, not an import path: suggest `pkg.mod.function`."""
    file, _, function = path.partition(":")
    if not file.endswith(".py") and "/" not in file and os.sep not in file:
        return
    module = Path(file.removesuffix(".py"))
    if module.is_absolute():  # importable only from the directory it is in
        module = (
            module.relative_to(Path.cwd())
            if module.is_relative_to(Path.cwd())
            else Path(module.name)
        )
    parts = [part for part in module.parts if part not in (".", "..")] or ["MODULE"]
    dotted = ".".join([*parts, function or "FUNCTION"])
    raise ConsumerError(f"consumer {path!r} is a file name: give module.function, as in {dotted}")
