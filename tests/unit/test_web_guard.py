"""Who may write through `kamikaze web`, and which Host names it answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from kamikaze.web.guard import TokenError, host_refusal, read_token, write_refusal

TOKEN = "s3cret-token-0123456789"
HOST = "127.0.0.1:8099"


def post(**headers: str) -> object:
    return make_mocked_request("POST", "/api/push", headers={"Host": HOST, **headers})


def test_a_write_with_the_token_from_the_page_itself_goes_ahead() -> None:
    request = post(
        **{"X-Kamikaze-Token": TOKEN, "Origin": f"http://{HOST}", "Sec-Fetch-Site": "same-origin"}
    )
    assert write_refusal(request, TOKEN) is None  # type: ignore[arg-type]


def test_a_script_without_a_browser_may_write_with_the_token() -> None:
    assert write_refusal(post(**{"X-Kamikaze-Token": TOKEN}), TOKEN) is None  # type: ignore[arg-type]
    bearer = post(Authorization=f"Bearer {TOKEN}")
    assert write_refusal(bearer, TOKEN) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({}, "needs the token"),
        ({"X-Kamikaze-Token": "wrong-token-0123456789"}, "wrong token"),
        ({"Authorization": "Basic " + TOKEN}, "needs the token"),
        ({"Cookie": f"token={TOKEN}"}, "needs the token"),
    ],
    ids=["none", "wrong", "basic-auth", "cookie"],
)
def test_a_write_without_the_right_token_is_refused(headers: dict[str, str], says: str) -> None:
    refusal = write_refusal(post(**headers), TOKEN)  # type: ignore[arg-type]
    assert refusal is not None and says in refusal


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:9999"},  # same host, another port: another origin
        {"Origin": "null"},  # a sandboxed frame, a file:// page
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": f"http://{HOST}"},
    ],
    ids=["origin", "other-port", "null-origin", "cross-site", "same-site", "same-site-origin"],
)
def test_a_cross_origin_write_is_refused_even_with_the_token(headers: dict[str, str]) -> None:
    refusal = write_refusal(post(**{"X-Kamikaze-Token": TOKEN, **headers}), TOKEN)  # type: ignore[arg-type]
    assert refusal is not None and "cannot write" in refusal


@pytest.mark.parametrize(
    ("listening_on", "host", "refused"),
    [
        ("127.0.0.1", "127.0.0.1:8099", False),
        ("127.0.0.1", "localhost:8099", False),
        ("127.0.0.1", "[::1]:8099", False),
        ("::1", "[::1]:8099", False),
        ("localhost", "localhost", False),
        ("127.0.0.1", "evil.example:8099", True),
        ("127.0.0.1", "192.168.1.5:8099", True),
        ("::1", "rebound.example", True),
        ("0.0.0.0", "queue-box.example:8099", False),  # not loopback: any name of the machine
        ("192.0.2.7", "evil.example", False),
    ],
)
def test_on_loopback_only_loopback_host_names_are_answered(
    listening_on: str, host: str, refused: bool
) -> None:
    request = make_mocked_request("GET", "/", headers={"Host": host})
    refusal = host_refusal(request, listening_on)
    assert (refusal is not None) == refused, refusal


def test_the_token_is_the_first_line_of_its_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}  \nsecond line\n", encoding="utf-8")
    assert read_token(str(path)) == TOKEN


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "cannot read the token file"), ("", "shorter than 16"), ("short\n", "shorter than 16")],
    ids=["missing", "empty", "short"],
)
def test_an_unusable_token_file_is_named(tmp_path: Path, content: str | None, says: str) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(TokenError) as raised:
        read_token(str(path))
    assert says in str(raised.value) and str(path) in str(raised.value)
