"""Arguments that may start with '-' (push and remove): a negative priority
is a value, a mistyped option is an error, and '--' makes anything a value.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

# ctx.meta key: the first value was a bare '-' typed before any '--'.
DASH_FIRST = "kamikaze.dash_first"


class ValuesMayStartWithDash(click.Command):
    """Click alone reads '-5' as an unknown option, and with
    ignore_unknown_options it reads '--embeded' as a value. Here an argument
    that starts with '-' is a value only if it is a number or follows '--';
    any other that is not one of the command's options is a NoSuchOption.
    The arguments reach click's parser as options first, then '--' and the
    values, so click still converts and checks every one of them."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            options, values = self.split(ctx, args)
        except click.UsageError:
            if not ctx.resilient_parsing:  # shell completion: parse what can be parsed
                raise
            return super().parse_args(ctx, args)
        return super().parse_args(ctx, [*options, "--", *values])

    def split(self, ctx: click.Context, args: list[str]) -> tuple[list[str], list[str]]:
        by_name = self.options_by_name(ctx)
        options: list[str] = []
        values: list[str] = []
        rest = iter(args)
        for arg in rest:
            if arg == "--":
                values.extend(rest)
                break
            name = arg.split("=", 1)[0]
            option = by_name.get(name)
            if option is not None:
                options.append(arg)
                if "=" not in arg:
                    options.extend(option_values(ctx, option, name, rest))
            elif arg.startswith("-") and arg != "-" and not is_number(arg):
                raise click.NoSuchOption(name, possibilities=list(by_name), ctx=ctx)
            else:
                if arg == "-" and not values:
                    ctx.meta[DASH_FIRST] = True
                values.append(arg)
        return options, values

    def options_by_name(self, ctx: click.Context) -> dict[str, click.Option]:
        return {
            name: param
            for param in self.get_params(ctx)
            if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)
        }


def option_values(
    ctx: click.Context, option: click.Option, name: str, rest: Iterator[str]
) -> list[str]:
    """The arguments that an option typed as `name` takes, whatever they look like
    (as click's parser takes them: `--key -odd` names the key '-odd')."""
    if option.is_flag or option.count:
        return []
    taken = [arg for _, arg in zip(range(option.nargs), rest, strict=False)]
    if len(taken) < option.nargs:
        wanted = "an argument" if option.nargs == 1 else f"{option.nargs} arguments"
        raise click.BadOptionUsage(name, f"Option {name!r} requires {wanted}.", ctx)
    return taken


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
