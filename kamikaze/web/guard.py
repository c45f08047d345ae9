"""Who may write, and which requests the page answers at all.

A write needs the token, sent by the page's script in a header (never a
cookie: a browser adds cookies to cross-site requests by itself, but not
headers), and must come from the page's own origin: Sec-Fetch-Site and
Origin, when the browser sends them, must say so. A cross-site script cannot
set the header without a CORS preflight, which this server never grants.

When the server listens on a loopback address, the Host header must name a
loopback host too, so that a site whose name was rebound to 127.0.0.1 (DNS
rebinding) cannot read the page either.
"""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web

TOKEN_HEADER = "X-Kamikaze-Token"
MIN_TOKEN_LENGTH = 16
SAME_ORIGIN = ("same-origin", "none")  # Sec-Fetch-Site: "none" is the user typing a URL


class TokenError(ValueError):
    """A token file that cannot be used: the message names the file."""


def read_token(path: str) -> str:
    """The token: the first line of the file at `path`, without surrounding blanks."""
    try:
        with open(path, encoding="utf-8") as file:
            token = file.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise TokenError(f"cannot read the token file {path!r}: {reason}") from None
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(
            f"the token in {path!r} is shorter than {MIN_TOKEN_LENGTH} characters "
            "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    return token


def write_refusal(request: web.BaseRequest, token: str) -> str | None:
    """Why a write request is refused (403), or None when it may go ahead."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in SAME_ORIGIN:
        return f"a {shorten(site)} request cannot write: use the page itself"
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return f"a request from {shorten(origin)} cannot write: use the page itself"
    given = request.headers.get(TOKEN_HEADER) or bearer(request.headers.get("Authorization"))
    if not given:
        return f"writing needs the token (the page's Token field, or the {TOKEN_HEADER} header)"
    if not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8")):
        return "wrong token"
    return None


def bearer(authorization: str | None) -> str | None:
    scheme, _, credentials = (authorization or "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def is_loopback(host: str) -> bool:
    """Whether `host` (a name, or an address: IPv6 with or without brackets) is loopback."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_refusal(request: web.BaseRequest, listening_on: str) -> str | None:
    """Why a request is refused (403) for its Host header, or None."""
    if not is_loopback(listening_on):
        return None
    host = host_name(request.host)
    if is_loopback(host):
        return None
    return f"this server answers to loopback names only, not {shorten(host)!r}"


def host_name(host: str) -> str:
    """The name in a Host header, without the port."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
