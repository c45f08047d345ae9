"""The KAMIKAZE_* connection variables read outside the CLI (docs/consumer.rst,
"Taking a package off the queue"): Queue.from_environment() reads them as the
CLI does, and a service exports the settings it uses, so that its consumer
reaches the same queue on the same server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from kamikaze import Queue, SyncQueue
from kamikaze.cli import main
from kamikaze.environment import VARIABLES, export_settings, settings_from_environment
from kamikaze.options import connection_params
from kamikaze.settings import Settings


@pytest.fixture(autouse=True)
def nothing_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("KAMIKAZE_")]:
        monkeypatch.delenv(name)


def cli_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings `kamikaze list` builds from `env`."""
    seen: list[Settings] = []

    def run_redis(settings: Settings, work: object) -> tuple[list[object], float]:
        seen.append(settings)
        return [], 0.0

    monkeypatch.setattr("kamikaze.cli.run_redis", run_redis)
    result = CliRunner().invoke(main, ["list"], env=env)
    assert result.exit_code == 0, result.output
    (settings,) = seen
    return settings


def test_every_connection_option_has_its_variable() -> None:
    options = {
        str(param.name): param.envvar
        for param in connection_params()
        if isinstance(param, click.Option)
    }
    assert options == VARIABLES  # both made from kamikaze.settings' declarations


SAMPLES: list[dict[str, str]] = [
    {},
    {"KAMIKAZE_REDIS_URL": "redis://db.example:6380/2", "KAMIKAZE_KEY": "jobs"},
    {"KAMIKAZE_REDIS_HOST": "db.example", "KAMIKAZE_REDIS_PORT": "7000", "KAMIKAZE_CLUSTER": "1"},
    {
        "KAMIKAZE_SENTINELS": "10.0.0.1:26379, 10.0.0.2",
        "KAMIKAZE_SENTINEL_MASTER": "mymaster",
        "KAMIKAZE_REDIS_PASSWORD_FILE": __file__,  # the CLI reads it: it must exist
    },
    {"KAMIKAZE_EMBEDDED": "yes", "KAMIKAZE_EMBEDDED_RUNTIME_DIR": "/tmp/k/run"},
    {"KAMIKAZE_EMBEDDED": "false", "KAMIKAZE_CLUSTER": "0"},
]


@pytest.mark.parametrize("env", SAMPLES)
def test_the_environment_reads_as_the_cli_reads_it(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings_from_environment(env) == cli_settings(env, monkeypatch)


@pytest.mark.parametrize(
    ("env", "culprit"),
    [
        ({"KAMIKAZE_REDIS_PORT": "abc"}, "KAMIKAZE_REDIS_PORT"),
        ({"KAMIKAZE_REDIS_PORT": "70000"}, "KAMIKAZE_REDIS_PORT"),
        ({"KAMIKAZE_EMBEDDED": "maybe"}, "KAMIKAZE_EMBEDDED"),
        ({"KAMIKAZE_SENTINELS": "host:port"}, "KAMIKAZE_SENTINELS"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], culprit: str) -> None:
    with pytest.raises(ValueError, match=culprit):
        settings_from_environment(env)


@pytest.mark.parametrize(
    "settings",
    [
        Settings(),
        Settings(redis_url="redis://:pw@db.example:6380/2", key="jobs", password_file=None),
        Settings(sentinels=(("10.0.0.1", 26379), ("::1", 26380)), sentinel_master="m"),
        Settings(redis_host="db.example", redis_port=7000, cluster=True, tls_ca_file=__file__),
    ],
    ids=["defaults", "url", "sentinel", "cluster"],
)
def test_exported_settings_read_back_the_same_in_the_cli(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"KAMIKAZE_REDIS_PORT": "1", "KAMIKAZE_EMBEDDED": "1"}  # stale values are replaced
    export_settings(settings, env)
    assert cli_settings(env, monkeypatch) == settings
    assert settings_from_environment(env) == settings


def test_exported_embedded_directories_are_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env: dict[str, str] = {}
    export_settings(Settings(embedded=True, embedded_runtime_dir="run"), env)
    assert env["KAMIKAZE_EMBEDDED"] == "1"
    assert env["KAMIKAZE_EMBEDDED_RUNTIME_DIR"] == str(tmp_path / "run")
    assert Path(env["KAMIKAZE_EMBEDDED_DATA_DIR"]).is_absolute()


def test_the_service_exports_its_settings_to_the_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def serve(settings: Settings, runner: Any, *args: Any) -> None:
        seen["environ"] = dict(os.environ)
        seen["from_environment"] = settings_from_environment()

    monkeypatch.setattr("kamikaze.service.serve", serve)
    monkeypatch.setattr(os, "environ", dict(os.environ))  # restored afterwards
    args = ["service", "example_consumer.consumer.blocking_consumer_func"]
    result = CliRunner().invoke(main, [*args, "--redis-port", "7000", "--key", "jobs"])
    assert result.exit_code == 0, result.output
    assert seen["environ"]["KAMIKAZE_REDIS_PORT"] == "7000"
    assert seen["from_environment"] == Settings(redis_port=7000, key="jobs")


async def test_queue_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAMIKAZE_REDIS_PORT", "7000")
    monkeypatch.setenv("KAMIKAZE_KEY", "jobs")
    async with Queue.from_environment() as queue:
        assert queue.key == "jobs"
        assert queue.redis.connection_pool.connection_kwargs["port"] == 7000


def test_sync_queue_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAMIKAZE_REDIS_PORT", "7000")
    monkeypatch.setenv("KAMIKAZE_KEY", "jobs")
    with SyncQueue.from_environment() as queue:
        assert queue.key == "jobs"
        assert queue._queue.redis.connection_pool.connection_kwargs["port"] == 7000
