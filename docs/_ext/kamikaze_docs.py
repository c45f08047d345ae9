"""Sphinx directives generated from the code, so that the docs cannot drift.

``.. kamikaze-options::`` is a table of every option of the CLI with its
environment variable and default, read from the click declarations of
``kamikaze.cli:main`` (``:scope: global``, ``connection`` or ``commands``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

import click
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from kamikaze.cli import main
from kamikaze.options import connection_params

_DEFAULT_IN_HELP = re.compile(r"\s*\[default: (.*)\]\.?\s*$")


def _options(scope: str) -> list[tuple[str, click.Option]]:
    """(command or '', option) in the order --help shows them."""
    root = click.Context(main, **main.context_settings)
    if scope == "global":
        return [("", p) for p in main.get_params(root) if isinstance(p, click.Option)]
    shared = {id(param) for param in connection_params()}
    if scope == "connection":
        return [("", p) for p in connection_params() if isinstance(p, click.Option)]
    found = []
    for name, command in main.commands.items():
        context = click.Context(command, parent=root)
        for param in command.get_params(context):
            if isinstance(param, click.Option) and id(param) not in shared and not param.is_eager:
                found.append((name, param))  # not --help, which is eager
    return found


def _literal(text: str) -> str:
    return f"``{text}``"


def _option_cell(command: str, option: click.Option) -> str:
    names = "/".join(option.opts + option.secondary_opts)
    value = "" if option.is_flag else f" {option.metavar or str(option.name).upper()}"
    return _literal(f"{command} {names}{value}".strip())


def _default_cell(option: click.Option, help_text: str) -> str:
    in_help = _DEFAULT_IN_HELP.search(help_text)
    if in_help:
        return in_help[1].replace("$", "``$").replace(", else ", "``, else ``") + "``"
    default = option.get_default(click.Context(main), call=False)
    if option.is_eager:  # --help, --version
        return " "
    if option.is_flag:
        return "off"
    if not isinstance(default, str | int | float) or default == "":
        return "none"  # None, (), or click's own "unset" sentinel
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return _literal(str(default))


def _rows(scope: str) -> list[list[str]]:
    rows = []
    for command, option in _options(scope):
        help_text = option.help or ""
        envvar = option.envvar if isinstance(option.envvar, str) else None
        if envvar and option.is_flag:
            envvar += "=1"
        what = _DEFAULT_IN_HELP.sub("", help_text).replace("*", "\\*")
        if isinstance(option.type, click.Choice):
            what = (what + " One of: " + ", ".join(map(_literal, option.type.choices))).strip()
        rows.append(
            [
                _option_cell(command, option),
                _literal(envvar) if envvar else "none",
                _default_cell(option, help_text),
                what or " ",
            ]
        )
    return rows


class OptionsTable(SphinxDirective):
    has_content = False
    option_spec: ClassVar[dict[str, Callable[[str], Any]]] = {
        "scope": lambda text: directives.choice(text, ("global", "connection", "commands"))
    }

    def run(self) -> list[nodes.Node]:
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 40 20 40",
            "   :class: kamikaze-options",
            "",
            "   * - option, environment variable",
            "     - default",
            "     - meaning",
        ]
        for option, envvar, default, what in _rows(self.options.get("scope", "connection")):
            lines.append(f"   * - {option}")
            if envvar != "none":
                lines += ["", f"       {envvar}"]
            lines += [f"     - {default}", f"     - {what}"]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="kamikaze-options"), 0, container)
        return list(container.children)


def _plain_text(app: Sphinx, ctx: click.Context, lines: list[str]) -> None:
    """Help texts are plain text, not RST: `consumer(package, *ARGS, **KWARGS)`
    must not start emphasis."""
    lines[:] = [
        re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", line.replace("*", "\\*")) for line in lines
    ]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("kamikaze-options", OptionsTable)
    app.connect("sphinx-click-process-description", _plain_text)
    app.connect("sphinx-click-process-epilog", _plain_text)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
