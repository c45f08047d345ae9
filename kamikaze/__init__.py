"""Kamikaze: prioritised packages with expiry times on a Redis queue, and a
service that calls a consumer whenever the package at the top changes.

The Python API: `Queue` (async; `Queue.connect(url, key)`), `SyncQueue`
(blocking, for scripts), `Package` (what consumers receive), `Settings`, and
`OutcomeUnknown` (a write whose reply was lost).
They are imported on first use, so that the CLI starts fast.
"""

from __future__ import annotations

import sys


def _forget_the_working_directory() -> None:
    """`python -m kamikaze` puts the working directory first on sys.path, so a
    typing.py or uvloop.py lying there would be imported instead of the real
    module. Drop it before anything else is imported: the consumer's own module
    is imported from there explicitly (kamikaze.consumer, docs/security.rst).

    While `-m` locates this package, sys.argv[0] is "-m" and sys.orig_argv ends
    with the module's name and its arguments: `python -m otherpkg` that imports
    kamikaze keeps its sys.path."""
    locating = sys.argv[:1] == ["-m"] and not sys.flags.safe_path
    if locating and sys.orig_argv[-len(sys.argv)].removeprefix("-m") == "kamikaze":
        del sys.path[0]


_forget_the_working_directory()

TYPE_CHECKING = False  # not typing's: the one-shot commands start without it
if TYPE_CHECKING:
    from typing import Any

    from kamikaze.consumer import term
    from kamikaze.errors import OutcomeUnknown
    from kamikaze.package import Package
    from kamikaze.places import EmbeddedError
    from kamikaze.queue import Queue, TopReading
    from kamikaze.settings import Settings
    from kamikaze.sync import SyncQueue

__version__ = "1.0.0.dev0"


def install_command(extra: str) -> str:
    """The pip command that adds `extra` to this installation. The version
    floor keeps pip from taking the package index's kamikaze 0.1.1 (2014),
    whose name this project shares: without this version installed, it fails
    (docs/install.rst)."""
    return f"pip install 'kamikaze[{extra}]>={__version__}'"


__all__ = [
    "EmbeddedError",
    "OutcomeUnknown",
    "Package",
    "Queue",
    "Settings",
    "SyncQueue",
    "TopReading",
    "__version__",
    "term",
]

_HOMES = {
    "Package": "kamikaze.package",
    "Queue": "kamikaze.queue",
    "TopReading": "kamikaze.queue",
    "Settings": "kamikaze.settings",
    "SyncQueue": "kamikaze.sync",
    "OutcomeUnknown": "kamikaze.errors",
    "EmbeddedError": "kamikaze.places",
    "term": "kamikaze.consumer",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'kamikaze' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)
