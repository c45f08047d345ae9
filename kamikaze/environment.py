"""The connection settings in KAMIKAZE_* environment variables, outside the
CLI: read them as the CLI reads them (`Queue.from_environment()`), and export
the settings a service uses, so that its consumer, and any `kamikaze` command
the consumer runs, reach the same queue on the same server (docs/consumer.rst,
"Taking a package off the queue").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from kamikaze.parameters import CONNECTION, FLAG, SENTINELS, environment_value
from kamikaze.settings import Settings

# Settings field -> its variable, from the options' one declaration (kamikaze.parameters).
VARIABLES = {param.name: param.env for param in CONNECTION if param.env}


def settings_from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the KAMIKAZE_* variables (os.environ by default), read as
    the CLI reads them; the defaults for those not set. A value that cannot
    work raises ValueError naming its variable."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for param in CONNECTION:
        try:
            value = environment_value(param, environ)
        except ValueError as exc:
            raise ValueError(f"{param.env}: {exc}") from None
        if value is not None:
            values[param.name] = value
    return Settings(**values)


def export_settings(settings: Settings, environ: MutableMapping[str, str] | None = None) -> None:
    """Put `settings` into the KAMIKAZE_* variables (os.environ by default):
    a default value removes its variable. The embedded server's directories
    are written as absolute paths, so that a consumer that changes directory
    still finds the server."""
    environ = os.environ if environ is None else environ
    values = settings.values()
    if settings.embedded:
        server = settings.embedded_server()
        values["embedded_runtime_dir"] = str(server.runtime_dir)
        values["embedded_data_dir"] = str(server.data_dir)
    for param in CONNECTION:
        if param.env is None:
            continue
        value = values[param.name]
        if value == param.default or value is None:
            environ.pop(param.env, None)
        elif param.kind is SENTINELS:
            environ[param.env] = _sentinels_text(value)
        elif param.kind is FLAG:
            environ[param.env] = "1"
        else:
            environ[param.env] = str(value)


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


def _sentinels_text(sentinels: tuple[tuple[str, int], ...]) -> str:
    return ",".join(
        f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in sentinels
    )
