"""Arguments that may start with '-' (push and remove): a negative priority
is a value, a mistyped option is an error, and '--' makes anything a value.
"""

from __future__ import annotations

import click

from kamikaze.parameters import MissingValue, UnknownOption, split_arguments

# ctx.meta key: the first value was a bare '-' typed before any '--'.
DASH_FIRST = "kamikaze.dash_first"


class ValuesMayStartWithDash(click.Command):
    """Click alone reads '-5' as an unknown option, and with
    ignore_unknown_options it reads '--embeded' as a value. Here an argument
    that starts with '-' is a value only if it is a number or follows '--';
    any other that is not one of the command's options is a NoSuchOption
    (kamikaze.parameters.split_arguments decides, for the fast path too).
    The arguments reach click's parser as options first, then '--' and the
    values, so click still converts and checks every one of them."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        by_name = self.options_by_name(ctx)
        try:
            options, values, dash_first = split_arguments(
                args, lambda name: None if name not in by_name else takes_value(by_name[name])
            )
        except UnknownOption as exc:
            if ctx.resilient_parsing:  # shell completion: parse what can be parsed
                return super().parse_args(ctx, args)
            raise click.NoSuchOption(exc.name, possibilities=list(by_name), ctx=ctx) from None
        except MissingValue as exc:
            if ctx.resilient_parsing:
                return super().parse_args(ctx, args)
            raise click.BadOptionUsage(
                exc.name, f"Option {exc.name!r} requires an argument.", ctx
            ) from None
        if dash_first:
            ctx.meta[DASH_FIRST] = True
        return super().parse_args(ctx, [*options, "--", *values])

    def options_by_name(self, ctx: click.Context) -> dict[str, click.Option]:
        return {
            name: param
            for param in self.get_params(ctx)
            if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)
        }


def takes_value(option: click.Option) -> bool:
    """Whether an option takes one value (none of ours takes more)."""
    assert option.nargs <= 1, option.name
    return not (option.is_flag or option.count)
