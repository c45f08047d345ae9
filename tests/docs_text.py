"""The documentation taken apart for the tests: the README and the pages of
docs/, their sections, code blocks and the literal blocks that show output.

A block's role comes from its RST options, which readers do not see:
``:class: runnable`` (a console or Python block the tests run, in order, in
one shell per page), ``:class: service`` (the command of a first terminal:
the tests start it in the background), ``:class: service-output`` (what that
service prints next), and ``:caption: NAME.py`` (a file the reader saves).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.rst"


def pages() -> dict[str, Path]:
    """Every page of the site by name (`tutorial`), without the included parts."""
    return {path.stem: path for path in sorted(DOCS.glob("*.rst")) if not path.stem.startswith("_")}


def page(name: str) -> str:
    return (DOCS / f"{name}.rst").read_text(encoding="utf-8")


def all_text() -> str:
    """The README and every page, as one text."""
    return "\n".join(
        [
            README.read_text(encoding="utf-8"),
            *(p.read_text(encoding="utf-8") for p in pages().values()),
        ]
    )


def section(text: str, title: str) -> str:
    """A section of a page (its title underlined with any one punctuation
    character), up to the next title underlined with the same character."""
    lines = text.splitlines()
    for i in range(len(lines) - 1):
        underline = lines[i + 1]
        if is_title(lines[i], underline) and lines[i].strip() == title:
            end = next(
                (
                    j
                    for j in range(i + 2, len(lines) - 1)
                    if is_title(lines[j], lines[j + 1]) and lines[j + 1][0] == underline[0]
                ),
                len(lines),
            )
            return "\n".join(lines[i:end])
    raise AssertionError(f"no section {title!r}")


def is_title(line: str, underline: str) -> bool:
    return (
        bool(line.strip())
        and len(underline) >= len(line.strip())
        and underline == underline[0] * len(underline)
        and not underline[0].isalnum()
        and not underline[0].isspace()
    )


def indented_block(lines: list[str], start: int) -> tuple[str, int]:
    """The block indented under lines[start - 1], dedented, and the index past it."""
    block: list[str] = []
    end = start
    for end in range(start, len(lines) + 1):
        if end == len(lines):
            break
        line = lines[end]
        if line.strip() and not line.startswith(" "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip("\n") + "\n", end


@dataclass
class Block:
    """A code block (`language` set) or a literal block (`language` "")."""

    language: str
    body: str
    options: dict[str, str] = field(default_factory=dict)
    intro: str = ""  # for a literal block: the line that ends with '::'

    @property
    def classes(self) -> set[str]:
        return set(self.options.get("class", "").split())


def blocks(text: str) -> list[Block]:
    """The code and literal blocks of a page, in order."""
    lines = text.splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = re.match(r"\s*\.\. code(?:-block)?::\s*(\S*)", line)
        if directive:
            options: dict[str, str] = {}
            i += 1
            while i < len(lines) and re.match(r"\s+:(\w[\w-]*):\s*(.*)$", lines[i]):
                name, value = re.match(r"\s+:(\w[\w-]*):\s*(.*)$", lines[i]).groups()  # type: ignore[union-attr]
                options[name] = value
                i += 1
            body, i = indented_block(lines, i)
            found.append(Block(directive[1] or "text", body, options))
            continue
        if line.rstrip().endswith("::") and not line.lstrip().startswith(".. "):
            body, end = indented_block(lines, i + 1)
            found.append(Block("", body, intro=line.strip()))
            i = end
            continue
        i += 1
    return found


def python_blocks(text: str) -> list[Block]:
    return [block for block in blocks(text) if block.language == "python"]


@dataclass
class Step:
    """A command as a reader types it, and what the docs show it prints."""

    command: str
    shown: str


def console_steps(body: str) -> list[Step]:
    """`$ command` lines (continued by a trailing backslash) and their output."""
    steps: list[Step] = []
    continued = False
    for line in body.splitlines():
        if continued:
            steps[-1].command += "\n" + line
            continued = line.endswith("\\")
        elif line.startswith("$ "):
            steps.append(Step(line[2:], ""))
            continued = line.endswith("\\")
        else:
            assert steps, f"output before any command: {line!r}"
            steps[-1].shown += line + "\n"
    for step in steps:
        step.shown = step.shown.strip("\n") + "\n" if step.shown.strip() else ""
    return steps


def shape(shown: str) -> re.Pattern[str]:
    """What the docs show, as a pattern of what a run prints: numbers (times,
    TTLs, expire times) may differ, runs of blanks match runs of blanks, a
    line `...` stands for any lines."""
    parts: list[str] = []
    for line in shown.splitlines():
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        pattern = ""
        for token in re.split(r"(\d+|\s+)", line.rstrip()):
            if token.isdigit():
                pattern += r"\d+"
            elif token.isspace():
                pattern += r"[ \t]+"
            elif token:
                pattern += re.escape(token)
        parts.append(pattern + r"[ \t]*\n")
    return re.compile("".join(parts))


def looks_like(output: str, shown: str) -> bool:
    text = "\n".join(line.rstrip() for line in output.splitlines())
    return shape(shown).fullmatch(text + "\n" if text else "") is not None
