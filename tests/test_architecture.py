"""The layout keeps the design: who may import whom, no import cycles, small files and functions.

The rules are the "may import" column of the architecture page (``ARCHITECTURE.md``):

| room | may import (of this repository) |
|---|---|
| ``reelrec`` (the shared core) | nothing of the others |
| ``synthetic_world`` (the upstream app) | ``reelrec`` |
| ``spark_jobs`` | ``reelrec`` |
| ``feature_repo`` | ``reelrec`` |
| ``models`` | ``reelrec``, ``feature_repo`` |
| ``dags``, ``benchmarks`` | all, but nothing of the pipeline imports the synthetic world |

One documented exception: the CLI is the project's front door, and its ``generate`` and ``demo``
commands drive the upstream simulator, so ``reelrec/cli.py`` may import ``synthetic_world`` inside those
two command functions (never at module level).

Imports are read with :mod:`ast`, not by importing anything: module-level imports, imports inside
functions (lazy imports count: they run as soon as the function does) and ``TYPE_CHECKING`` blocks.
``from package import name`` depends on ``package.name`` when that is a module, else on ``package``.
Dynamic imports (``importlib.import_module("...")``, the DAG's ``_call("module:function")``) are not
followed; ``tests/test_dag_entry_points.py`` checks those.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("reelrec", "spark_jobs", "models", "feature_repo", "dags", "synthetic_world", "benchmarks")
ALL = frozenset(PACKAGES)
PIPELINE = ALL - {"synthetic_world", "benchmarks"}
# room -> rooms of this repository it may import (its own room is always allowed)
MAY_IMPORT: dict[str, frozenset[str]] = {
    "reelrec": frozenset(),
    "synthetic_world": frozenset({"reelrec"}),
    "spark_jobs": frozenset({"reelrec"}),
    "feature_repo": frozenset({"reelrec"}),
    "models": frozenset({"reelrec", "feature_repo"}),
    "dags": PIPELINE,
    "benchmarks": ALL,
}
# The one exception to the core's rule: (module, function it sits in, room it imports).
ALLOWED_EXCEPTIONS = {
    ("reelrec.cli", "cmd_generate", "synthetic_world"),
    ("reelrec.cli", "cmd_demo", "synthetic_world"),
}
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
SKIPPED_DIRS = {"tests", "build", "dist", "node_modules", "__pycache__"}


@dataclass(frozen=True)
class Import:
    """One import statement's dependency of ``source`` on ``target`` (both dotted module names)."""

    source: str
    target: str
    line: int
    function: str | None  # outermost function the import sits in; None at module level

    def where(self, modules: dict[str, Path], root: Path) -> str:
        """``path:line`` of the statement, for failure messages."""
        return f"{modules[self.source].relative_to(root)}:{self.line}"


# ------------------------------------------------------------------------------------ the checker
def discover_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the given top-level folders of ``root``.

    A folder without ``__init__.py`` (``dags/``, ``benchmarks/``) is a namespace package. Where a module
    and a package share a name (``x.py`` next to ``x/__init__.py``), the package wins, as in Python.
    """
    modules: dict[str, Path] = {}
    for package in packages:
        folder = root / package
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_init = parts[-1] == "__init__"
            if is_init:
                parts.pop()
            name = ".".join(parts)
            if name not in modules or is_init:
                modules[name] = path
    return modules


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    path = modules.get(name)
    if path is not None:
        return path.name == "__init__.py"
    return any(other.startswith(name + ".") for other in modules)


def _resolve_relative(source: str, module: str | None, level: int, modules: dict[str, Path]) -> str:
    """Absolute name of ``from <level dots><module> import ...`` written in ``source``."""
    base = source.split(".")
    if not _is_package(source, modules):
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The deepest module of this repository that ``name`` names or lies in (``None``: third party)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules or _is_package(candidate, modules):
            return candidate
        parts.pop()
    return None


def _targets(node: ast.Import | ast.ImportFrom, source: str, modules: dict[str, Path]) -> list[str]:
    """Modules of this repository that one import statement depends on."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = (
            _resolve_relative(source, node.module, node.level, modules) if node.level else node.module or ""
        )
        submodules = [f"{base}.{alias.name}" for alias in node.names]
        names = [name if name in modules or _is_package(name, modules) else base for name in submodules]
    targets = []
    for name in names:
        target = _known(name, modules)
        if target is not None and target != source and target not in targets:
            targets.append(target)
    return targets


def _import_nodes(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, str | None]]:
    """Every import statement of a module with the outermost function it sits in (None: module level)."""

    def walk(node: ast.AST, function: str | None) -> Iterator[tuple[ast.Import | ast.ImportFrom, str | None]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, function
            inner = function
            if function is None and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = child.name
            yield from walk(child, inner)

    yield from walk(tree, None)


def module_imports(modules: dict[str, Path]) -> list[Import]:
    """Every dependency between modules of ``modules``, with where it is written."""
    imports = []
    for source, path in sorted(modules.items()):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, function in _import_nodes(tree):
            for target in _targets(node, source, modules):
                imports.append(Import(source, target, node.lineno, function))
    return imports


def room(module: str) -> str:
    """Top-level folder of a dotted module name."""
    return module.split(".")[0]


def layer_violations(imports: Iterable[Import], modules: dict[str, Path], root: Path) -> list[str]:
    """Imports that break :data:`MAY_IMPORT`, as ``path:line: source imports target`` lines."""
    found = []
    for imp in imports:
        source_room, target_room = room(imp.source), room(imp.target)
        if source_room == target_room or source_room not in MAY_IMPORT:
            continue
        if target_room in MAY_IMPORT[source_room]:
            continue
        if (imp.source, imp.function, target_room) in ALLOWED_EXCEPTIONS:
            continue
        inside = f" (in {imp.function}())" if imp.function else ""
        allowed = ", ".join(sorted(MAY_IMPORT[source_room])) or "none of the other rooms"
        found.append(
            f"{imp.where(modules, root)}: {imp.source} imports {imp.target}{inside}; "
            f"{source_room} may import: {allowed}"
        )
    return found


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph`` (iterative, so deep graphs are fine)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _shortest_cycle(start: str, graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """Shortest path ``start -> ... -> start`` inside one strongly connected component."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start, start]


def _graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.source, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    return graph


def import_cycles(imports: Iterable[Import]) -> list[tuple[list[str], list[str]]]:
    """Every tangle of modules that import each other, as ``(shortest cycle [a, b, ..., a], members)``.

    A tangle is a strongly connected group: each member reaches every other through imports. One
    cycle is shown per tangle (through its first member); breaking every cycle may take more cuts.
    """
    graph = _graph(imports)
    found = []
    for component in _strongly_connected(graph):
        if len(component) > 1:
            found.append((_shortest_cycle(component[0], graph, set(component)), component))
    return sorted(found)


def describe_cycle(
    cycle: list[str], members: list[str], imports: Iterable[Import], modules: dict[str, Path], root: Path
) -> str:
    """``a -> b (a.py:3) -> a (b.py:7, in f())``: a cycle with the line of each of its imports.

    When more modules are tangled with the cycle than it shows, they are listed after it.
    """
    first: dict[tuple[str, str], Import] = {}
    for imp in imports:
        first.setdefault((imp.source, imp.target), imp)
    steps = [cycle[0]]
    for source, target in zip(cycle, cycle[1:], strict=False):
        imp = first[(source, target)]
        inside = f", in {imp.function}()" if imp.function else ""
        steps.append(f"{target} ({imp.where(modules, root)}{inside})")
    others = sorted(set(members) - set(cycle))
    return " -> ".join(steps) + (f"\n    tangled with it: {', '.join(others)}" if others else "")


def source_files(root: Path) -> list[Path]:
    """Every ``.py`` file of the repository outside tests, virtualenvs, build output and hidden folders."""
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [
            name
            for name in subfolders
            if not (name.startswith(".") or name in SKIPPED_DIRS or name.endswith(".egg-info"))
        ]
        files += [Path(folder) / name for name in names if name.endswith(".py")]
    return sorted(files)


def long_functions(path: Path, limit: int) -> list[tuple[str, int, int]]:
    """``(qualified name, first line, length)`` of every function in ``path`` longer than ``limit`` lines.

    A function's length runs from its ``def`` line to its last line, docstring and nested functions
    included (decorators excluded).
    """
    found = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}."
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                if not isinstance(child, ast.ClassDef) and length > limit:
                    found.append((f"{prefix}{child.name}", child.lineno, length))
            walk(child, name)

    walk(ast.parse(path.read_text(), filename=str(path)), "")
    return found


# ------------------------------------------------------------------------------- the repository
@pytest.fixture(scope="module")
def modules() -> dict[str, Path]:
    found = discover_modules(ROOT, PACKAGES)
    assert "reelrec.lake" in found and "models.metrics" in found, "module discovery found no code"
    return found


@pytest.fixture(scope="module")
def imports(modules: dict[str, Path]) -> list[Import]:
    return module_imports(modules)


def test_each_room_imports_only_what_the_design_allows(
    modules: dict[str, Path], imports: list[Import]
) -> None:
    violations = layer_violations(imports, modules, ROOT)
    assert not violations, "imports against ARCHITECTURE.md's 'may import' column:\n" + "\n".join(violations)


def test_no_import_cycles(modules: dict[str, Path], imports: list[Import]) -> None:
    cycles = [
        describe_cycle(cycle, members, imports, modules, ROOT) for cycle, members in import_cycles(imports)
    ]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_source_file_over_500_lines() -> None:
    files = source_files(ROOT)
    assert any(path.name == "lake.py" for path in files), "found no source files"
    too_long = []
    for path in files:
        lines = len(path.read_text().splitlines())
        if lines > MAX_FILE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not too_long, f"files over {MAX_FILE_LINES} lines (split them):\n" + "\n".join(too_long)


def test_no_function_over_80_lines() -> None:
    too_long = [
        f"{path.relative_to(ROOT)}:{line}: {name}() is {length} lines"
        for path in source_files(ROOT)
        for name, line, length in long_functions(path, MAX_FUNCTION_LINES)
    ]
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split them):\n" + "\n".join(too_long)


# ------------------------------------------------------------------- the checker on a tiny package
def _write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return discover_modules(root, sorted({name.split("/")[0] for name in files}))


def test_checker_finds_a_two_module_cycle_and_names_its_lines(tmp_path: Path) -> None:
    modules = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import os\nfrom pkg import b\n",
            "pkg/b.py": '"""doc"""\n\n\ndef f():\n    from pkg.a import thing\n',
            "pkg/c.py": "import pkg.a\n",
        },
    )
    imports = module_imports(modules)

    assert import_cycles(imports) == [(["pkg.a", "pkg.b", "pkg.a"], ["pkg.a", "pkg.b"])]
    assert describe_cycle(["pkg.a", "pkg.b", "pkg.a"], ["pkg.a", "pkg.b"], imports, modules, tmp_path) == (
        "pkg.a -> pkg.b (pkg/a.py:2) -> pkg.a (pkg/b.py:5, in f())"
    )


def test_checker_counts_lazy_imports_and_resolves_submodules(tmp_path: Path) -> None:
    modules = _write(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/lake.py": "def read():\n    def inner():\n        import jobs.run\n",
            "core/sub/__init__.py": "from . import leaf\nfrom .leaf import VALUE\nfrom .. import lake\n",
            "core/sub/leaf.py": "from ..lake import read\nfrom core import sub\nVALUE = 1\n",
            "jobs/run.py": "from core import lake, missing\nimport numpy\nimport core.sub.leaf as leaf\n",
        },
    )
    edges = {(imp.source, imp.target, imp.line, imp.function) for imp in module_imports(modules)}

    assert edges == {
        ("core.lake", "jobs.run", 3, "read"),  # lazy, nested: counted, attributed to read()
        ("core.sub", "core.sub.leaf", 1, None),  # `from . import leaf`: the submodule
        ("core.sub", "core.sub.leaf", 2, None),
        ("core.sub", "core.lake", 3, None),
        ("core.sub.leaf", "core.lake", 1, None),  # `from ..lake import read`: a name, so the module
        ("core.sub.leaf", "core.sub", 2, None),
        ("jobs.run", "core.lake", 1, None),
        ("jobs.run", "core", 1, None),  # `missing` is not a module: the package
        ("jobs.run", "core.sub.leaf", 3, None),  # numpy is third party: not an edge
    }
    # core.sub <-> core.sub.leaf, and core.lake <-> jobs.run, which reaches leaf: one tangle of four
    tangle = ["core.lake", "core.sub", "core.sub.leaf", "jobs.run"]
    assert import_cycles(module_imports(modules)) == [(["core.lake", "jobs.run", "core.lake"], tangle)]


def test_checker_applies_the_room_rules_and_the_cli_exception(tmp_path: Path) -> None:
    modules = _write(
        tmp_path,
        {
            "reelrec/__init__.py": "",
            "reelrec/cli.py": (
                "def cmd_demo():\n    import synthetic_world.world\n\n"
                "def cmd_status():\n    import synthetic_world.world\n"
            ),
            "reelrec/lake.py": "import models.score\n",
            "models/score.py": "import reelrec.lake\nimport feature_repo.names\n",
            "feature_repo/names.py": "from models import score\n",
            "synthetic_world/world.py": "import reelrec.lake\nfrom spark_jobs import job\n",
            "spark_jobs/job.py": "",
        },
    )
    violations = layer_violations(module_imports(modules), modules, tmp_path)

    assert [v.split(";")[0] for v in violations] == [
        "feature_repo/names.py:1: feature_repo.names imports models.score",
        "reelrec/cli.py:5: reelrec.cli imports synthetic_world.world (in cmd_status())",
        "reelrec/lake.py:1: reelrec.lake imports models.score",
        "synthetic_world/world.py:2: synthetic_world.world imports spark_jobs.job",
    ]


def test_size_checker_measures_functions_with_their_docstrings(tmp_path: Path) -> None:
    def body(indent: str, lines: int) -> str:
        return "\n".join(f"{indent}x{i} = {i}" for i in range(lines))

    path = tmp_path / "m.py"
    path.write_text(  # short(): 80 lines, at the limit; C.long(): 81 lines, over it
        f'def short():\n    """doc"""\n{body("    ", 78)}\n\n\n'
        f"class C:\n    def long(self):\n        pass\n{body('        ', 79)}\n"
    )

    assert long_functions(path, 80) == [("C.long", 84, 81)]
