"""Where the embedded server lives: its runtime directory (the socket) and
its data directory, by the XDG Base Directory rules. Only `os`: the one-shot
commands find the socket at every start without loading kamikaze.embedded."""

from __future__ import annotations

import errno
import os

SOCKET_NAME = "server.sock"
PRIVATE = 0o700


class EmbeddedError(RuntimeError):
    """The embedded server cannot be used (started on demand, it did not
    start; a directory is not private): the message, the one the commands
    print, says why and what to do."""


def _xdg(variable: str) -> str | None:
    """An XDG directory variable; a relative one is invalid and ignored, as the
    XDG Base Directory specification says."""
    value = os.environ.get(variable)
    return value if value and os.path.isabs(value) else None


def runtime_dir(given: str | None = None) -> str:
    """`given` (made absolute), else $XDG_RUNTIME_DIR/kamikaze, else
    ~/.cache/kamikaze/run."""
    if given:
        return os.path.abspath(given)
    runtime = _xdg("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "kamikaze")
    cache = _xdg("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "kamikaze", "run")


def data_dir(given: str | None = None) -> str:
    """`given` (made absolute), else $XDG_DATA_HOME/kamikaze, else ~/.local/share/kamikaze."""
    if given:
        return os.path.abspath(given)
    data = _xdg("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "kamikaze")


def socket_path(runtime: str) -> str:
    return os.path.join(runtime, SOCKET_NAME)


def check_private(path: str | os.PathLike[str]) -> None:
    """Refuse `path` if it exists and is a symbolic link or someone else's."""
    try:  # noqa: SIM105 - contextlib is one import more at every start
        check_ours(path, tighten=False)
    except FileNotFoundError:
        pass


def check_ours(path: str | os.PathLike[str], tighten: bool) -> None:
    """Checked and tightened through one descriptor, so that the path cannot
    be swapped for a symbolic link in between."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        if os.path.islink(path):  # ELOOP or ENOTDIR, depending on the system
            raise EmbeddedError(f"{path} is a symbolic link; refusing to use it") from None
        if exc.errno == errno.ENOTDIR:
            raise EmbeddedError(f"{path} is not a directory") from None
        raise EmbeddedError(f"cannot use {path}: {exc.strerror}") from None
    try:
        status = os.fstat(fd)
        if status.st_uid != os.getuid():
            raise EmbeddedError(f"{path} belongs to another user; refusing to use it")
        if tighten and status.st_mode & 0o777 != PRIVATE:
            os.fchmod(fd, PRIVATE)
    finally:
        os.close(fd)
