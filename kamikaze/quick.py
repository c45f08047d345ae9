"""The one-shot commands, fast. `kamikaze push`, `remove` and `list` run
from shell scripts once per package, so they must start near the
interpreter's floor. When a command line is one of their plain forms (every
value valid, only options known here), it runs here, on kamikaze.wire,
without click, redis-py or asyncio. Anything else (help, a typo, a bad
value, Sentinel or Cluster, other log settings, completion) goes to the full
CLI (kamikaze.cli), which reports it: so every message about the command
line is click's. Both paths run the same steps (kamikaze.operations) and
Lua scripts, and report Redis failures in the same words (kamikaze.errors).

The entry point of the `kamikaze` command and of `python -m kamikaze`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Mapping
from typing import Any

from kamikaze import operations
from kamikaze.keys import QueueKeys
from kamikaze.operations import Script, Steps, script_source
from kamikaze.package import check_expire_time
from kamikaze.settings import Settings

COMMANDS = ("push", "remove", "list")
# Where Redis is: when none of these was given, the default address was tried.
WHERE = ("redis_url", "redis_host", "redis_port", "embedded")
# Settings the fast path leaves to the full CLI (redis-py builds their clients).
ELSEWHERE_VARIABLES = ("KAMIKAZE_SENTINELS", "KAMIKAZE_SENTINEL_MASTER", "KAMIKAZE_CLUSTER")
TRUE, FALSE = ("1", "true"), ("0", "false")


class Declined(Exception):
    """Not a plain form: the full CLI takes the command line."""


@dataclasses.dataclass
class Invocation:
    command: str
    arguments: list[str]
    settings: Settings
    configured: bool  # something said where Redis is (for the --embedded hint)
    as_json: bool = False
    batch_size: int = 500


def main() -> None:
    try:
        code = run(sys.argv[1:], os.environ)
    except KeyboardInterrupt:  # as click says it
        sys.stderr.write("\nAborted!\n")
        code = 1
    if code is None:
        from kamikaze.cli import main as full_cli

        full_cli(prog_name="kamikaze")
    sys.stdout.flush()
    sys.exit(code)


def run(argv: list[str], environ: Mapping[str, str]) -> int | None:
    """Run a plain one-shot command line; None when it is not one."""
    if environ.get("KAMIKAZE_FULL_CLI"):  # the tests run the CLI tests on both paths
        return None
    try:
        invocation = parse(argv, environ)
    except Declined:
        return None
    return execute(invocation)


# Parsing ---------------------------------------------------------------------------------


def options() -> dict[str, dataclasses.Field[Any]]:
    """The connection options the fast path knows, by flag."""
    return {
        field.metadata["option"].flag: field
        for field in dataclasses.fields(Settings)
        if "option" in field.metadata and field.metadata["option"].kind != "sentinels"
        and field.name not in ("cluster", "sentinel_master")
    }  # fmt: skip


def parse(argv: list[str], environ: Mapping[str, str]) -> Invocation:
    if not argv or argv[0] not in COMMANDS or "_KAMIKAZE_COMPLETE" in environ:
        raise Declined
    if environ.get("KAMIKAZE_LOGLEVEL", "INFO").upper() != "INFO":
        raise Declined
    if environ.get("KAMIKAZE_LOG_FORMAT", "human") != "human":
        raise Declined
    if any(environ.get(name) for name in ELSEWHERE_VARIABLES):
        raise Declined
    command, known = argv[0], options()
    given: dict[str, Any] = {}
    values: list[str] = []
    extra: dict[str, Any] = {}
    rest = iter(argv[1:])
    for arg in rest:
        if arg.startswith("--") and arg != "--":
            flag, equals, text = arg.partition("=")
            if command == "list" and flag == "--json" and not equals:
                extra["as_json"] = True
            elif command == "push" and flag == "--batch-size":
                extra["batch_size"] = batch_size(text if equals else next(rest, None))
            elif flag in known and known[flag].metadata["option"].kind == "flag":
                if equals:
                    raise Declined
                given[known[flag].name] = True
            elif flag in known:
                given[known[flag].name] = text if equals else next_value(rest)
            else:
                raise Declined
        elif arg.startswith("-") and not (number(arg) and values):
            if not (command == "push" and arg == "-" and not values):
                raise Declined
            values.append(arg)
        else:
            values.append(arg)
    check_arguments(command, values, extra)
    from_environment = environment_values(environ, known, skip=given)
    settings_values = {**from_environment, **given}
    if "?" in str(settings_values.get("redis_url", "")):
        raise Declined  # a URL query is redis-py's to parse and honour
    try:
        settings = Settings(
            **{name: convert(name, value) for name, value in settings_values.items()}
        )
        settings.check()
        if not set(settings.connection_kwargs()) <= wire_implements():
            raise Declined
    except (ValueError, TypeError):
        raise Declined from None
    configured = any(name in settings_values for name in WHERE)
    return Invocation(command, values, settings, configured, **extra)


def wire_implements() -> frozenset[str]:
    from kamikaze.wire import IMPLEMENTS

    return IMPLEMENTS


def next_value(rest: Any) -> str:
    value = next(rest, None)
    if value is None:
        raise Declined
    return str(value)


def number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def finite(text: str, positive: bool = False) -> float:
    """As the full CLI's FiniteFloat takes it; Declined otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise Declined from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise Declined
    return value


def batch_size(text: str | None) -> int:
    try:
        size = int(text or "")
    except ValueError:
        raise Declined from None
    if not 1 <= size <= 100_000:
        raise Declined
    return size


def check_arguments(command: str, values: list[str], extra: dict[str, Any]) -> None:
    if command == "push":
        if values == ["-"]:
            return
        if len(values) != 3 or values[0] == "-" or "batch_size" in extra:
            raise Declined
        try:
            check_expire_time(finite(values[1], positive=True))
        except ValueError:
            raise Declined from None
        finite(values[2])
    elif len(values) != (1 if command == "remove" else 0):
        raise Declined


def environment_values(
    environ: Mapping[str, str], known: dict[str, dataclasses.Field[Any]], skip: dict[str, Any]
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for field in known.values():
        text = environ.get(field.metadata["option"].env)
        if not text or field.name in skip:
            continue  # the command line wins; an empty variable is none
        if field.metadata["option"].kind == "flag":
            if text.lower() not in (*TRUE, *FALSE):
                raise Declined
            found[field.name] = text.lower() in TRUE
        else:
            found[field.name] = text
    return found


def convert(name: str, value: Any) -> Any:
    """A value as the full CLI's option converts it; Declined when it would refuse it."""
    kind = next(f for f in dataclasses.fields(Settings) if f.name == name).metadata["option"].kind
    if kind == "port":
        port = int(value) if str(value).strip().isdigit() else 0
        if not 1 <= port <= 65535:
            raise Declined
        return port
    if kind == "existing_file" and (not os.path.exists(value) or os.path.isdir(value)):
        raise Declined
    if kind == "file" and os.path.isdir(value):
        raise Declined
    return value


# Running ---------------------------------------------------------------------------------


def execute(invocation: Invocation) -> int:
    from kamikaze import wire

    settings = invocation.settings
    if settings.embedded:
        from kamikaze.embedded import EmbeddedError

        try:
            settings.embedded_server().require_running()
        except EmbeddedError as exc:
            return failure(str(exc))
    connection = wire.Connection(settings.connection_kwargs())
    try:
        return COMMAND_RUNNERS[invocation.command](invocation, Runner(connection, settings.key))
    except (wire.WireError, wire.ReplyError, wire.BadReply) as exc:
        what = exc.what if isinstance(exc, wire.WireError) else None
        return redis_failure(invocation, wire.as_redis_error(exc, what))
    finally:
        connection.close()


def push(invocation: Invocation, runner: Runner) -> int:
    if invocation.arguments == ["-"]:
        return push_lines(invocation, runner)
    payload, ttl, priority = invocation.arguments
    runner.run(operations.push_many([(payload, float(ttl), float(priority))]))
    return 0


def push_lines(invocation: Invocation, runner: Runner) -> int:
    from kamikaze.lines import BadLine, batches

    pushed = 0
    try:
        for batch in batches(sys.stdin.buffer, invocation.batch_size):
            pushed += len(runner.run(operations.push_many(batch)))
    except BadLine as exc:
        return usage_error(f"{exc} (pushed {pushed} packages before it)")
    logger().info("pushed %d package%s", pushed, "" if pushed == 1 else "s")
    return 0


def remove(invocation: Invocation, runner: Runner) -> int:
    (payload,) = invocation.arguments
    removed = runner.run(operations.remove(runner.keys, payload))
    logger().info(
        "removed %d package%s with payload %r", removed, "" if removed == 1 else "s", payload
    )
    return 0


def list_(invocation: Invocation, runner: Runner) -> int:
    from kamikaze import output

    logger()  # members that are not ours are warned about
    skips = operations.SkipLog(runner.keys.queue)
    packages, now = runner.run(operations.listing(runner.keys, None, skips))
    if invocation.as_json:
        echo(output.as_json(packages, now), errors="backslashreplace")
    elif sys.stdout.isatty():
        echo(output.table(packages, now))
    elif packages:
        echo(output.plain(packages, now))
    return 0


COMMAND_RUNNERS = {"push": push, "remove": remove, "list": list_}


class Runner:
    """Runs an operation's steps (kamikaze.operations) on one wire connection."""

    def __init__(self, connection: Any, key: str) -> None:
        self.connection = connection
        self.keys = QueueKeys(key)

    def run(self, steps: Steps[Any]) -> Any:
        reply: Any = None
        try:
            while True:
                reply = self.perform(steps.send(reply))
        except StopIteration as done:
            return done.value

    def perform(self, step: operations.Step) -> Any:
        from kamikaze import wire

        if isinstance(step, operations.Commands):
            replies = self.connection.execute(step.commands)
            for reply in replies:
                if isinstance(reply, wire.ReplyError):
                    raise reply
            return replies
        keys = list(step.keys) if step.keys is not None else self.keys.all
        if step.what is not None:
            keys.append(self.keys.new_call())  # the same in a retry: applied once
        try:
            return self.call_script(step, keys)
        except wire.WireError as exc:
            exc.what = step.what
            raise

    def call_script(self, step: Script, keys: list[str]) -> Any:
        from kamikaze import wire

        source = script_source(step.name)
        call = ("EVALSHA", sha1(source), len(keys), *keys, *step.args)
        (reply,) = self.connection.execute([call])
        if isinstance(reply, wire.ReplyError) and str(reply).startswith("NOSCRIPT"):
            _, reply = self.connection.execute([("SCRIPT", "LOAD", source), call])
        if isinstance(reply, wire.ReplyError):
            raise reply
        return reply


def sha1(source: str) -> str:
    import hashlib

    return hashlib.sha1(source.encode()).hexdigest()


# Reporting, as the full CLI does --------------------------------------------------------


def logger() -> Any:
    """The `kamikaze` logger, configured as the full CLI configures it."""
    import logging

    from kamikaze.logs import configure

    configure("INFO", "human")
    return logging.getLogger("kamikaze")


def echo(text: str, errors: str = "surrogateescape") -> None:
    sys.stdout.buffer.write(text.encode("utf-8", errors) + b"\n")
    sys.stdout.flush()


def failure(message: str) -> int:
    sys.stderr.write(f"Error: {message}\n")
    return 1


def usage_error(message: str) -> int:
    """A usage error of `push`, shown by click as the full CLI shows it."""
    import click

    from kamikaze.cli import main as full_cli

    parent = click.Context(full_cli, info_name="kamikaze")
    context = click.Context(full_cli.commands["push"], info_name="push", parent=parent)
    error = click.UsageError(message, context)
    error.show()
    return error.exit_code


def redis_failure(invocation: Invocation, exc: BaseException) -> int:
    from kamikaze.errors import EMBEDDED_HINT, is_refused, redis_error_line

    line = redis_error_line(invocation.settings, exc)
    if is_refused(exc) and not invocation.configured:
        line += EMBEDDED_HINT
    return failure(line)
