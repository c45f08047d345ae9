"""The embedded server's directories and messages, without a server (issue 12.3,
docs/operations.rst: The embedded server; docs/security.rst). The end-to-end tests are in
tests/integration/test_embedded.py.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from kamikaze import embedded
from kamikaze.embedded import (
    EmbeddedError,
    EmbeddedServer,
    default_data_dir,
    default_runtime_dir,
    private_dir,
)

XDG = ("XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty home directory and no XDG variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for variable in XDG:
        monkeypatch.delenv(variable, raising=False)
    return home


@pytest.fixture(params=[0o000, 0o022, 0o277], ids=lambda m: f"umask {m:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_every_directory_created_is_private_whatever_the_umask(home: Path, umask: int) -> None:
    home_mode = mode(home)
    private_dir(default_runtime_dir())
    private_dir(default_data_dir())
    created = [
        home / ".cache",
        home / ".cache" / "kamikaze",
        home / ".cache" / "kamikaze" / "run",
        home / ".local",
        home / ".local" / "share",
        home / ".local" / "share" / "kamikaze",
    ]
    assert {str(path.relative_to(home)): oct(mode(path)) for path in created} == {
        str(path.relative_to(home)): "0o700" for path in created
    }
    assert mode(home) == home_mode  # not ours to change


def test_an_existing_parent_is_left_as_it_is(tmp_path: Path) -> None:
    parent = tmp_path / "shared"
    parent.mkdir(mode=0o755)
    parent.chmod(0o755)
    private_dir(parent / "run")
    assert mode(parent) == 0o755
    assert mode(parent / "run") == 0o700


def test_a_loose_directory_of_ours_is_tightened(tmp_path: Path) -> None:
    loose = tmp_path / "run"
    loose.mkdir()
    loose.chmod(0o755)
    private_dir(loose)
    assert mode(loose) == 0o700


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A directory someone would like us to use: world-readable, empty."""
    target = tmp_path / "target"
    target.mkdir()
    target.chmod(0o755)
    return target


def assert_untouched(target: Path) -> None:
    assert mode(target) == 0o755
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("which", ["runtime", "data"])
def test_a_symlinked_directory_is_refused_and_left_untouched(
    tmp_path: Path, planted: Path, which: str
) -> None:
    link = tmp_path / "link"
    link.symlink_to(planted)
    other = tmp_path / "other"
    runtime, data = (link, other) if which == "runtime" else (other, link)
    server = EmbeddedServer.at(str(runtime), str(data))
    with pytest.raises(EmbeddedError) as info:
        server.prepare()
    assert str(info.value) == f"{link} is a symbolic link; refusing to use it"
    assert_untouched(planted)


def test_a_dangling_symlink_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(EmbeddedError, match="is a symbolic link"):
        private_dir(link)
    assert not (tmp_path / "missing").exists()


def test_a_symlinked_runtime_directory_is_refused_by_the_commands_too(
    tmp_path: Path, planted: Path
) -> None:
    link = tmp_path / "link"
    link.symlink_to(planted)
    with pytest.raises(EmbeddedError, match=f"^{link} is a symbolic link; refusing to use it$"):
        EmbeddedServer.at(str(link), str(tmp_path / "data")).require_running()
    assert_untouched(planted)


def test_a_directory_of_another_user_is_refused_and_left_untouched(
    planted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    someone_else = planted.stat().st_uid + 1
    if os.getuid() == 0:
        os.chown(planted, someone_else, -1)
    else:
        monkeypatch.setattr(os, "getuid", lambda: someone_else - 2)
    with pytest.raises(EmbeddedError, match=f"^{planted} belongs to another user; refusing"):
        private_dir(planted)
    assert_untouched(planted)


def test_a_file_where_a_directory_belongs_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "run"
    file.write_text("")
    with pytest.raises(EmbeddedError, match=f"^{file} is not a directory"):
        private_dir(file)


def test_relative_directories_are_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server = EmbeddedServer.at("./run2", "data2")
    assert server.runtime_dir == tmp_path / "run2"
    assert server.data_dir == tmp_path / "data2"
    assert server.url == f"unix://{tmp_path}/run2/server.sock"


@pytest.mark.parametrize("variable", XDG)
def test_a_relative_xdg_variable_is_ignored_as_the_spec_says(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "relative").mkdir()
    monkeypatch.setenv(variable, "relative")
    assert default_runtime_dir() == home / ".cache" / "kamikaze" / "run"
    assert default_data_dir() == home / ".local" / "share" / "kamikaze"


def test_a_server_that_exits_at_once_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAMIKAZE_EMBEDDED_SERVER", "/bin/false")
    server = EmbeddedServer.at(str(tmp_path / "run"), str(tmp_path / "data"))
    with pytest.raises(EmbeddedError) as info, server.joined():
        pass
    assert str(info.value) == (
        "the embedded server /bin/false did not start: it exited with status 1 "
        f"and wrote nothing to {tmp_path}/run/server.log"
    )


def test_no_server_and_no_service_starts_one_on_demand_or_says_why_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAMIKAZE_EMBEDDED_SERVER", str(tmp_path / "no-such-server"))
    server = EmbeddedServer.at(str(tmp_path / "run"), str(tmp_path / "data"))
    with pytest.raises(EmbeddedError, match=r"cannot run the embedded server .*no-such-server"):
        server.require_running()
    assert not server.socket.exists()


# What the commands say when the server does not answer (issue 13.2) ----------------------


@pytest.fixture
def down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EmbeddedServer:
    """A runtime directory as services leave it, and no server."""
    monkeypatch.setattr(embedded, "RESTART_WAIT", 0.2)
    server = EmbeddedServer.at(str(tmp_path / "run"), str(tmp_path / "data"))
    (tmp_path / "run" / "users").mkdir(parents=True, mode=0o700)
    (tmp_path / "run" / "lifecycle.lock").touch()
    return server


def locked(path: Path, operation: int = fcntl.LOCK_EX) -> IO[str]:
    """`path`, locked as another process would (flock locks are per open file)."""
    handle = open(path, "a")  # noqa: SIM115
    fcntl.flock(handle, operation | fcntl.LOCK_NB)
    return handle


def test_a_registered_service_means_the_server_is_being_started(down: EmbeddedServer) -> None:
    with (
        locked(down.runtime_dir / "users" / "4242.lock"),
        pytest.raises(EmbeddedError, match=r"is being started by a running service but did not"),
    ):
        down.require_running()


def test_a_held_lifecycle_lock_means_the_server_is_being_started(down: EmbeddedServer) -> None:
    with (
        locked(down.runtime_dir / "lifecycle.lock"),
        pytest.raises(EmbeddedError, match=r"is being started by a running service"),
    ):
        down.require_running()


def test_the_file_of_a_service_that_died_is_not_a_running_service(down: EmbeddedServer) -> None:
    (down.runtime_dir / "users" / "4242.lock").touch()  # nobody holds its lock
    os.environ["KAMIKAZE_EMBEDDED_SERVER"] = "/nonexistent/server"
    try:  # started on demand, not waited for: here, a binary that is not there
        with pytest.raises(EmbeddedError, match=r"cannot run the embedded server"):
            down.require_running()
    finally:
        del os.environ["KAMIKAZE_EMBEDDED_SERVER"]
    assert (down.runtime_dir / "users" / "4242.lock").exists()  # the commands only read
