"""`kamikaze web`'s options through click's CliRunner: bad input is exit 2
with one line naming the culprit, a taken port exit 1, before any Redis call."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kamikaze import __version__
from tests.unit.test_cli import invoke

TOKEN = "a-token-long-enough-0123"


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def no_redis_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def web(*args: str, env: dict[str, str] | None = None, port: int) -> tuple[int, str]:
    result = invoke(["web", "--redis-port", str(port), *args], env=env)
    return result.exit_code, result.output


def test_allow_writes_without_a_token_file_is_exit_2(no_redis_port: int) -> None:
    code, output = web("--allow-writes", port=no_redis_port)
    assert code == 2
    line = one_error_line(output)
    assert "'--token-file'" in line and "--allow-writes needs a token" in line


@pytest.mark.parametrize(
    ("content", "says"), [(None, "cannot read"), ("short\n", "shorter than 16")]
)
def test_an_unusable_token_file_is_exit_2_naming_it(
    tmp_path: Path, no_redis_port: int, content: str | None, says: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    code, output = web("--allow-writes", "--token-file", str(path), port=no_redis_port)
    assert code == 2
    line = one_error_line(output)
    assert says in line and str(path) in line


def test_the_token_file_from_the_environment_is_named_by_its_variable(
    tmp_path: Path, no_redis_port: int
) -> None:
    path = tmp_path / "token"
    path.write_text("short")
    env = {"KAMIKAZE_WEB_TOKEN_FILE": str(path), "KAMIKAZE_WEB_ALLOW_WRITES": "1"}
    code, output = web(env=env, port=no_redis_port)
    assert code == 2
    assert "KAMIKAZE_WEB_TOKEN_FILE" in one_error_line(output)


def test_a_taken_port_is_exit_1_naming_host_and_port(taken_port: int, no_redis_port: int) -> None:
    code, output = web("--port", str(taken_port), port=no_redis_port)
    assert code == 1
    assert one_error_line(output) == (
        f"Error: cannot serve the web page on 127.0.0.1:{taken_port}: the port is in use"
    )


@pytest.mark.parametrize(
    ("host", "says"),
    [("999.1.1.1", "not an IP address"), ("192.0.2.1", "not an address of this machine")],
)
def test_a_host_that_cannot_be_listened_on_is_exit_2(
    host: str, says: str, no_redis_port: int
) -> None:
    code, output = web("--host", host, "--port", "0", port=no_redis_port)
    assert code == 2
    line = one_error_line(output)
    assert "'--host'" in line and says in line


@pytest.mark.parametrize("rows", ["0", "x", "10001"])
def test_rows_out_of_range_is_exit_2(rows: str, no_redis_port: int) -> None:
    code, output = web("--rows", rows, port=no_redis_port)
    assert code == 2
    assert "'--rows'" in one_error_line(output)


def test_without_aiohttp_it_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, no_redis_port: int
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "aiohttp" else real(name, *a)
    )
    code, output = web(port=no_redis_port)
    assert code == 2
    assert f"pip install 'kamikaze[web]>={__version__}'" in one_error_line(output)


def test_an_embedded_server_that_cannot_start_is_exit_1(
    tmp_path: Path, no_redis_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started on demand (issue 25.1); a binary that cannot run is one line."""
    monkeypatch.setenv("KAMIKAZE_EMBEDDED_SERVER", str(tmp_path / "no-such-server"))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    data = tmp_path / "data"  # not the user's own (the lifecycle lock makes both)
    code, output = web(
        "--embedded", "--embedded-runtime-dir", str(runtime), "--embedded-data-dir", str(data),
        "--port", "0", port=no_redis_port,
    )  # fmt: skip
    assert code == 1
    assert "cannot run the embedded server" in one_error_line(output)
