"""Outage (kamikaze/signals.py): one line when Redis is lost, one when it is
back, under the logger of the process that follows the queue, and without
errno numbers."""

from __future__ import annotations

import errno
import logging

import pytest
from redis.exceptions import ConnectionError

from kamikaze.signals import Outage
from kamikaze.watch import SignalFeed
from kamikaze.web.feed import QueueFeed


def refused(path: str) -> ConnectionError:
    """What redis-py raises for a unix socket nobody listens on."""
    try:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")
    except OSError:
        try:
            raise ConnectionError(f"Error 2 connecting to {path}. No such file or directory.")
        except ConnectionError as exc:
            return exc


def test_the_lost_line_says_why_without_errno(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("/run/kamikaze/server.sock")
    with caplog.at_level(logging.INFO):
        assert outage.lost(refused("/run/kamikaze/server.sock"))
        outage.back()
    lost, back = (record.getMessage() for record in caplog.records)
    assert lost == (
        "lost Redis at /run/kamikaze/server.sock (No such file or directory); reconnecting"
    )
    assert back.startswith("reconnected to Redis at /run/kamikaze/server.sock after ")
    assert {record.name for record in caplog.records} == {"kamikaze.service"}


def test_the_web_process_and_watch_log_under_their_own_names(
    caplog: pytest.LogCaptureFixture,
) -> None:
    feeds = [QueueFeed(None, "k", "host:1", 10), SignalFeed(None, "k", "host:1")]
    with caplog.at_level(logging.INFO):
        for feed in feeds:
            feed.outage.lost(refused("x"))
    assert [record.name for record in caplog.records] == ["kamikaze.web", "kamikaze.watch"]
