"""The command line: click commands, their output and exit codes. It only
parses and reports: options are made in kamikaze.options (the connection
options from their declaration in kamikaze.settings), Redis work is done by
Queue, long-running commands are run by kamikaze.runtime. To add a command:
a function here; to add a connection option: a field of Settings.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kamikaze import __version__, install_command
from kamikaze.arguments import DASH_FIRST, ValuesMayStartWithDash
from kamikaze.options import (
    KamikazeGroup,
    bad_value,
    connection_options,
    declared,
    global_options,
)
from kamikaze.settings import Settings

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")
log = logging.getLogger("kamikaze")

PRIORITY_HELP = "PRIORITY: lower is more urgent (1 beats 5)."


class Failure(click.ClickException):
    """Exit 1 with one line: printed, or logged as JSON under --log-format json
    so that a log shipper sees the reason a service stopped."""

    def show(self, file: Any = None) -> None:
        from kamikaze import report

        report.failure(self.format_message())


def run_redis(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Run async Redis work; an unreachable Redis is one line and exit 1."""
    import asyncio

    if settings.embedded:
        require_embedded(settings)
    with failures_reported(settings):
        return asyncio.run(work())  # type: ignore[arg-type]


@contextlib.contextmanager
def failures_reported(
    settings: Settings, listens: str | None = None, os_errors_are_redis: bool = True
) -> Iterator[None]:
    """Every failure of a command, as one line: Redis' (exit 1; the traceback
    only at --loglevel DEBUG), the embedded server's, and a server that cannot
    listen where the option `listens` says (exit 2 when its host is to blame)."""
    from redis.exceptions import RedisClusterException, RedisError

    from kamikaze.embedded import EmbeddedError
    from kamikaze.errors import ListenError

    try:
        yield
    except ListenError as exc:
        if exc.bad_host and listens is not None:
            raise bad_value(listens, f"{exc.host!r}: {exc.reason}") from None
        raise Failure(str(exc)) from None
    except EmbeddedError as exc:
        raise Failure(str(exc)) from None
    except (RedisError, RedisClusterException) as exc:
        raise redis_failure(settings, exc) from None
    except OSError as exc:
        if os_errors_are_redis:
            raise redis_failure(settings, exc) from None
        raise Failure(str(exc)) from None


def redis_failure(settings: Settings, exc: BaseException) -> Failure:
    """Exit 1 with one line; the traceback only at --loglevel DEBUG."""
    from kamikaze.report import failure_line

    log.debug("Redis error", exc_info=True)
    return Failure(failure_line(settings, exc, configured=something_configured()))


def something_configured() -> bool:
    """An option or environment variable said where Redis is (parameters' `locates`)."""
    from kamikaze.parameters import CONNECTION

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True
    return any(
        ctx.get_parameter_source(param.name) not in (None, click.core.ParameterSource.DEFAULT)
        for param in CONNECTION
        if param.locates
    )


def require_embedded(settings: Settings) -> None:
    from kamikaze.report import embedded_problem

    problem = embedded_problem(settings)
    if problem is not None:
        raise Failure(problem)


@click.group(cls=KamikazeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kamikaze")
def main(loglevel: str, log_format: str) -> None:
    """Prioritised packages with expiry times on a Redis queue.

    The top of the queue is the live package with the LOWEST priority number
    (priority 1 beats priority 5). `kamikaze service` calls a consumer
    whenever the top changes or expires.
    """
    from kamikaze.logs import configure

    configure(loglevel, log_format)


main.params.extend(global_options())


@connection_options
@declared("push")
@main.command(cls=ValuesMayStartWithDash, epilog=PRIORITY_HELP)
def push(
    payload: str, ttl: float | None, priority: float | None, batch_size: int, settings: Settings
) -> None:
    """Add PAYLOAD, expiring in TTL seconds, with PRIORITY.

    `kamikaze push -` reads JSON lines from stdin instead, one package a line:
    {"payload": "...", "ttl": 60, "priority": 1}, and pushes them in batches,
    each atomically with one change signal. A bad line is reported with its
    number, and nothing of its batch is written (earlier batches are).

    An argument that starts with '-' is a value only if it is a number
    (a negative PRIORITY) or follows '--': kamikaze push -- -x 60 1.
    """
    from kamikaze.queue import Queue

    ctx = click.get_current_context()
    if ctx.meta.get(DASH_FIRST):
        if ttl is None and priority is None:
            push_lines(settings, batch_size)
            return
        raise click.UsageError(
            "'-' alone reads JSON lines from stdin; "
            "for the payload '-' itself, write: kamikaze push -- - TTL PRIORITY"
        )
    ttl_, priority_ = require_argument(ctx, "ttl", ttl), require_argument(ctx, "priority", priority)

    async def work() -> None:
        async with settings.client() as redis:
            package = await Queue(redis, settings.key).push(payload, ttl_, priority_)
        log.debug("pushed %r", package)

    run_redis(settings, work)


def require_argument(ctx: click.Context, name: str, value: T | None) -> T:
    if value is None:
        param = next(param for param in ctx.command.params if param.name == name)
        raise click.MissingParameter(ctx=ctx, param=param)
    return value


def push_lines(settings: Settings, batch_size: int) -> None:
    from kamikaze.lines import BadLine, batches
    from kamikaze.queue import Queue

    async def work() -> int:
        pushed = 0
        async with settings.client() as redis:
            queue = Queue(redis, settings.key)
            try:
                # Bytes: invalid UTF-8 is a bad line whatever the locale's stdin errors are.
                for batch in batches(sys.stdin.buffer, batch_size):
                    pushed += len(await queue.push_many(batch))
            except BadLine as exc:
                raise click.UsageError(f"{exc} (pushed {pushed} packages before it)") from None
        return pushed

    from kamikaze import report

    report.pushed(run_redis(settings, work))


@connection_options
@declared("remove")
@main.command(cls=ValuesMayStartWithDash)
def remove(payload: str, settings: Settings) -> None:
    """Remove every package whose payload is exactly PAYLOAD.

    A PAYLOAD that starts with '-' (other than a number) follows '--':
    kamikaze remove -- -x.
    """
    from kamikaze.queue import Queue

    async def work() -> int:
        async with settings.client() as redis:
            return await Queue(redis, settings.key).remove(payload)

    from kamikaze import report

    report.removed(run_redis(settings, work), payload)


@connection_options
@declared("list")
@main.command(name="list")
def list_(as_json: bool, raw: bool, settings: Settings) -> None:
    """Show live packages, top first."""
    from kamikaze import report
    from kamikaze.queue import Queue

    if raw:
        if as_json:
            raise click.UsageError("--raw and --json exclude each other")
        list_raw(settings)
        return

    async def work() -> tuple[list[Any], float]:
        async with settings.client() as redis:
            return await Queue(redis, settings.key).listing()

    packages, now = run_redis(settings, work)
    report.listing(packages, now, as_json)


def list_raw(settings: Settings) -> None:
    from kamikaze import report
    from kamikaze.queue import Queue

    async def work() -> list[tuple[bytes, bytes]]:
        async with settings.client() as redis:
            return await Queue(redis, settings.key).entries()

    report.raw_listing(run_redis(settings, work))


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


@connection_options
@declared("clear")
@main.command()
def clear(yes: bool, settings: Settings) -> None:
    """Delete every package of the queue at once, and signal the change.

    The queue and its two index keys go in one atomic call; running
    services call their consumers with None. On a terminal it asks first;
    elsewhere it needs --yes.
    """
    from kamikaze.queue import Queue

    if not yes:
        if not stdin_is_terminal():
            raise click.UsageError(
                f"clear deletes every package of {settings.key!r}: add --yes to confirm"
            )
        click.confirm(f"Delete every package of {settings.key}?", abort=True, err=True)

    async def work() -> int:
        async with settings.client() as redis:
            return await Queue(redis, settings.key).clear()

    from kamikaze import report

    report.cleared(run_redis(settings, work), settings.key)


@connection_options
@declared("service")
@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("consumer_path")
@click.argument("consumer_args", nargs=-1, type=click.UNPROCESSED)
def service(
    consumer_path: str,
    consumer_args: tuple[str, ...],
    consumer_function_kwargs: str | None,
    sweep_interval: float,
    metrics_port: int | None,
    metrics_host: str,
    exclusive: bool,
    lease: float,
    settings: Settings,
) -> None:
    """Call CONSUMER_PATH (module.function) whenever the top changes.

    It is called as consumer(package, *ARGS, **KWARGS): with the new top
    package, or None when the queue is empty. Each ARG is decoded as JSON
    when it parses (3 -> 3, true -> True), else passed as a string; an ARG
    that starts with '-' must be a number or JSON-quoted ('"-x"').
    """

    from kamikaze.consumer import ConsumerError, Runner, decode_arg, decode_kwargs, resolve
    from kamikaze.service import serve

    for arg in consumer_args:
        if arg.startswith("-") and not isinstance(decode_arg(arg), (int, float)):
            raise click.NoSuchOption(arg)
    try:
        kwargs = decode_kwargs(consumer_function_kwargs)
        consumer = resolve(consumer_path)
    except ConsumerError as exc:
        log.debug("consumer error", exc_info=True)
        raise click.UsageError(str(exc)) from None
    runner = Runner(consumer, [decode_arg(arg) for arg in consumer_args], kwargs)
    given = click.get_current_context().get_parameter_source("lease")
    if not exclusive and given is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--lease is for exclusive services: add --exclusive")
    if metrics_port is not None:
        require_metrics()

    from kamikaze import runtime
    from kamikaze.environment import exported

    def serving(stop: asyncio.Event) -> Any:
        exclusive_lease = lease if exclusive else None
        return serve(
            settings, runner, stop, sweep_interval, metrics_port, metrics_host, exclusive_lease
        )

    # The consumer's Queue.from_environment() finds this queue on this server.
    # A Redis failure that reaches here is fatal: see Dispatcher.run.
    reported = failures_reported(settings, listens="metrics_host", os_errors_are_redis=False)
    with runtime.shutdown_on_signals() as shutdown, exported(settings), reported:
        if settings.embedded:
            with settings.embedded_server().joined():
                runtime.run(serving, shutdown)
        else:
            runtime.run(serving, shutdown)


def require_metrics() -> None:
    import importlib.util

    if not all(importlib.util.find_spec(name) for name in ("prometheus_client", "aiohttp")):
        raise click.UsageError(
            "--metrics-port needs prometheus-client and aiohttp: " + install_command("metrics")
        )


@connection_options
@main.command()
def watch(settings: Settings) -> None:
    """A live view of the queue, top first, redrawn on each change.

    On a terminal: the top highlighted, TTLs counting down; q or Ctrl-C
    quits. Otherwise: one plain snapshot (as `list` prints) per change.
    If Redis goes away it reconnects, saying so in the header (on a terminal)
    or on stderr, and reads the queue again when back.
    """
    from kamikaze import runtime
    from kamikaze.queue import Queue
    from kamikaze.watch import watch_queue

    interactive = sys.stdout.isatty()
    stdin = sys.stdin.fileno() if interactive and sys.stdin.isatty() else None

    async def work(stop: asyncio.Event) -> None:
        async with settings.client() as redis:
            queue = Queue(redis, settings.key)
            await watch_queue(queue, settings.address, sys.stdout, stdin, interactive, stop)

    if settings.embedded:
        require_embedded(settings)
    with runtime.shutdown_on_signals(quiet=True) as shutdown:
        try:
            with failures_reported(settings):
                runtime.run(work, shutdown)
        except (click.ClickException, runtime.ShutdownRequested):
            raise
        except Exception as exc:  # a bug: the view has restored the terminal
            log.debug("watch failed", exc_info=True)
            raise Failure(
                f"watch stopped by an internal error: {type(exc).__name__}: {exc}"
            ) from None


@connection_options
@declared("web")
@main.command()
def web(
    host: str, port: int, rows: int, allow_writes: bool, token_file: str | None, settings: Settings
) -> None:
    """Serve a live page of the queue (needs the 'web' extra: docs/install.rst).

    The page shows the packages, top first, with TTLs counting down, and a
    timeline of what was on top over the last hour; it is updated on each
    change. Read-only unless --allow-writes, and then every write needs the
    token of --token-file.
    """
    require_web()
    token = read_web_token(token_file) if allow_writes else None
    if settings.embedded:
        require_embedded(settings)

    from kamikaze import runtime
    from kamikaze.web.server import WebOptions, serve_web

    options = WebOptions(host, port, rows, token)

    def serving(stop: asyncio.Event) -> Any:
        return serve_web(settings, options, stop)

    # A Redis failure that reaches here is fatal: see QueueFeed.run.
    with runtime.shutdown_on_signals() as shutdown, failures_reported(settings, listens="host"):
        runtime.run(serving, shutdown)


def require_web() -> None:
    import importlib.util

    if importlib.util.find_spec("aiohttp") is None:
        raise click.UsageError("kamikaze web needs aiohttp: " + install_command("web"))


def read_web_token(path: str | None) -> str:
    if path is None:
        raise bad_value(
            "token_file", "--allow-writes needs a token: --token-file PATH (the file's first line)"
        )
    from kamikaze.web.guard import TokenError, read_token

    try:
        return read_token(path)
    except TokenError as exc:
        raise bad_value("token_file", str(exc)) from None


@main.command()
def version() -> None:
    """Print the version (as 0.1.x did)."""
    click.echo(__version__)
