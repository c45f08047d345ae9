"""The docs (README.rst and the pages of docs/) and contrib/ stay true to the
code: the site builds without a warning, every command, option, environment
variable, metric and log field is documented, the README renders, the Python
examples compile, and the systemd unit parses and builds a command line the
CLI accepts. tests/integration/test_docs_examples.py runs the examples."""

from __future__ import annotations

import ast
import configparser
import dataclasses
import inspect
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import click
import pytest

from kamikaze import Package, Queue, SyncQueue
from kamikaze.cli import main
from kamikaze.consumer import decode_arg, decode_kwargs, resolve
from kamikaze.logs import JsonFormatter
from tests.docs_text import DOCS, README, ROOT, all_text, page, pages, python_blocks, section

UNIT = ROOT / "contrib" / "kamikaze@.service"
ENV_EXAMPLE = ROOT / "contrib" / "kamikaze.env.example"
UNIT_VARIABLES = {"KAMIKAZE_CONSUMER", "KAMIKAZE_CONSUMER_ARGS", "KAMIKAZE_CONSUMER_KWARGS"}
SHELLS = ("bash", "zsh", "fish")


def mentioned(word: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


# The site, built ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML site, built as a reader builds it, with warnings as errors."""
    out = tmp_path_factory.mktemp("html")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.rows: list[str] = []
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "tr":
            self._row = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None:
            self.rows.append(" ".join(" ".join(self._row).split()))
            self._row = None

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        if self._row is not None:
            self._row.append(data)


def html_text(built: Path, name: str) -> _Text:
    parser = _Text()
    parser.feed((built / f"{name}.html").read_text(encoding="utf-8"))
    return parser


def test_the_site_builds_without_warnings(built: Path) -> None:
    assert (built / "index.html").exists()


def test_every_page_is_in_the_table_of_contents(built: Path) -> None:
    index = (built / "index.html").read_text(encoding="utf-8")
    for name in pages():
        if name != "index":
            assert f'href="{name}.html"' in index, name


def test_the_readme_links_every_page() -> None:
    readme = README.read_text(encoding="utf-8")
    linked = set(re.findall(r"<docs/(\w+)\.rst>`_", readme))
    assert linked == set(pages()) - {"index"}


def test_the_cli_reference_is_generated_from_the_code(built: Path) -> None:
    assert ".. click:: kamikaze.cli:main" in page("cli")
    reference = " ".join("".join(html_text(built, "cli").parts).split())
    for name in main.commands:
        assert f"kamikaze {name}" in reference, name


# The CLI, walked ----------------------------------------------------------------------


def parameters() -> Iterator[tuple[str, click.Parameter]]:
    """(command name, parameter) for the group and every command, --help included."""
    root = click.Context(main, **main.context_settings)
    for parameter in main.get_params(root):
        yield "", parameter
    for name, command in sorted(main.commands.items()):
        for parameter in command.get_params(click.Context(command, parent=root)):
            yield name, parameter


def options() -> list[tuple[str, click.Option]]:
    """Each option once, with the first command that has it ("" for the group)."""
    found: dict[tuple[str, ...], tuple[str, click.Option]] = {}
    for command, parameter in parameters():
        if isinstance(parameter, click.Option):
            found.setdefault(tuple(parameter.opts), (command, parameter))
    return list(found.values())


def with_envvar() -> dict[str, click.Option]:
    return {str(option.envvar): option for _, option in options() if isinstance(option.envvar, str)}


def option_id(item: tuple[str, click.Option]) -> str:
    command, option = item
    return f"{command or 'kamikaze'} {option.opts[0]}"


# Commands and options -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_has_its_own_part_with_an_example(name: str) -> None:
    commands = page("commands")
    assert re.search(rf"^{re.escape(name)}\n-+$", commands, re.M), f"no heading for {name}"
    assert f"$ kamikaze {name}" in commands, f"no example of kamikaze {name}"


@pytest.mark.parametrize("item", options(), ids=option_id)
def test_every_option_is_documented(item: tuple[str, click.Option]) -> None:
    _, option = item
    for flag in option.opts + option.secondary_opts:
        assert mentioned(flag, all_text()), f"{flag} is not in the docs"


@pytest.mark.parametrize("envvar", sorted(with_envvar()))
def test_every_environment_variable_is_in_the_configuration_table(envvar: str, built: Path) -> None:
    option = with_envvar()[envvar]
    rows = [
        row
        for row in html_text(built, "configuration").rows
        if re.search(rf"(?<![\w]){envvar}(=1)?(?![\w])", row)
    ]
    assert len(rows) == 1, f"{envvar}: {len(rows)} rows in the configuration tables"
    (row,) = rows
    assert mentioned(option.opts[0], row), f"{envvar}'s row does not name {option.opts[0]}"
    default = option.get_default(click.Context(main), call=False)
    if isinstance(default, str | int | float) and not isinstance(default, bool):
        texts = {str(default)}
        if isinstance(default, float) and default.is_integer():
            texts.add(str(int(default)))
        assert any(mentioned(text, row) for text in texts), f"{envvar}: default {default!r}"


def test_every_option_without_a_variable_is_in_the_configuration_table(built: Path) -> None:
    rows = " ".join(html_text(built, "configuration").rows)
    for _, option in options():
        if option.envvar is None:
            assert mentioned(option.opts[-1], rows), option.opts


def test_no_environment_variable_in_the_docs_is_made_up() -> None:
    """Each KAMIKAZE_* name in the docs is read by the CLI, the code, the
    tests or the systemd unit."""
    sources = [*ROOT.glob("kamikaze/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("contrib/*")]
    known = set(with_envvar()) | {
        name
        for path in sources
        if path.resolve() != Path(__file__).resolve()
        for name in re.findall(r"KAMIKAZE_[A-Z_]+", path.read_text(encoding="utf-8"))
    }
    used = set(re.findall(r"(?<![A-Z_])KAMIKAZE_[A-Z_]+", all_text()))
    assert used - known == set()


# Python API -----------------------------------------------------------------------------


def test_every_python_example_compiles() -> None:
    texts = {"README.rst": README.read_text(encoding="utf-8")}
    texts |= {f"docs/{name}.rst": page(name) for name in pages()}
    compiled = 0
    for source, text in texts.items():
        for block in python_blocks(text):
            compile(block.body, source, "exec")
            compiled += 1
    assert compiled >= 8


# Names that are public in Python but not part of the documented API.
INTERNAL = {"reconcile_step", "sizes", "create", "from_member"}


@pytest.mark.parametrize("cls", [Queue, SyncQueue, Package], ids=lambda cls: cls.__name__)
def test_the_public_api_is_documented(cls: type) -> None:
    api = page("api") + page("consumer")
    public = {name for name in vars(cls) if not name.startswith("_")}
    if dataclasses.is_dataclass(cls):
        public |= {field.name for field in dataclasses.fields(cls)}
    for name in public - INTERNAL:
        assert mentioned(name, api), f"{cls.__name__}.{name} is not in docs/api.rst"


def test_the_api_reference_is_generated_from_the_code(built: Path) -> None:
    api = page("api")
    for name in ("Queue", "SyncQueue", "Package", "TopReading", "OutcomeUnknown", "Settings"):
        assert re.search(rf"^\.\. auto(class|exception):: kamikaze\.{name}$", api, re.M), name
    reference = " ".join(html_text(built, "api").parts)
    assert inspect.getdoc(Queue.clear).splitlines()[0].split()[0] in reference  # type: ignore[union-attr]


def test_the_package_table_names_real_attributes() -> None:
    consumer = page("consumer")
    table = consumer[consumer.index("0.1.x's interface") : consumer.index("Two packages")]
    first_column = [re.split(r"\s{2,}", line)[0] for line in table.splitlines()]
    names = [name for cell in first_column for name in re.findall(r"``(\w+)", cell)]
    assert len(names) >= 7
    package = Package.create("payload", 1, None)
    for name in names:
        assert hasattr(package, name), name
    assert inspect.signature(Package.ttl).parameters["now"].default is None


# Operations -----------------------------------------------------------------------------


def test_every_metric_is_documented() -> None:
    tree = ast.parse((ROOT / "kamikaze" / "metrics.py").read_text(encoding="utf-8"))
    names = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"kamikaze_[a-z_]+", node.value)
    }
    assert len(names) >= 8
    operations = page("operations")
    for name in names:
        assert f"``{name}``" in operations, name


def test_the_health_and_metrics_paths_are_documented() -> None:
    from kamikaze.metrics import Metrics, metrics_app

    paths = {resource.canonical for resource in metrics_app(Metrics("k")).router.resources()}
    assert {"/metrics", "/health", "/healthz"} <= paths
    operations = page("operations")
    for path in paths:
        assert mentioned(path, operations), path
    assert "503" in operations and "200" in operations


def test_every_json_log_field_is_documented() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.makeLogRecord(
            {"msg": "m", "levelname": "ERROR", "exc_info": sys.exc_info(), "stack_info": "s"}
        )
    fields = json.loads(JsonFormatter().format(record))
    logs = section(page("operations"), "Logs")
    for field in fields:
        assert f"``{field}``" in logs, field


def installed_script() -> Path:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    # The one-shot commands' fast path, which hands everything else to kamikaze.cli:main.
    assert scripts["kamikaze"] == "kamikaze.quick:main"
    return Path(sys.executable).parent / "kamikaze"


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_completion_is_documented_as_click_generates_it(shell: str) -> None:
    from click.shell_completion import get_completion_class

    assert get_completion_class(shell) is not None
    variable = "_KAMIKAZE_COMPLETE"  # click: _{PROG_NAME}_COMPLETE
    assert f"{variable}={shell}_source kamikaze" in page("operations")
    script = installed_script()
    if not script.exists():
        pytest.skip(f"{script} is not installed")
    env = {**os.environ, variable: f"{shell}_source"}
    result = subprocess.run([script], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "_kamikaze_completion" in result.stdout


# The README's RST, as GitHub and PyPI render it ---------------------------------------


def test_the_readme_renders_without_warnings() -> None:
    core = pytest.importorskip("docutils.core")
    warnings = io.StringIO()
    core.publish_doctree(
        README.read_text(encoding="utf-8"),
        source_path="README.rst",
        settings_overrides={
            "report_level": 2,  # warnings and worse
            "halt_level": 5,  # never stop: collect them all
            "warning_stream": warnings,
            "syntax_highlight": "none",
        },
    )
    assert warnings.getvalue() == ""


# The systemd unit -----------------------------------------------------------------------


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, delimiters=("=",), comment_prefixes=("#", ";")
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"), source=str(UNIT))
    return parser


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value.strip('"')
    return values


def test_the_unit_runs_kamikaze_service_hardened() -> None:
    parsed = unit()
    assert {"Unit", "Service", "Install"} <= set(parsed.sections())
    service = parsed["Service"]
    executable, command, *_ = service["ExecStart"].split()
    assert executable.startswith("/") and executable.endswith("/kamikaze")
    assert command == "service"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # bad arguments stay bad
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 5  # the service needs about 2 s
    assert service["User"] not in ("", "root")
    assert "%i" in service["EnvironmentFile"]
    for setting, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }.items():
        assert service[setting] == value, setting
    assert parsed["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_and_its_env_example_agree_with_the_cli() -> None:
    exec_start = unit()["Service"]["ExecStart"]
    in_unit = set(re.findall(r"\$\{?(KAMIKAZE_\w+)", exec_start))
    assert in_unit == UNIT_VARIABLES
    example_text = ENV_EXAMPLE.read_text(encoding="utf-8")
    named = set(re.findall(r"^#?(KAMIKAZE_\w+)=", example_text, re.M))
    assert named >= UNIT_VARIABLES
    assert named - UNIT_VARIABLES <= set(with_envvar())
    for name in UNIT_VARIABLES:
        assert mentioned(name, page("operations")), name


def expand(command: str, env: dict[str, str]) -> list[str]:
    """systemd's ExecStart= expansion: ${X} is one argument, $X splits at whitespace."""
    argv: list[str] = []
    for word in command.split():
        if match := re.fullmatch(r"\$\{(\w+)\}", word):
            argv.append(env.get(match[1], ""))
        elif match := re.fullmatch(r"\$(\w+)", word):
            argv += env.get(match[1], "").split()
        else:
            argv.append(word)
    return argv


def test_the_unit_with_the_example_env_is_a_valid_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = env_example()
    for name, value in env.items():
        if name not in UNIT_VARIABLES:
            monkeypatch.setenv(name, value)
    _, name, *args = expand(unit()["Service"]["ExecStart"], env)
    assert name == "service"
    root = main.make_context("kamikaze", ["version"])  # the global options, from env
    service = main.commands["service"].make_context("service", args, parent=root)
    assert service.params["consumer_path"] == env["KAMIKAZE_CONSUMER"]
    assert callable(resolve(service.params["consumer_path"]))
    assert [decode_arg(arg) for arg in service.params["consumer_args"]] == []
    assert decode_kwargs(service.params["consumer_function_kwargs"]) == {}


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    """As installed (kamikaze@.service), with the password lines uncommented,
    and ExecStart pointing at an executable that exists here."""
    text = UNIT.read_text(encoding="utf-8")
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable} -m kamikaze", text, flags=re.M)
    text = re.sub(r"^WorkingDirectory=.*$", f"WorkingDirectory={tmp_path}", text, flags=re.M)
    text = re.sub(r"^#(LoadCredential=|Environment=KAMIKAZE_)", r"\1", text, flags=re.M)
    (tmp_path / "kamikaze@.service").write_text(text, encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "kamikaze@docs.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Bad values are only warnings ("Failed to parse ..., ignoring"): none allowed.
    assert [line for line in output.splitlines() if "kamikaze@" in line] == []


class _PythonBlocks(HTMLParser):
    """The text of each Python code block of a built page, as a reader copies it."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[str] = []
        self._depth = 0  # inside a highlight-python div: its nesting depth

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "div" and self._depth:
            self._depth += 1
        elif tag == "div" and any(c in ("highlight-python", "highlight-python3") for c in classes):
            self._depth = 1
            self.blocks.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.blocks[-1] += data


def test_every_python_block_of_the_site_compiles_as_copied(built: Path) -> None:
    """Copied from the page, not from the source: a block whose options and
    code were indented differently kept a leading space on every line."""
    for name in pages():
        parser = _PythonBlocks()
        parser.feed((built / f"{name}.html").read_text(encoding="utf-8"))
        for block in parser.blocks:
            try:
                compile(block, f"{name}.html", "exec")
            except SyntaxError as exc:
                raise AssertionError(f"{name}.html: {exc}\n{block}") from None


def test_every_install_command_of_an_extra_installs_this_version_or_fails() -> None:
    """docs/install.rst: the index's `kamikaze` is 0.1.1 (2014); a command we
    print or show carries this version as its floor, which 0.1.1 does not meet."""
    from packaging.requirements import Requirement

    from kamikaze import __version__, install_command

    command = install_command("web")
    requirement = Requirement(command.split("'")[1])
    assert requirement.name == "kamikaze" and requirement.extras == {"web"}
    assert not requirement.specifier.contains("0.1.1", prereleases=True)
    assert requirement.specifier.contains(__version__, prereleases=True)
    texts = {path: path.read_text(encoding="utf-8") for path in [README, *DOCS.glob("*.rst")]}
    texts |= {path: path.read_text() for path in (ROOT / "kamikaze").rglob("*.py")}
    texts |= {path: path.read_text() for path in (ROOT / "contrib").iterdir()}
    for path, text in texts.items():
        for found in re.findall(r"pip\s+install\s+'?\"?(kamikaze\[[^\s'\"]*)", text):
            if found != "kamikaze[{extra}]>={__version__}":  # install_command itself
                assert found.endswith(f">={__version__}"), f"{path.name}: {found} may install 0.1.1"
