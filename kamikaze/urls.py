"""Redis URLs: only a URL that names one server unambiguously is used, and no
message ever quotes one, since it may hold a password (docs/security.rst).

redis-py's parse_url does the parsing; what it lets through silently (no host,
so localhost or --redis-host; a path that is not a database, so db 0) is
refused here first.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # not typing's: the one-shot commands start without it
if TYPE_CHECKING:
    from typing import Any
    from urllib.parse import SplitResult

DEFAULT_PORT = 6379
FORMS = {
    "redis": "redis://HOST[:PORT][/DB]",
    "rediss": "rediss://HOST[:PORT][/DB]",
    "unix": "unix:///PATH/TO/SOCKET",
}
# Query arguments redis-py passes on as strings (the others it converts itself).
STRING_QUERY_ARGUMENTS = frozenset(
    {
        "username",
        "password",
        "client_name",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_ciphers",
        "ssl_password",
    }
)


class BadURL(ValueError):
    """Why a Redis URL cannot be used; the message never quotes the URL."""


def url_kwargs(url: str, needs_host: bool = True) -> dict[str, Any]:
    """redis-py's connection arguments for `url`: host and port (6379 if the
    URL has none) or socket path, database, credentials, TLS. BadURL unless
    the URL names one server unambiguously; with `needs_host` False (Sentinel
    names the server) it may name no host."""
    parts = _split(url)
    if parts.scheme == "unix":
        _check_socket(parts)
    else:
        _check_host(parts, needs_host)
    if not parts.query:
        # What redis-py's parse_url makes of a URL without a query (the test
        # holds the two together), without importing redis-py: the one-shot
        # commands start fast (kamikaze.quick).
        return _plain_kwargs(parts)
    from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

    _check_query(parts.query)
    try:
        kwargs: dict[str, Any] = dict(parse_url(url))
    except ValueError as exc:  # a query value; redis-py's message names only the argument
        raise BadURL(f"the URL's query is invalid: {exc}") from None
    _check_verification(kwargs)
    connection_class = kwargs.pop("connection_class", None)
    if connection_class is UnixDomainSocketConnection:
        kwargs["unix_socket_path"] = kwargs.pop("path")
        return kwargs
    if connection_class is SSLConnection:
        kwargs["ssl"] = True
    kwargs.setdefault("port", DEFAULT_PORT)
    return kwargs


def _plain_kwargs(parts: Parts | SplitResult) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    if parts.scheme == "unix":
        kwargs["unix_socket_path"] = unquote(parts.path)
        return kwargs
    if parts.hostname:
        kwargs["host"] = unquote(parts.hostname)
    kwargs["port"] = parts.port or DEFAULT_PORT
    if parts.path and parts.path != "/":
        kwargs["db"] = int(unquote(parts.path).replace("/", ""))
    if parts.scheme == "rediss":
        kwargs["ssl"] = True
    return kwargs


def address(kwargs: dict[str, Any]) -> str:
    """Where url_kwargs() points, for messages: no credentials."""
    if "unix_socket_path" in kwargs:
        return str(kwargs["unix_socket_path"])
    host = str(kwargs["host"])
    if ":" in host:
        host = f"[{host}]"
    scheme = "rediss" if kwargs.get("ssl") else "redis"
    return f"{scheme}://{host}:{kwargs['port']}"


# What a URL may hold to be split here rather than by urllib.parse (a few ms
# to import at every start): no query, fragment, percent-escape, IPv6
# brackets, spaces or other characters urlsplit treats specially.
_SIMPLE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,=:@/"
)


class Parts:
    """The parts of a simple URL, as urllib.parse.urlsplit gives them
    (tests/unit/test_urls.py holds the two together)."""

    __slots__ = (
        *("hostname", "netloc", "password", "path"),
        *("port_text", "query", "scheme", "username"),
    )

    def __init__(self, url: str) -> None:
        scheme, _, rest = url.partition(":")
        self.scheme = scheme.lower()
        self.query = ""
        self.netloc, self.path = "", rest
        if rest.startswith("//"):
            self.netloc, slash, path = rest[2:].partition("/")
            self.path = slash + path
        userinfo, at, hostinfo = self.netloc.rpartition("@")
        self.username: str | None = None
        self.password: str | None = None
        if at:
            self.username, colon, password = userinfo.partition(":")
            self.password = password if colon else None
        host, _, self.port_text = hostinfo.partition(":")
        self.hostname = host.lower() or None

    @property
    def port(self) -> int | None:
        if not self.port_text:
            return None
        if not self.port_text.isdigit():
            raise ValueError("Port could not be cast to integer value")
        number = int(self.port_text)
        if number > 65535:
            raise ValueError("Port out of range 0-65535")
        return number


def _is_simple(url: str) -> bool:
    scheme, colon, _ = url.partition(":")
    return bool(colon) and scheme.isalpha() and _SIMPLE.issuperset(url)


def unquote(text: str) -> str:
    if "%" not in text:
        return text
    from urllib.parse import unquote as percent_decoded

    return percent_decoded(text)


def _split(url: str) -> Parts | SplitResult:
    if _is_simple(url):
        parts: Parts | SplitResult = Parts(url)
    else:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
        except ValueError:  # its message may quote the network location
            raise BadURL("the URL is not a valid URL") from None
    if parts.scheme not in FORMS:
        # Only a scheme followed by // is shown: before a colon may be a user name or password.
        if re.match(r"\s*[A-Za-z][A-Za-z0-9+.-]*://", url):
            raise BadURL(f"unknown scheme {parts.scheme!r}: use redis://, rediss:// or unix://")
        raise BadURL("the URL is not a redis://, rediss:// or unix:// URL")
    if not re.match(rf"\s*{parts.scheme}://", url, re.IGNORECASE):
        raise BadURL(f"write {parts.scheme}:// (two slashes), as in {FORMS[parts.scheme]}")
    return parts


def _check_host(parts: Parts | SplitResult, needs_host: bool) -> None:
    if needs_host and not parts.hostname:
        raise BadURL(f"the URL names no host, as in {FORMS[parts.scheme]}")
    try:
        port = parts.port
    except ValueError:  # its message quotes the port, which may be part of a password
        port = 0
    if port == 0:
        raise BadURL("the URL's port is not a number from 1 to 65535")
    if parts.path not in ("", "/") and not re.fullmatch(r"/\d+", parts.path):
        raise BadURL("the URL's path is not a database number, as in /0")


def _check_socket(parts: Parts | SplitResult) -> None:
    if parts.netloc.rpartition("@")[2]:
        raise BadURL(f"a unix:// URL takes an absolute path, as in {FORMS['unix']}")
    if not parts.path:
        raise BadURL(f"the URL names no socket path, as in {FORMS['unix']}")


def _check_verification(kwargs: dict[str, Any]) -> None:
    """TLS always verifies the server's certificate and name (docs/security.rst):
    a query that would turn either off is refused, on every path."""
    import ssl

    reqs = kwargs.get("ssl_cert_reqs")
    if reqs is not None and reqs not in ("required", ssl.CERT_REQUIRED):
        raise BadURL(
            "the URL's ssl_cert_reqs would weaken or turn off TLS verification; it is always on"
        )
    if kwargs.get("ssl_check_hostname") is False:
        raise BadURL(
            "the URL's ssl_check_hostname would stop TLS checking the server's name; "
            "it is always on"
        )
    if kwargs.get("ssl_exclude_verify_flags"):
        raise BadURL("the URL's ssl_exclude_verify_flags would weaken TLS verification")


def _check_query(query: str) -> None:
    import inspect

    from redis.asyncio import Redis
    from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS

    known = (URL_QUERY_ARGUMENT_PARSERS.keys() | STRING_QUERY_ARGUMENTS) & set(
        inspect.signature(Redis.__init__).parameters
    )
    from urllib.parse import parse_qs

    for name in parse_qs(query):
        if name not in known:
            raise BadURL(f"the URL has an unknown query argument {name!r}")
