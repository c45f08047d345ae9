"""The README's two set-up commands are the ones CI and users run."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    lines = (ROOT / "README.rst").read_text().splitlines()
    return [line.strip() for line in lines if line.strip().startswith("python3 -m venv .venv")]


def test_readme_opens_with_two_commands() -> None:
    service, tests = readme_commands()
    assert service.endswith(
        "kamikaze service example_consumer.consumer.blocking_consumer_func --embedded"
    )
    assert tests.endswith("-m pytest")


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in [line.strip() for line in ci_lines]


def test_ci_lints_outside_the_tests() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    for tool in ("ruff check .", "ruff format --check .", "mypy"):
        assert tool in ci, tool
