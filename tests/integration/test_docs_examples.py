"""The docs' examples work in the quick start's world (issue 13.1): a clone
with its .venv, the embedded server started by the quick start's service, a
fresh HOME, and a shell in which every runnable block of a page is typed as
written, in order, with its output checked where the page shows it.

Each page gets its own world (runtime and data directories, HOME) and a
terminal: the shell's output goes to a pty, as a reader's does, so `list`
prints its table. A page other than the README and the tutorial starts in
the tutorial's shell (its "Set up the shell" block) from an empty queue, as
docs/_assumes.rst tells the reader.

Covers: docs/*.rst, README.rst (their shell examples), kamikaze/cli.py."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs_text import (
    DOCS,
    README,
    ROOT,
    Block,
    blocks,
    console_steps,
    looks_like,
    page,
    pages,
    section,
    shape,
)
from tests.integration.processes import Service

VENV_BIN = Path(sys.executable).parent  # .venv/bin, or .venv-newest/bin (.ci/run newest)
COMMAND_TIMEOUT = 60.0


def quick_start_service() -> str:
    """The service of the README's command 1, without the set-up before it."""
    line = next(
        line.strip()
        for line in README.read_text().splitlines()
        if line.strip().startswith("python3 -m venv .venv") and " service " in line
    )
    return line.rsplit(" && ", 1)[1]


def tutorial_setup() -> list[str]:
    (setup,) = [b for b in blocks(section(page("tutorial"), "Set up the shell")) if b.language]
    return [step.command for step in console_steps(setup.body)]


def runnable_pages() -> dict[str, Path]:
    found = (
        {"README": README}
        if any("runnable" in b.classes for b in blocks(README.read_text()))
        else {}
    )
    for name, path in pages().items():
        if any(b.classes & {"runnable", "service"} for b in blocks(path.read_text())):
            found[name] = path
    return found


class Shell:
    """One bash for a page, fed one command at a time; its output goes to a
    terminal (a pty), as a reader's shell does."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.count = 0

    def run(self, command: str) -> tuple[int, str]:
        """Run `command` as typed; its exit status and what it printed."""
        assert self.process.stdin is not None
        self.count += 1
        marker = f"@@kamikaze-docs-{self.count}@@"
        self.process.stdin.write(f"{command}\nprintf '\\n{marker} %d\\n' $?\n".encode())
        self.process.stdin.flush()
        output = b""
        end = re.compile(rb"\r?\n" + marker.encode() + rb" (\d+)\r?\n")
        deadline = COMMAND_TIMEOUT
        while not (found := end.search(output)):
            ready, _, _ = select.select([self.master], [], [], deadline)
            assert ready, f"{command!r} did not finish in {COMMAND_TIMEOUT} s: {output!r}"
            output += os.read(self.master, 65536)
        text = output[: found.start()].decode("utf-8", "replace").replace("\r\n", "\n")
        return int(found[1]), text if not text or text.endswith("\n") else text + "\n"

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        os.close(self.master)


@dataclass
class World:
    """After the quick start: a clone with .venv, a fresh HOME, a first
    terminal running a service."""

    cwd: Path
    env: dict[str, str]
    service: Service | None = None

    def start_service(self, command: str) -> Service:
        self.stop_service()
        self.service = Service(f"exec {command}", argv=("bash", "-c"), env=self.env, cwd=self.cwd)
        return self.service

    def stop_service(self) -> None:
        if self.service is not None:
            code, _ = self.service.stop(signal.SIGTERM, timeout=15)
            assert code == 0, self.service.all_lines()
            self.service = None

    def kamikaze(self, *args: str) -> None:
        result = subprocess.run(
            [str(VENV_BIN / "kamikaze"), *args, "--embedded"],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert result.returncode == 0, result.stderr


@pytest.fixture
def world() -> Iterator[World]:
    base = Path(tempfile.mkdtemp(prefix="kd-"))  # short: the socket's path has a limit
    home, runtime, clone = base / "home", base / "run", base / "clone"
    for directory in (home, runtime, clone):
        directory.mkdir(mode=0o700)
    (clone / ".venv").symlink_to(VENV_BIN.parent)
    path = [p for p in os.environ["PATH"].split(os.pathsep) if not p.startswith(str(ROOT))]
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("KAMIKAZE_", "XDG_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        HOME=str(home), XDG_RUNTIME_DIR=str(runtime), PATH=os.pathsep.join(path), TERM="dumb"
    )
    env["PYTHONUNBUFFERED"] = "1"
    world = World(clone, env)
    try:
        yield world
    finally:
        if world.service is not None:
            world.service.stop(signal.SIGTERM, timeout=15)
        leftover = runtime / "kamikaze" / "server.pid"
        if leftover.exists():  # the service stops the server; this is for a failed test
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(leftover.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)  # not a kd-* folder per example left behind


def prints_after(all_blocks: list[Block], at: int) -> str:
    """What a runnable Python block prints, as the literal block after it shows."""
    following = all_blocks[at + 1] if at + 1 < len(all_blocks) else None
    if following is not None and not following.language and "prints" in following.intro:
        return following.body
    return ""


def check(command: str, code: int, output: str, shown: str) -> None:
    failing = any(line.startswith("Error:") for line in shown.splitlines())
    assert (code != 0) == failing, f"{command!r} exited {code}:\n{output}"
    pattern = shape(shown).pattern
    assert looks_like(output, shown), (
        f"{command!r} printed\n{output}\nbut the docs show\n{shown}\n(pattern {pattern})"
    )


def expect_lines(service: Service, shown: str) -> None:
    """The service prints the lines shown (log lines aside), in order."""
    for line in shown.splitlines():
        if not line.strip() or line.strip() == "..." or re.match(r"\d{4}-\d\d-\d\d ", line):
            continue
        pattern = shape(line + "\n")
        got = service.expect(line.strip().split()[0], timeout=15)
        assert pattern.fullmatch(got.rstrip() + "\n"), (got, line)


@pytest.mark.parametrize("name", sorted(runnable_pages()))
def test_the_examples_of_a_page_work_as_written(name: str, world: World) -> None:
    path = runnable_pages()[name]
    all_blocks = blocks(path.read_text(encoding="utf-8"))
    service = world.start_service(quick_start_service())
    service.expect("Queue is empty", timeout=30)
    world.kamikaze("clear", "--yes")
    shell = Shell(world.cwd, world.env)
    try:
        if path.parent == DOCS and name != "tutorial":
            for command in tutorial_setup():
                assert shell.run(command) == (0, ""), command
        ran = 0
        for at, block in enumerate(all_blocks):
            caption = block.options.get("caption", "")
            if block.language == "python" and caption.endswith(".py"):
                (world.cwd / caption).write_text(block.body, encoding="utf-8")
            if "service" in block.classes:
                (step,) = console_steps(block.body)
                expect_lines(world.start_service(step.command), step.shown)
                ran += 1
            elif "service-output" in block.classes:
                assert world.service is not None
                expect_lines(world.service, block.body)
            elif "runnable" in block.classes and block.language == "python":
                command = f"python - <<'KAMIKAZE_DOCS'\n{block.body}KAMIKAZE_DOCS"
                code, output = shell.run(command)
                check(block.body, code, output, prints_after(all_blocks, at))
                ran += 1
            elif "runnable" in block.classes:
                for step in console_steps(block.body):
                    code, output = shell.run(step.command)
                    check(step.command, code, output, step.shown)
                    ran += 1
        assert ran > 0
    finally:
        shell.close()
        world.stop_service()


def test_the_quick_start_service_is_the_readme_command() -> None:
    assert shlex.split(quick_start_service())[:2] == [".venv/bin/kamikaze", "service"]
    assert tutorial_setup() == [". .venv/bin/activate", "export KAMIKAZE_EMBEDDED=1"]
