"""The connection settings in KAMIKAZE_* environment variables, outside the
CLI: read them as the CLI reads them (`Queue.from_environment()`), and export
the settings a service uses, so that its consumer, and any `kamikaze` command
the consumer runs, reach the same queue on the same server (docs/consumer.rst,
"Taking a package off the queue").
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from kamikaze.settings import Settings, parse_sentinel

# Settings field -> its variable, from the options' one declaration (kamikaze.settings).
VARIABLES = {
    field.name: field.metadata["option"].env
    for field in dataclasses.fields(Settings)
    if "option" in field.metadata
}
KINDS = {
    field.name: field.metadata["option"].kind
    for field in dataclasses.fields(Settings)
    if "option" in field.metadata
}


def settings_from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the KAMIKAZE_* variables (os.environ by default), read as
    the CLI reads them; the defaults for those not set. A value that cannot
    work raises ValueError naming its variable."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, variable in VARIABLES.items():
        text = environ.get(variable)
        if not text:  # click ignores empty variables too
            continue
        try:
            values[name] = _READERS.get(KINDS[name], str)(text)
        except ValueError as exc:
            raise ValueError(f"{variable}: {exc}") from None
    return Settings(**values)


def export_settings(settings: Settings, environ: MutableMapping[str, str] | None = None) -> None:
    """Put `settings` into the KAMIKAZE_* variables (os.environ by default):
    a default value removes its variable. The embedded server's directories
    are written as absolute paths, so that a consumer that changes directory
    still finds the server."""
    environ = os.environ if environ is None else environ
    values = dataclasses.asdict(settings)
    if settings.embedded:
        server = settings.embedded_server()
        values["embedded_runtime_dir"] = str(server.runtime_dir)
        values["embedded_data_dir"] = str(server.data_dir)
    defaults = dataclasses.asdict(Settings())
    for name, variable in VARIABLES.items():
        value = values[name]
        if value == defaults[name] or value is None:
            environ.pop(variable, None)
        else:
            environ[variable] = _WRITERS.get(KINDS[name], str)(value)


@contextlib.contextmanager
def exported(settings: Settings) -> Iterator[None]:
    """os.environ with `settings` exported, for as long as the block runs."""
    saved = {variable: os.environ.get(variable) for variable in VARIABLES.values()}
    export_settings(settings)
    try:
        yield
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def _flag(text: str) -> bool:
    import click

    try:
        return bool(click.BOOL.convert(text, None, None))
    except click.BadParameter:
        raise ValueError(f"{text!r} is not a flag value (1, true, yes; 0, false, no)") from None


def _port(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{text!r} is not a port number (1 to 65535)")
    return int(text)


def _sentinels(text: str) -> tuple[tuple[str, int], ...]:
    return tuple(parse_sentinel(part) for part in re.split(r"[\s,]+", text) if part)


def _sentinels_text(sentinels: tuple[tuple[str, int], ...]) -> str:
    return ",".join(
        f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in sentinels
    )


# By an option's kind (kamikaze.settings.Option).
_READERS: dict[str, Callable[[str], Any]] = {
    "port": _port,
    "sentinels": _sentinels,
    "flag": _flag,
}
_WRITERS: dict[str, Callable[[Any], str]] = {
    "sentinels": _sentinels_text,
    "flag": lambda on: "1",
}
