"""The one-shot commands, fast. `kamikaze push`, `remove`, `list` and
`clear` run from shell scripts once per package, so they must start near
the interpreter's floor: here, without click, redis-py or asyncio, on
kamikaze.wire.

The command line is read by the same declarations (kamikaze.parameters)
and the same rules as the full CLI (kamikaze.cli): the same splitting of
values that may start with '-', every value checked by its kind's `parse`,
the environment read the same way. The fast path declines, and the full CLI
takes the command line, whenever (the rule, derived from the declarations):

- something is not a declared option, or a value its kind refuses (the full
  CLI then says why, in click's words: every message about the command line
  is the full CLI's);
- the settings need what kamikaze.wire does not implement: a topology other
  than one server, or a connection argument outside `wire.IMPLEMENTS` (a
  URL query, which only redis-py parses, always is);
- the output would be the full CLI's own: help, completion, a prompt,
  `--loglevel DEBUG` (its tracebacks are the full CLI's).

Both paths run the same steps (kamikaze.operations) and Lua scripts, and
report through kamikaze.report: one answer on both (tests/integration/test_two_paths.py).

The entry point of the `kamikaze` command and of `python -m kamikaze`.
"""

from __future__ import annotations

import os
import sys

from kamikaze import operations
from kamikaze.parameters import (
    COMMANDS,
    CONNECTION,
    GLOBAL,
    Param,
    environment_value,
    split_arguments,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from kamikaze.operations import Script, Steps
    from kamikaze.parameters import Command
    from kamikaze.settings import Settings


class Declined(Exception):
    """Not for the fast path: the full CLI takes the command line."""


class Invocation:
    """A command line the fast path runs: the command, its own values, the
    settings, the log settings, and whether anything said where Redis is."""

    __slots__ = ("command", "configured", "log_format", "loglevel", "settings", "values")

    def __init__(
        self,
        command: str,
        values: dict[str, Any],
        settings: Settings,
        configured: bool,
        loglevel: str = "INFO",
        log_format: str = "human",
    ) -> None:
        self.command = command
        self.values = values
        self.settings = settings
        self.configured = configured
        self.loglevel = loglevel
        self.log_format = log_format


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
    """Run a command line the fast path takes; None when it declines one."""
    if environ.get("KAMIKAZE_FULL_CLI"):  # the tests run the CLI tests on both paths
        return None
    try:
        invocation = parse(argv, environ)
    except Declined:
        return None
    return execute(invocation)


# Reading the command line ----------------------------------------------------------------


def parse(argv: list[str], environ: Mapping[str, str]) -> Invocation:
    """The invocation of `argv` in `environ`; Declined when the full CLI must take it."""
    if "_KAMIKAZE_COMPLETE" in environ:  # click's shell completion
        raise Declined
    given, rest = read_global_options(argv)
    if not rest or rest[0] not in RUNNERS:
        raise Declined
    command = COMMANDS[rest[0]]
    given |= read_command(command, rest[1:])
    chosen = {**read_environment((*GLOBAL, *CONNECTION, *command.options), given, environ), **given}
    if chosen.get("loglevel") == "DEBUG":
        raise Declined
    settings = fast_settings({p.name: chosen[p.name] for p in CONNECTION if p.name in chosen})
    configured = any(p.name in chosen for p in CONNECTION if p.locates)
    own = {p.name: chosen.get(p.name, p.default) for p in (*command.arguments, *command.options)}
    own["lines"] = chosen.get("lines", False)
    refused_by_the_command(command.name, own)
    levels = {p.name: chosen.get(p.name, p.default) for p in GLOBAL}
    return Invocation(command.name, own, settings, configured, **levels)


def read_command(command: Command, args: list[str]) -> dict[str, Any]:
    """What the command line after the command gives: its options and arguments."""
    by_flag = {flag: p for p in (*CONNECTION, *command.options) for flag in p.flags}
    try:
        options, values, dash_first = split_arguments(args, lambda n: takes_value(by_flag, n))
    except ValueError:  # an unknown option, or one without its value
        raise Declined from None
    given = read_options(options, by_flag)
    if command.name == "push" and dash_first:  # `push -`: JSON lines from stdin
        if values != ["-"]:
            raise Declined  # click: "'-' alone reads JSON lines from stdin; ..."
        return given | {"lines": True}
    return given | read_arguments(command.arguments, values)


def refused_by_the_command(command: str, own: dict[str, Any]) -> None:
    """What a command itself refuses or asks about (kamikaze.cli says so)."""
    if command == "list" and own["raw"] and own["as_json"]:
        raise Declined  # "--raw and --json exclude each other"
    if command == "clear" and not own["yes"]:
        raise Declined  # a prompt on a terminal, else "add --yes to confirm"


def read_global_options(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The global options before the command (--loglevel, --log-format), and the rest."""
    by_flag = {flag: param for param in GLOBAL for flag in param.flags}
    given: dict[str, Any] = {}
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        name, equals, text = rest.pop(0).partition("=")
        if name not in by_flag:
            raise Declined  # --help, --version, a typo
        if not equals:
            if not rest:
                raise Declined
            text = rest.pop(0)
        given[by_flag[name].name] = parsed(by_flag[name], text)
    return given, rest


def takes_value(by_flag: dict[str, Param], name: str) -> bool | None:
    param = by_flag.get(name)
    return None if param is None else not param.is_flag


def read_options(options: list[str], by_flag: dict[str, Param]) -> dict[str, Any]:
    """The values of the options split_arguments found (the last one wins,
    as in click; a repeatable option's values add up)."""
    found: dict[str, Any] = {}
    tokens = iter(options)
    for token in tokens:
        name, equals, text = token.partition("=")
        param = by_flag[name]
        if param.is_flag:
            if equals:
                raise Declined  # click: "Option '--json' does not take a value."
            found[param.name] = True
            continue
        value = parsed(param, text if equals else next(tokens))
        found[param.name] = (*found.get(param.name, ()), *value) if param.many else value
    return found


def read_arguments(arguments: tuple[Param, ...], values: list[str]) -> dict[str, Any]:
    """The command's arguments, every one given (push's TTL and PRIORITY are
    optional only for `push -`)."""
    if len(values) != len(arguments):
        raise Declined  # click: a missing or an extra argument
    return {param.name: parsed(param, text) for param, text in zip(arguments, values, strict=True)}


def read_environment(
    params: Iterable[Param], given: dict[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """What the environment gives the options the command line did not."""
    found: dict[str, Any] = {}
    for param in params:
        if param.name in given:
            continue
        try:
            value = environment_value(param, environ)
        except ValueError:
            raise Declined from None
        if value is not None:
            found[param.name] = value
    return found


def parsed(param: Param, text: str) -> Any:
    try:
        return param.kind.parse(text)
    except ValueError:
        raise Declined from None


def fast_settings(values: dict[str, Any]) -> Settings:
    """The settings, if they work and kamikaze.wire implements what they need."""
    from kamikaze import wire
    from kamikaze.settings import Settings

    if "?" in str(values.get("redis_url") or ""):
        raise Declined  # a URL query is redis-py's to parse and honour
    try:
        settings = Settings(**values)
        settings.check()
        kwargs = settings.connection_kwargs()
    except ValueError:
        raise Declined from None
    if settings.topology not in wire.TOPOLOGIES or not set(kwargs) <= wire.IMPLEMENTS:
        raise Declined
    return settings


# Running ---------------------------------------------------------------------------------


def execute(invocation: Invocation) -> int:
    from kamikaze import report

    report.configure_logs(invocation.loglevel, invocation.log_format)
    try:
        return connected(invocation)
    finally:
        report.reset_logs()


def connected(invocation: Invocation) -> int:
    """Run the command on a connection; the embedded server is looked into
    (kamikaze.embedded, which a running server does not need) only when its
    socket does not answer: report.embedded_problem says why, or waits while
    a service is starting it."""
    from kamikaze import report, wire

    settings = invocation.settings
    if settings.embedded:
        from kamikaze.places import EmbeddedError, check_private, runtime_dir

        try:
            check_private(runtime_dir(settings.embedded_runtime_dir))
        except EmbeddedError as exc:
            return report.failure(str(exc))
    for attempt in (1, 2):
        connection = wire.Connection(settings.connection_kwargs())
        try:
            return RUNNERS[invocation.command](invocation, Runner(connection, settings.key))
        except wire.WireError as exc:
            if settings.embedded and attempt == 1 and exc.while_connecting and not exc.sent:
                problem = report.embedded_problem(settings)
                if problem is not None:
                    return report.failure(problem)
                continue  # it answers now
            return failed(invocation, exc)
        except (wire.ReplyError, wire.BadReply) as exc:
            return failed(invocation, exc)
        finally:
            connection.close()
    raise AssertionError("unreachable")


def failed(invocation: Invocation, exc: Exception) -> int:
    from kamikaze import report, wire

    what = exc.what if isinstance(exc, wire.WireError) else None
    error = wire.as_redis_error(exc, what)
    return report.failure(report.failure_line(invocation.settings, error, invocation.configured))


def push(invocation: Invocation, runner: Runner) -> int:
    values = invocation.values
    if values["lines"]:
        return push_lines(invocation, runner)
    runner.run(operations.push_many([(values["payload"], values["ttl"], values["priority"])]))
    return 0


def push_lines(invocation: Invocation, runner: Runner) -> int:
    from kamikaze import report
    from kamikaze.lines import BadLine, batches

    pushed = 0
    try:
        for batch in batches(sys.stdin.buffer, invocation.values["batch_size"]):
            pushed += len(runner.run(operations.push_many(batch)))
    except BadLine as exc:
        return usage_error("push", f"{exc} (pushed {pushed} packages before it)")
    report.pushed(pushed)
    return 0


def remove(invocation: Invocation, runner: Runner) -> int:
    from kamikaze import report

    payload = invocation.values["payload"]
    report.removed(runner.run(operations.remove(runner.keys, payload)), payload)
    return 0


def list_(invocation: Invocation, runner: Runner) -> int:
    from kamikaze import report

    if invocation.values["raw"]:
        entries, _ = runner.run(operations.pages(runner.keys, None))
        report.raw_listing(entries)
        return 0
    skips = operations.SkipLog(runner.keys.queue)
    packages, now = runner.run(operations.listing(runner.keys, None, skips))
    report.listing(packages, now, invocation.values["as_json"])
    return 0


def clear(invocation: Invocation, runner: Runner) -> int:
    from kamikaze import report

    report.cleared(runner.run(operations.clear(runner.keys)), runner.keys.queue)
    return 0


RUNNERS: dict[str, Callable[[Invocation, Runner], int]] = {
    "push": push,
    "remove": remove,
    "list": list_,
    "clear": clear,
}


class Runner:
    """Runs an operation's steps (kamikaze.operations) on one wire connection."""

    def __init__(self, connection: Any, key: str) -> None:
        from kamikaze.keys import QueueKeys

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
        args = step.args
        if step.what is not None:
            args = [self.keys.new_token(), *args]  # the same in a retry: applied once
        try:
            return self.call_script(step, keys, args)
        except wire.WireError as exc:
            exc.what = step.what
            raise

    def call_script(self, step: Script, keys: list[str], args: list[Any]) -> Any:
        from kamikaze import wire

        source = operations.script_source(step.name)
        call = ("EVALSHA", operations.script_sha(step.name), len(keys), *keys, *args)
        (reply,) = self.connection.execute([call])
        if isinstance(reply, wire.ReplyError) and str(reply).startswith("NOSCRIPT"):
            _, reply = self.connection.execute([("SCRIPT", "LOAD", source), call])
        if isinstance(reply, wire.ReplyError):
            raise reply
        return reply


def usage_error(command: str, message: str) -> int:
    """A usage error of `command`, shown by click as the full CLI shows it."""
    import click

    from kamikaze.cli import main as full_cli

    parent = click.Context(full_cli, info_name="kamikaze")
    context = click.Context(full_cli.commands[command], info_name=command, parent=parent)
    error = click.UsageError(message, context)
    error.show()
    return error.exit_code
