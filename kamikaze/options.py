"""How the command line is parsed, beyond click itself: the connection
options, made from their one declaration in kamikaze.settings; options that
name their environment variable in errors; finite numbers; and hints for an
option typed on the wrong side of the command. (Arguments that may start
with '-' are kamikaze.arguments'.)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, cast

import click

from kamikaze.settings import Option, SettingError, Settings


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


class FiniteFloat(click.types.FloatParamType):
    """A finite float (and > 0 if `positive`). A FloatParamType, whose type
    is the same on every click release (ParamType is generic only since 8.4)."""

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
    """The connection options, one per declared Settings field, built once and
    shared by every command (the CLI starts once per package)."""
    return tuple(
        _click_option(field.name, field.default, field.metadata["option"])
        for field in dataclasses.fields(Settings)
        if "option" in field.metadata
    )


def _click_option(name: str, default: Any, declared: Option) -> click.Option:
    kinds: dict[str, dict[str, Any]] = {
        "text": {},
        "port": {"type": click.IntRange(1, 65535)},
        "file": {"type": click.Path(dir_okay=False)},
        "existing_file": {"type": click.Path(exists=True, dir_okay=False)},
        "flag": {"is_flag": True},
        "sentinels": {"multiple": True, "callback": lambda ctx, p, v: split_sentinels(v)},
    }
    shown = default not in (None, False, ())
    return EnvOption(
        [declared.flag, name],
        envvar=declared.env,
        default=None if declared.kind == "sentinels" else default,
        show_default=shown,
        metavar=declared.metavar,
        help=declared.help or None,
        **kinds[declared.kind],
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
    objects, built once."""
    callback = command.callback
    assert callback is not None
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    names = [param.name for param in connection_params() if param.name is not None]

    @functools.wraps(callback)
    def with_settings(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in names}
        # An empty value of an optional setting (KAMIKAZE_REDIS_URL=) is no value.
        values: dict[str, Any] = {
            name: None if value == "" and defaults[name] is None else value
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
