"""How the command line is parsed, beyond click itself: click's options and
arguments, made from their one declaration in kamikaze.parameters (each
value checked by its kind's `parse`, as the fast path checks it); options
that name their environment variable in errors; and hints for an option
typed on the wrong side of the command. (Arguments that may start with '-'
are kamikaze.arguments'.)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, cast

import click

from kamikaze.parameters import COMMANDS, CONNECTION, GLOBAL, Kind, Param
from kamikaze.settings import SettingError, Settings


class EnvOption(click.Option):
    """An option that, when its value came from the environment, names the
    variable in errors: KAMIKAZE_REDIS_PORT=abc is not --redis-port's fault."""

    def get_error_hint(self, ctx: click.Context | None) -> str:
        names = [self.envvar] if isinstance(self.envvar, str) else list(self.envvar or ())
        source = None if ctx is None or self.name is None else ctx.get_parameter_source(self.name)
        if not names or source is not click.core.ParameterSource.ENVIRONMENT:
            # click hints `Context | None` since 8.4, `Context` before
            return super().get_error_hint(cast(click.Context, ctx))
        return repr(next((name for name in names if os.environ.get(name)), names[0]))


def bad_value(name: str, message: str) -> click.BadParameter:
    """A usage error (exit 2) that names the option `name`, or its environment variable."""
    ctx = click.get_current_context()
    param = next((p for p in ctx.command.params if p.name == name), None)
    return click.BadParameter(message, ctx=ctx, param=param)


class KindType(click.types.UnprocessedParamType):
    """A kind of value (kamikaze.parameters) as a click type: its `parse`
    decides, and its message is the error. (UnprocessedParamType is a
    ParamType whose hints are the same on every click release.)"""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.name = kind.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value  # a default, already a value
        try:
            return self.kind.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)

    def get_metavar(self, *args: Any, **kwargs: Any) -> str | None:
        return self.kind.metavar


def click_option(param: Param) -> click.Option:
    """The click option of a declared option."""
    shown = param.default not in (None, False, ())
    kwargs: dict[str, Any] = {
        "envvar": param.env,
        "default": param.default,
        "show_default": shown,
        "metavar": param.metavar,
        "help": param.help or None,
    }
    if param.is_flag:
        kwargs["is_flag"] = True  # click's BOOL reads its variable (parameters.FLAG_WORDS)
    elif param.kind.choices:
        kwargs["type"] = click.Choice(param.kind.choices, case_sensitive=not param.kind.any_case)
    else:
        kwargs["type"] = KindType(param.kind)
    if param.many:
        kwargs |= {"multiple": True, "default": None, "callback": _joined}
    cls = EnvOption if param.env else click.Option
    return cls([*param.flags, param.name], **kwargs)


def _joined(ctx: click.Context, param: click.Parameter, values: Any) -> tuple[Any, ...]:
    """A repeatable option: the parts of every value, in order."""
    return tuple(part for value in values or () for part in value)


def click_argument(param: Param) -> click.Argument:
    return click.Argument(
        [param.name],
        type=KindType(param.kind),
        required=param.required,
        metavar=param.name.upper(),
    )


def declared(command_name: str) -> Callable[[click.Command], click.Command]:
    """Give a command its declared arguments and options (kamikaze.parameters)."""

    def add(command: click.Command) -> click.Command:
        declaration = COMMANDS[command_name]
        made: list[click.Parameter] = [click_argument(p) for p in declaration.arguments]
        made += [click_option(p) for p in declaration.options]
        command.params[:0] = made
        return command

    return add


def global_options() -> list[click.Option]:
    return [click_option(param) for param in GLOBAL]


@functools.cache
def connection_params() -> tuple[click.Parameter, ...]:
    """The connection options, one per declared Settings field, built once and
    shared by every command (the CLI starts once per package)."""
    return tuple(click_option(param) for param in CONNECTION)


def connection_options(command: click.Command) -> click.Command:
    """Add the connection options to a command and pass it one `settings`.

    Applied on top of the command: every command shares the same option
    objects, built once."""
    callback = command.callback
    assert callback is not None
    names = [param.name for param in CONNECTION]
    defaults = {param.name: param.default for param in CONNECTION}

    @functools.wraps(callback)
    def with_settings(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in names}
        # An empty value of an optional setting (KAMIKAZE_REDIS_URL=) is no value;
        # a repeatable one given no times is its default.
        values: dict[str, Any] = {
            name: defaults[name] if value in ("", ()) and defaults[name] in (None, ()) else value
            for name, value in given.items()
        }
        settings = Settings(**values)
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
