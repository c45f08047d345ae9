"""kamikaze.urls splits a simple URL itself (urllib.parse costs a few ms at
every start of a one-shot command): its parts must be urlsplit's, for every
URL it takes."""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import example, given
from hypothesis import strategies as st

from kamikaze import urls

PIECES = st.sampled_from(
    ["redis", "REDIS", "rediss", "unix", "http", ":", "//", "/", "@", "h", "Host.Example", "u",
     "p", "6379", "0", "99999", "-", "1", "a:b", "", "x", "[", "]", "%40", "?db=1", "#f", " "]
)  # fmt: skip


def split_parts(parts: object) -> tuple[object, ...]:
    names = ("scheme", "netloc", "username", "password", "hostname", "path", "query")
    try:
        port: object = parts.port  # type: ignore[attr-defined]
    except ValueError:
        port = ValueError
    return (*(getattr(parts, name) for name in names), port)


@given(st.lists(PIECES, max_size=12).map("".join))
@example("redis://user:pw@host:6380/2")
@example("unix://:pw@/run/redis.sock")
@example("redis://h:1:2/0")
@example("redis:/h")
def test_a_simple_url_splits_as_urlsplit_splits_it(url: str) -> None:
    if not urls._is_simple(url):
        return  # urllib.parse splits it
    assert split_parts(urls.Parts(url)) == split_parts(urlsplit(url))
