"""Every entry point the DAG names exists and takes the arguments the DAG passes.

The DAG reaches its jobs by name (``_call("spark_jobs.ingest_events:main", date)``) so that parsing it
stays cheap; a renamed or moved function would otherwise surface only when a real run reaches that
task. This test reads the names from the DAG files themselves (no Airflow, no database, nothing run),
imports each module and binds the call's arguments plus the trailing ``Settings`` to the signature.
The imports a task makes inside its body (``from reelrec.runs import resolve_run_date``) are checked
the same way.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path

import pytest

from reelrec.airflow_local import DAGS_FOLDER

DAG_FILES = sorted(Path(DAGS_FOLDER).glob("*.py"))


@dataclass(frozen=True)
class EntryPoint:
    """One ``_call("module:function", *args)`` in a DAG file."""

    module: str
    function: str
    args: tuple[str, ...]  # the positional arguments the DAG passes before the settings, as written
    where: str  # file:line

    def __str__(self) -> str:
        return f"{self.module}:{self.function}"

    @property
    def label(self) -> str:
        """``module:function(arg, ...)``: a test id that tells the DAG's calls apart."""
        return f"{self}({', '.join(self.args)})"


def _entry_points(path: Path) -> list[EntryPoint]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_call"):
            continue
        where = f"{path.name}:{node.lineno}"
        first = node.args[0] if node.args else None
        assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
            f"{where}: _call's first argument must be a literal 'module:function' string"
        )
        module, _, function = first.value.partition(":")
        assert module and function, f"{where}: {first.value!r} is not 'module:function'"
        args = tuple(str(a.value) if isinstance(a, ast.Constant) else ast.unparse(a) for a in node.args[1:])
        found.append(EntryPoint(module, function, args, where))
    return found


def _task_imports(path: Path) -> list[tuple[str, str, str]]:
    """``(module, name, file:line)`` of every ``from module import name`` inside a function of the file."""
    found = []
    for function in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(function, ast.FunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found += [(node.module, alias.name, f"{path.name}:{node.lineno}") for alias in node.names]
    return found


ENTRY_POINTS = [entry for path in DAG_FILES for entry in _entry_points(path)]
TASK_IMPORTS = [found for path in DAG_FILES for found in _task_imports(path)]


def test_the_dag_names_its_entry_points() -> None:
    # The nightly DAG hands off 18 tasks through _call; finding none would mean the parse broke.
    assert len(ENTRY_POINTS) >= 15, [str(e) for e in ENTRY_POINTS]
    assert any(e.module.startswith("spark_jobs.") for e in ENTRY_POINTS)
    assert any(e.module.startswith("models.") for e in ENTRY_POINTS)


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=[e.label for e in ENTRY_POINTS])
def test_entry_point_exists_and_takes_the_dags_arguments(entry: EntryPoint) -> None:
    from reelrec.settings import Settings

    module = importlib.import_module(entry.module)
    function = getattr(module, entry.function, None)
    assert callable(function), f"{entry.where}: {entry} is not a callable in {module.__file__}"
    # The DAG passes its arguments, then the settings: the signature must accept exactly that.
    signature = inspect.signature(function)
    try:
        signature.bind(*entry.args, Settings.from_env())
    except TypeError as err:
        pytest.fail(f"{entry.where}: {entry}{signature} cannot be called as {entry.label} + settings: {err}")


@pytest.mark.parametrize("module, name, where", TASK_IMPORTS, ids=[f"{m}:{n}" for m, n, _ in TASK_IMPORTS])
def test_names_a_task_imports_exist(module: str, name: str, where: str) -> None:
    imported = importlib.import_module(module)
    assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}") is not None, (
        f"{where}: {module} has no {name}"
    )
