"""Consumers: argument decoding, resolving a dotted path, and the Runner."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kamikaze.consumer
from example_consumer import consumer as example
from kamikaze.consumer import ConsumerError, Runner, decode_arg, decode_kwargs, resolve
from kamikaze.package import Package

PACKAGE = Package.create("job", 1, None)
OTHER = Package.create("other", 2, None)


# decode_arg / decode_kwargs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("2.5", 2.5),
        ("true", True),
        ("null", None),
        ('"3"', "3"),
        ("abc", "abc"),
        ("[1,2]", [1, 2]),
        ('{"a": 1}', {"a": 1}),
        ("", ""),
        ("a b", "a b"),
    ],
)
def test_decode_arg(text: str, expected: Any) -> None:
    result = decode_arg(text)
    assert result == expected
    assert type(result) is type(expected)


def test_decode_kwargs_valid_object() -> None:
    assert decode_kwargs('{"sleep_time": 2, "name": "x"}') == {"sleep_time": 2, "name": "x"}


@pytest.mark.parametrize("text", [None, ""])
def test_decode_kwargs_absent_is_empty(text: str | None) -> None:
    assert decode_kwargs(text) == {}


def test_decode_kwargs_bad_json_names_the_text() -> None:
    with pytest.raises(ConsumerError, match=r"\{bad json"):
        decode_kwargs("{bad json")


@pytest.mark.parametrize("text", ["[1, 2]", "3", '"x"', "null"])
def test_decode_kwargs_not_an_object(text: str) -> None:
    with pytest.raises(ConsumerError, match="not a JSON object"):
        decode_kwargs(text)


def test_consumer_error_is_a_value_error() -> None:
    assert issubclass(ConsumerError, ValueError)


# resolve ------------------------------------------------------------------------------------


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty current directory that is not yet on sys.path; cleans up what it imported."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write_module(directory: Path, source: str) -> str:
    name = f"kamikaze_test_mod_{uuid.uuid4().hex}"
    (directory / f"{name}.py").write_text(source)
    importlib.invalidate_caches()
    return name


def test_resolve_real_module_path() -> None:
    assert resolve("example_consumer.consumer.blocking_consumer_func") is (
        example.blocking_consumer_func
    )


def test_resolve_imports_from_the_current_directory(project_dir: Path) -> None:
    name = write_module(project_dir, "def consume(package):\n    return ('got', package)\n")
    consumer = resolve(f"{name}.consume")
    assert consumer(PACKAGE) == ("got", PACKAGE)


def test_resolve_package_in_the_current_directory(project_dir: Path) -> None:
    name = f"kamikaze_test_pkg_{uuid.uuid4().hex}"
    (project_dir / name).mkdir()
    (project_dir / name / "__init__.py").write_text("")
    (project_dir / name / "consumers.py").write_text("def f(package):\n    return 42\n")
    importlib.invalidate_caches()
    assert resolve(f"{name}.consumers.f")(None) == 42


def test_resolve_namespace_package_in_the_current_directory(project_dir: Path) -> None:
    name = f"kamikaze_test_ns_{uuid.uuid4().hex}"
    (project_dir / name).mkdir()  # no __init__.py
    (project_dir / name / "consumers.py").write_text("def f(package):\n    return 7\n")
    importlib.invalidate_caches()
    assert resolve(f"{name}.consumers.f")(None) == 7


def test_a_bare_directory_does_not_hide_an_installed_package(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("example_consumer", "example_consumer.consumer"):
        monkeypatch.delitem(sys.modules, name)  # imported afresh, and put back afterwards
    (project_dir / "example_consumer").mkdir()  # no __init__.py: a namespace portion
    consumer = resolve("example_consumer.consumer.blocking_consumer_func")
    assert consumer.__code__.co_filename == example.blocking_consumer_func.__code__.co_filename
    package = sys.modules["example_consumer"]
    assert package.__file__ is not None  # the installed package, not the bare directory
    assert not package.__file__.startswith(str(project_dir))


def test_resolve_missing_module() -> None:
    with pytest.raises(ConsumerError, match=re.escape("no_such_module_xyz.func")):
        resolve("no_such_module_xyz.func")


def test_resolve_missing_attribute() -> None:
    with pytest.raises(ConsumerError, match=re.escape("example_consumer.consumer.nope")):
        resolve("example_consumer.consumer.nope")


def test_resolve_not_callable() -> None:
    with pytest.raises(ConsumerError, match=r"'kamikaze.__version__' is not callable"):
        resolve("kamikaze.__version__")


def test_resolve_module_that_raises_at_import(project_dir: Path) -> None:
    name = write_module(project_dir, "raise RuntimeError('boom at import')\n")
    with pytest.raises(ConsumerError, match=re.escape(f"{name}.f")) as info:
        resolve(f"{name}.f")
    assert "boom at import" in str(info.value)


def test_resolve_module_with_syntax_error(project_dir: Path) -> None:
    name = write_module(project_dir, "def f(:\n")
    with pytest.raises(ConsumerError, match=re.escape(f"{name}.f")):
        resolve(f"{name}.f")


def test_resolve_leaves_sys_path_alone(project_dir: Path) -> None:
    before = list(sys.path)
    name = write_module(project_dir, "def f(package):\n    return 1\n")
    assert resolve(f"{name}.f")(None) == 1
    assert sys.path == before


def test_only_the_consumer_module_comes_from_the_working_directory(project_dir: Path) -> None:
    other = write_module(project_dir, "")
    name = write_module(project_dir, "def f(package):\n    return 1\n")
    resolve(f"{name}.f")
    assert importlib.util.find_spec(other) is None


def test_a_sibling_import_says_why_it_failed(project_dir: Path) -> None:
    helper = write_module(project_dir, "")
    name = write_module(project_dir, f"import {helper}\ndef f(package):\n    return 1\n")
    with pytest.raises(ConsumerError) as info:
        resolve(f"{name}.f")
    message = str(info.value)
    assert f"No module named '{helper}'" in message
    assert f"{helper}.py is in the working directory" in message
    assert "only the consumer's own module is imported from there" in message


def test_a_standard_module_is_never_taken_from_the_working_directory(project_dir: Path) -> None:
    assert "tabnanny" not in sys.modules
    (project_dir / "tabnanny.py").write_text("def f(package):\n    return 'planted'\n")
    importlib.invalidate_caches()
    with pytest.raises(ConsumerError, match=r"tabnanny.py in the working directory .* rename"):
        resolve("tabnanny.f")
    assert "tabnanny" not in sys.modules


@pytest.mark.parametrize("path", ["justaname", ".", "name.", ".name", ""])
def test_resolve_path_without_a_dot(path: str) -> None:
    with pytest.raises(ConsumerError, match=re.escape(f"'{path}'")):
        resolve(path)


# Runner ---------------------------------------------------------------------------------


async def test_plain_function_called_inline_with_args_and_kwargs() -> None:
    calls: list[tuple[Any, ...]] = []

    def consumer(package: Package | None, *args: Any, **kwargs: Any) -> None:
        calls.append((package, args, kwargs))

    runner = Runner(consumer, [3, "x"], {"flag": True})
    await runner.deliver(PACKAGE)
    assert calls == [(PACKAGE, (3, "x"), {"flag": True})]
    assert runner.task is None


async def test_plain_function_called_with_none_for_empty_queue() -> None:
    calls: list[Any] = []
    await Runner(calls.append).deliver(None)
    assert calls == [None]


async def test_coroutine_consumer_runs_as_a_task() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    seen: list[Any] = []

    async def consumer(package: Package | None, arg: int, *, key: str) -> None:
        seen.append((package, arg, key))
        started.set()
        await release.wait()

    runner = Runner(consumer, [7], {"key": "v"})
    await runner.deliver(PACKAGE)
    assert runner.task is not None
    await asyncio.wait_for(started.wait(), 1)
    assert not runner.task.done()  # deliver returned while the consumer still runs
    release.set()
    await asyncio.wait_for(runner.task, 1)
    assert seen == [(PACKAGE, 7, "v")]


async def test_deliver_again_cancels_the_running_task_first() -> None:
    events: list[str] = []

    async def consumer(package: Package | None) -> None:
        assert package is not None
        events.append(f"start {package.payload}")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append(f"cancelled {package.payload}")
            raise

    runner = Runner(consumer)
    await runner.deliver(PACKAGE)
    await asyncio.sleep(0)  # let the first task start
    first = runner.task
    await runner.deliver(OTHER)
    await asyncio.sleep(0)
    assert events == ["start job", "cancelled job", "start other"]
    assert first is not None and first.cancelled()
    await runner.cancel()


async def test_deliver_cancels_a_task_that_never_started() -> None:
    events: list[str] = []

    async def consumer(package: Package | None) -> None:
        assert package is not None
        events.append(package.payload)

    runner = Runner(consumer)
    await runner.deliver(PACKAGE)
    await runner.deliver(OTHER)  # before the first task ever ran
    await asyncio.wait_for(runner.task, 1)  # type: ignore[arg-type]
    assert events == ["other"]


async def test_cancel_without_a_task_is_harmless() -> None:
    runner = Runner(lambda package: None)
    await runner.cancel()
    assert runner.task is None


async def test_plain_consumer_exception_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def consumer(package: Package | None) -> None:
        raise RuntimeError("plain boom")

    await Runner(consumer).deliver(PACKAGE)
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None
    assert "plain boom" in str(record.exc_info[1])
    assert "job" in record.getMessage()


async def test_coroutine_consumer_exception_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def consumer(package: Package | None) -> None:
        raise RuntimeError("async boom")

    runner = Runner(consumer)
    await runner.deliver(PACKAGE)
    task = runner.task
    assert task is not None
    await asyncio.wait({task}, timeout=1)
    await asyncio.sleep(0)  # the done callback runs on the next loop iteration
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None
    assert "async boom" in str(record.exc_info[1])
    await runner.deliver(OTHER)  # the runner carries on


async def test_cancelled_task_is_not_logged_as_error(caplog: pytest.LogCaptureFixture) -> None:
    async def consumer(package: Package | None) -> None:
        await asyncio.sleep(10)

    runner = Runner(consumer)
    await runner.deliver(PACKAGE)
    await asyncio.sleep(0)
    await runner.cancel()
    await asyncio.sleep(0)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_consumer_swallowing_cancellation_does_not_block_deliver(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kamikaze.consumer, "CANCEL_GRACE", 0.05)
    release = asyncio.Event()
    calls: list[str] = []

    async def stubborn(package: Package | None) -> None:
        assert package is not None
        calls.append(package.payload)
        if package.payload != "job":
            return
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await release.wait()  # ignores the cancellation

    runner = Runner(stubborn)
    await runner.deliver(PACKAGE)
    await asyncio.sleep(0)
    first = runner.task
    await asyncio.wait_for(runner.deliver(OTHER), 1)
    assert calls == ["job", "other"]
    assert any("ignored cancellation" in r.getMessage() for r in caplog.records)
    release.set()
    await asyncio.wait_for(first, 1)  # type: ignore[arg-type]
