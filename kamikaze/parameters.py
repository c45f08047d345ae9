"""Every option and argument of the command line, declared once: its flags,
environment variable, kind of value, default and help, and the commands that
take it. click's options (kamikaze.options), the KAMIKAZE_* environment
(kamikaze.environment), Settings' fields, the docs' tables and the fast path
of the one-shot commands (kamikaze.quick) are all made from these
declarations, and every value is checked by its kind's one `parse`.

Nothing here imports click, redis-py, dataclasses or typing: the fast path
reads these declarations at every start (docs/architecture.rst).
"""

from __future__ import annotations

import math
import os

from kamikaze.package import check_expire_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from typing import Any


# Kinds of value --------------------------------------------------------------------------


class Kind:
    """How a text becomes a value: `parse` raises ValueError with the message
    a user sees (click shows it after "Invalid value for ...")."""

    __slots__ = ("any_case", "choices", "metavar", "name", "parse")

    def __init__(
        self,
        name: str,
        parse: Callable[[str], Any],
        metavar: str | None = None,
        choices: tuple[str, ...] = (),
        any_case: bool = False,
    ) -> None:
        self.name = name
        self.parse = parse
        self.metavar = metavar
        self.choices = choices  # a choice among these (`parse` decides)
        self.any_case = any_case

    def __repr__(self) -> str:
        return f"Kind({self.name!r})"


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def quoted(text: str, limit: int = 80) -> str:
    """A value for a message, shortened: it may be a 300-digit number."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "\u2026")


def finite(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{quoted(text)} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{quoted(text)} is not a finite number")
    return number


def positive(text: str) -> float:
    number = finite(text)
    if number <= 0:
        raise ValueError(f"{quoted(text)} must be greater than 0")
    return number


def between(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        number = finite(text)
        if not low <= number <= high:
            raise ValueError(f"{quoted(text)} is not from {low:g} to {high:g}")
        return number

    return parse


def ttl(text: str) -> float:
    """A TTL: finite, > 0, and no expire time past year 9999 (by this clock)."""
    seconds = positive(text)
    check_expire_time(seconds)
    return seconds


def whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"{text!r} is not from {low} to {high}")
        return number

    return parse


# As click's BOOL reads a flag's environment variable (case and spaces aside).
FLAG_WORDS = {
    **dict.fromkeys(("1", "true", "t", "yes", "y", "on"), True),
    **dict.fromkeys(("0", "false", "f", "no", "n", "off"), False),
}


def flag(text: str) -> bool:
    try:
        return FLAG_WORDS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"{text!r} is not a flag value (1, true, yes; 0, false, no)") from None


def file(must_exist: bool) -> Callable[[str], str]:
    """A path to a file to read: not a directory, readable if it exists."""

    def parse(text: str) -> str:
        try:
            is_dir = os.path.isdir(text)
            exists = os.path.exists(text)
        except ValueError:  # a NUL in the path
            raise ValueError(f"{text!r} is not a path") from None
        if not exists:
            if must_exist:
                raise ValueError(f"file {text!r} does not exist")
            return text
        if is_dir:
            raise ValueError(f"file {text!r} is a directory")
        if not os.access(text, os.R_OK):
            raise ValueError(f"file {text!r} is not readable")
        return text

    return parse


def choice(*choices: str, any_case: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        for option in choices:
            if text == option or (any_case and text.upper() == option.upper()):
                return option
        raise ValueError(f"{text!r} is not one of {', '.join(map(repr, choices))}")

    return parse


def sentinel(text: str) -> tuple[str, int]:
    """HOST[:PORT] or [IPv6]:PORT; the port defaults to 26379."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, str(DEFAULT_SENTINEL_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """HOST:PORT, separated by commas or spaces (a variable holds them all)."""
    parts = text.replace(",", " ").split()
    return tuple(sentinel(part) for part in parts)


def ipv4_if_dotted(text: str) -> str:
    """A host written as four numbers must be an IPv4 address (999.1.1.1 is
    refused here, not after a DNS lookup that may be slow or unreachable)."""
    parts = text.split(".")
    dotted = len(parts) == 4 and all(part.isdigit() for part in parts)
    # as ipaddress.IPv4Address: each part 0-255, no leading zero
    if dotted and not all(int(part) <= 255 and str(int(part)) == part for part in parts):
        raise ValueError(f"{text!r}: not an IP address")
    return text


DEFAULT_SENTINEL_PORT = 26379
TEXT = Kind("text", str)
NUMBER = Kind("number", finite)
POSITIVE = Kind("positive number", positive)
TTL = Kind("ttl", ttl)
# A lease shorter than 0.2 s would be mostly its 50 ms safety margin (docs/ha.rst).
LEASE = Kind("lease", between(0.2, 3600))
IDLE_TIMEOUT = Kind("idle timeout", between(0.1, 2_592_000))  # up to 30 days
PORT = Kind("port", whole(1, 65535))
LISTEN_PORT = Kind("port or 0", whole(0, 65535))
BATCH = Kind("batch size", whole(1, 100_000))
ROWS = Kind("rows", whole(1, 10_000))
FLAG = Kind("flag", flag)
FILE = Kind("file", file(must_exist=False))
EXISTING_FILE = Kind("existing file", file(must_exist=True))
SENTINELS = Kind("sentinels", sentinels)
HOST = Kind("host", ipv4_if_dotted)
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LEVEL = Kind("level", choice(*LEVELS, any_case=True), choices=LEVELS, any_case=True)
LOG_FORMATS = ("human", "json")
LOG_FORMAT = Kind("log format", choice(*LOG_FORMATS), choices=LOG_FORMATS)


# Options and arguments -------------------------------------------------------------------


class Param:
    """An option (`flags`) or, without flags, a positional argument.
    `locates`: it says where Redis is (for the hint given when nothing did);
    `many`: repeatable, each value a part; `required`: an argument must be given."""

    __slots__ = (
        "default",
        "env",
        "flags",
        "help",
        "kind",
        "locates",
        "many",
        "metavar",
        "name",
        "required",
        "secret",
    )

    def __init__(
        self,
        name: str,
        kind: Kind = TEXT,
        *flags: str,
        default: Any = None,
        env: str | None = None,
        help: str = "",
        metavar: str | None = None,
        locates: bool = False,
        many: bool = False,
        required: bool = True,
        secret: bool = False,
    ) -> None:
        self.name = name
        self.kind = kind
        self.flags = flags
        self.default = default
        self.env = env
        self.help = help
        self.metavar = metavar
        self.locates = locates
        self.many = many
        self.required = required
        self.secret = secret  # kept out of repr(): a URL may hold a password

    @property
    def is_flag(self) -> bool:
        return self.kind is FLAG and bool(self.flags)

    def __repr__(self) -> str:
        return f"Param({self.name!r})"


GLOBAL = (
    Param("loglevel", LEVEL, "--loglevel", default="INFO", env="KAMIKAZE_LOGLEVEL"),
    Param(
        "log_format",
        LOG_FORMAT,
        "--log-format",
        default="human",
        env="KAMIKAZE_LOG_FORMAT",
        help="json: one JSON object per line (time, level, logger, message), for log shippers.",
    ),
)

# Every command takes these; they are the fields of kamikaze.settings.Settings.
CONNECTION = (
    Param(
        "redis_url",
        TEXT,
        "--redis-url",
        env="KAMIKAZE_REDIS_URL",
        metavar="URL",
        locates=True,
        secret=True,
        help="redis://, rediss:// or unix:// URL; wins over host and port.",
    ),
    Param(
        "redis_host",
        TEXT,
        "--redis-host",
        default="localhost",
        env="KAMIKAZE_REDIS_HOST",
        metavar="HOST",
        locates=True,
        help="The Redis server's host name or address.",
    ),
    Param(
        "redis_port",
        PORT,
        "--redis-port",
        default=6379,
        env="KAMIKAZE_REDIS_PORT",
        metavar="PORT",
        locates=True,
        help="The Redis server's port.",
    ),
    Param(
        "key",
        TEXT,
        "--key",
        default="kamikaze",
        env="KAMIKAZE_KEY",
        metavar="NAME",
        help="Sorted set and channel name.",
    ),
    Param(
        "embedded",
        FLAG,
        "--embedded",
        default=False,
        env="KAMIKAZE_EMBEDDED",
        locates=True,
        help="Use the embedded server (needs the 'embedded' extra).",
    ),
    Param(
        "embedded_runtime_dir",
        TEXT,
        "--embedded-runtime-dir",
        env="KAMIKAZE_EMBEDDED_RUNTIME_DIR",
        metavar="DIR",
        help="Where the embedded server's socket lives "
        "[default: $XDG_RUNTIME_DIR/kamikaze, else ~/.cache/kamikaze/run].",
    ),
    Param(
        "embedded_data_dir",
        TEXT,
        "--embedded-data-dir",
        env="KAMIKAZE_EMBEDDED_DATA_DIR",
        metavar="DIR",
        help="Where the embedded server keeps its append-only file "
        "[default: $XDG_DATA_HOME/kamikaze, else ~/.local/share/kamikaze].",
    ),
    Param(
        "embedded_idle_timeout",
        IDLE_TIMEOUT,
        "--embedded-idle-timeout",
        default=300.0,
        env="KAMIKAZE_EMBEDDED_IDLE_TIMEOUT",
        metavar="SECONDS",
        help="How long an embedded server that a command started runs on once nothing "
        "uses it (a service, watch or web never lets it stop) [default: 300].",
    ),
    Param(
        "password_file",
        FILE,
        "--redis-password-file",
        env="KAMIKAZE_REDIS_PASSWORD_FILE",
        metavar="PATH",
        help="Read the password from the first line of PATH (keeps it out of argv).",
    ),
    Param(
        "tls_ca_file",
        EXISTING_FILE,
        "--tls-ca-file",
        env="KAMIKAZE_TLS_CA_FILE",
        metavar="PATH",
        help="CA certificates to verify the server with (turns TLS on).",
    ),
    Param(
        "tls_cert_file",
        EXISTING_FILE,
        "--tls-cert-file",
        env="KAMIKAZE_TLS_CERT_FILE",
        metavar="PATH",
        help="Client certificate, for servers that demand one (turns TLS on).",
    ),
    Param(
        "tls_key_file",
        EXISTING_FILE,
        "--tls-key-file",
        env="KAMIKAZE_TLS_KEY_FILE",
        metavar="PATH",
        help="The client certificate's private key.",
    ),
    Param(
        "sentinels",
        SENTINELS,
        "--sentinel",
        default=(),
        env="KAMIKAZE_SENTINELS",
        metavar="HOST:PORT",
        locates=True,
        many=True,
        help="A Sentinel to ask for the master (repeatable; env: comma-separated).",
    ),
    Param(
        "sentinel_master",
        TEXT,
        "--sentinel-master",
        env="KAMIKAZE_SENTINEL_MASTER",
        metavar="NAME",
        help="The master's name in Sentinel.",
    ),
    Param(
        "cluster",
        FLAG,
        "--cluster",
        default=False,
        env="KAMIKAZE_CLUSTER",
        locates=True,
        help="The Redis URL, or host and port, is a seed node of a Redis Cluster.",
    ),
)


class Command:
    """A command's own arguments and options (the connection options aside)."""

    __slots__ = ("arguments", "name", "options")

    def __init__(self, name: str, arguments: tuple[Param, ...], options: tuple[Param, ...]):
        self.name = name
        self.arguments = arguments
        self.options = options


PAYLOAD = Param("payload", TEXT)
COMMANDS = {
    command.name: command
    for command in (
        Command(
            "push",
            # Optional only for `push -`: the usage line shows them as required.
            (PAYLOAD, Param("ttl", TTL, required=False), Param("priority", NUMBER, required=False)),
            (
                Param(
                    "batch_size",
                    BATCH,
                    "--batch-size",
                    default=500,
                    help="With PAYLOAD '-': packages per atomic call.",
                ),
            ),
        ),
        Command("remove", (PAYLOAD,), ()),
        Command(
            "list",
            (),
            (
                Param("as_json", FLAG, "--json", default=False, help="One JSON array, top first."),
                Param(
                    "raw",
                    FLAG,
                    "--raw",
                    default=False,
                    help="Every member of the sorted set and its score as Redis holds them "
                    "(score, tab, member), expired and unparseable ones included.",
                ),
            ),
        ),
        Command(
            "clear",
            (),
            (
                Param(
                    "yes",
                    FLAG,
                    "--yes",
                    default=False,
                    help="Do not ask: clear at once (needed in scripts).",
                ),
            ),
        ),
        Command(
            "service",
            (),  # CONSUMER_PATH and its ARGs: see kamikaze.cli.service
            (
                Param(
                    "sweep_interval",
                    POSITIVE,
                    "--sweep-interval",
                    default=10.0,
                    env="KAMIKAZE_SWEEP_INTERVAL",
                    metavar="SECONDS",
                    help="How often expired packages anywhere in the queue are deleted.",
                ),
                Param(
                    "consumer_function_kwargs",
                    TEXT,  # decoded by kamikaze.consumer.decode_kwargs
                    "--consumer-function-kwargs",
                    metavar="JSON",
                    help="A JSON object of keyword arguments for the consumer.",
                ),
                Param(
                    "metrics_port",
                    LISTEN_PORT,
                    "--metrics-port",
                    env="KAMIKAZE_METRICS_PORT",
                    metavar="PORT",
                    help="Serve Prometheus metrics at /metrics and health at /health on PORT "
                    "(needs the 'metrics' extra).",
                ),
                Param(
                    "exclusive",
                    FLAG,
                    "--exclusive",
                    default=False,
                    env="KAMIKAZE_EXCLUSIVE",
                    help="Of all exclusive services on the queue, only the one that holds "
                    "the lease calls its consumer; the others stand by (docs: high availability).",
                ),
                Param(
                    "lease",
                    LEASE,
                    "--lease",
                    default=0.8,
                    env="KAMIKAZE_LEASE",
                    metavar="SECONDS",
                    help="With --exclusive: the lease's length, 0.2 to 3600 (about how long a "
                    "standby takes to take over from a service that died).",
                ),
                Param(
                    "metrics_host",
                    HOST,
                    "--metrics-host",
                    default="127.0.0.1",
                    env="KAMIKAZE_METRICS_HOST",
                    metavar="HOST",
                    help="The address the metrics endpoint listens on.",
                ),
            ),
        ),
        Command("watch", (), ()),
        Command(
            "web",
            (),
            (
                Param(
                    "host",
                    HOST,
                    "--host",
                    default="127.0.0.1",
                    env="KAMIKAZE_WEB_HOST",
                    metavar="HOST",
                    help="The address the page is served on.",
                ),
                Param(
                    "port",
                    LISTEN_PORT,
                    "--port",
                    default=8099,
                    env="KAMIKAZE_WEB_PORT",
                    metavar="PORT",
                    help="The port the page is served on; 0 picks a free one.",
                ),
                Param(
                    "rows",
                    ROWS,
                    "--rows",
                    default=200,
                    env="KAMIKAZE_WEB_ROWS",
                    metavar="N",
                    help="Packages shown, top first.",
                ),
                Param(
                    "allow_writes",
                    FLAG,
                    "--allow-writes",
                    default=False,
                    env="KAMIKAZE_WEB_ALLOW_WRITES",
                    help="A push form and remove buttons, for holders of the token.",
                ),
                Param(
                    "token_file",
                    FILE,
                    "--token-file",
                    env="KAMIKAZE_WEB_TOKEN_FILE",
                    metavar="PATH",
                    help="The token writes need: the file's first line (16 characters or more).",
                ),
            ),
        ),
        Command("version", (), ()),
    )
}


# Reading them ----------------------------------------------------------------------------


class UnknownOption(ValueError):
    """An argument that looks like an option and is not one the command has."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class MissingValue(ValueError):
    """An option given last, without the value it takes."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def split_arguments(
    args: list[str], takes_value: Callable[[str], bool | None]
) -> tuple[list[str], list[str], bool]:
    """The options (each with the value it takes) and the values of a
    command line whose values may start with '-' (push, remove): such an
    argument is a value only if it is a number or follows '--'; otherwise it
    must be an option. `takes_value(name)`: whether option `name` takes a
    value, None if the command has no such option. Returns (options, values,
    whether the first value was a bare '-' typed before any '--')."""
    options: list[str] = []
    values: list[str] = []
    dash_first = False
    rest: Iterator[str] = iter(args)
    for arg in rest:
        if arg == "--":
            values.extend(rest)
            break
        name = arg.split("=", 1)[0]
        wanted = takes_value(name) if arg.startswith("-") else None
        if wanted is not None:
            options.append(arg)
            if wanted and "=" not in arg:
                value = next(rest, None)
                if value is None:
                    raise MissingValue(name)
                options.append(value)
        elif arg.startswith("-") and arg != "-" and not is_number(arg):
            raise UnknownOption(name)
        else:
            dash_first = dash_first or (arg == "-" and not values)
            values.append(arg)
    return options, values, dash_first


def environment_value(param: Param, environ: Mapping[str, str]) -> Any:
    """The value of `param` in its environment variable, parsed by its kind;
    None when it is unset or empty (as click, an empty variable is none)."""
    if param.env is None:
        return None
    text = environ.get(param.env)
    if not text:
        return None
    return param.kind.parse(text)


def defaults(params: tuple[Param, ...]) -> dict[str, Any]:
    return {param.name: param.default for param in params}
