"""Imports run one way (issue 12): the command line and the commands sit on top, stages below
them never import them; io/vision/thermal/feed never import the drivers (pipeline, replay,
station) or eval/bench; commands share helpers only through edge/commands/_common.py; no module
loads another by a string (that hides a cycle), and there is no import cycle at all.

The graph counts every import statement, also those inside functions (a lazy import is still a
dependency). edge/web/ is another team's package and not checked here."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from edge.paths import REPO_ROOT

EDGE = REPO_ROOT / "edge"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(EDGE.rglob("*.py")) if "web" not in p.relative_to(EDGE).parts[:1]}


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _imports(name: str, path: Path) -> dict[str, int]:
    """{imported edge module: first line} for one module (relative imports resolved)."""
    out: dict[str, int] = {}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(TREES[name]):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for t in targets:
            while t and t not in MODULES:  # `import edge.io.pairing` names a module; a.b.Class -> a.b
                t = t.rpartition(".")[0]
            if t and t != name:
                out.setdefault(t, node.lineno)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _violations(importers, imported) -> list[str]:
    return [f"{a} imports {b} (line {line})" for a, deps in GRAPH.items() if importers(a)
            for b, line in deps.items() if imported(b)]


def _under(*prefixes: str):
    return lambda m: any(m == p or m.startswith(p + ".") for p in prefixes)


def test_only_the_cli_imports_the_cli():
    assert _violations(lambda m: m != "edge.cli", _under("edge.cli")) == []


def test_no_library_imports_a_command():
    assert _violations(lambda m: not _under("edge.commands", "edge.cli")(m), _under("edge.commands")) == []


def test_commands_share_helpers_only_through_common():
    shared = lambda b: _under("edge.commands")(b) and b not in ("edge.commands", "edge.commands._common")  # noqa: E731
    assert _violations(_under("edge.commands"), shared) == []


@pytest.mark.parametrize("layer", ["edge.io", "edge.vision", "edge.thermal", "edge.feed"])
def test_stages_never_import_the_drivers_eval_or_bench(layer):
    drivers = _under("edge.pipeline", "edge.replay", "edge.station", "edge.eval", "edge.bench", "edge.commands",
                     "edge.cli")
    assert _violations(_under(layer), drivers) == []


def test_no_module_is_loaded_by_a_string():
    found = []
    for name, tree in TREES.items():
        if name == "edge.cli":  # discovers the subcommand modules by listing the package
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                if called in ("__import__", "import_module"):
                    found.append(f"{name}:{node.lineno}")
    assert found == []


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: none larger than one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # recursive: the graph is a few hundred modules deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert cycles == []


def test_a_station_without_pages_does_not_load_the_web_stack():
    """The station config and runner import only the [web] settings (edge/web/config.py): a
    gateway with its pages off must not carry Starlette, Jinja2, argon2 or SQLAlchemy (~70 MB of
    RSS, measured when edge.config imported them through the web server module)."""
    import subprocess
    import sys

    code = ("import sys, edge.config, edge.station, edge.replay; "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'jinja2', 'argon2', 'sqlalchemy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
