"""The tree's layers, read from the source: ``explainers`` is pure computation (nothing
from ``explainer``, no I/O library), the packages import each other without cycles, and
every third-party import is a declared dependency of the extra that needs it."""

from __future__ import annotations

import ast
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("explainer", "explainers")
# Libraries that talk to the outside world: none of them belongs in the explainers.
IO_MODULES = {
    "aiohttp", "asyncio", "socket", "ssl", "http", "urllib", "requests", "grpc",
    "tritonclient", "fsspec", "s3fs", "botocore", "aiobotocore", "pyarrow", "pandas",
    "os", "io", "pathlib", "subprocess", "shutil", "tempfile", "orjson", "json", "csv",
    "logging", "threading", "concurrent", "joblib", "pickle",
}  # fmt: skip
# Modules whose imports may come from the batch extra (they run only under `explainer batch`
# or `explainer report`, after the CLI checked the extra is installed).
BATCH_ONLY = ("explainer.batch", "explainer.predictor.local", "explainer.cli.batch")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {
        module_name(path): ast.parse(path.read_text(), str(path))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imports(tree: ast.Module, name: str) -> list[tuple[str, bool]]:
    """(module imported, at module level?) for every import in ``tree``, wherever it is."""
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in top))
            found += [(f"{node.module}.{alias.name}", id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{name}: relative import; use absolute imports")
    return found


SOURCES = modules()


def test_explainers_import_nothing_from_explainer_and_no_io_library() -> None:
    offending = [
        (name, imported)
        for name, tree in SOURCES.items()
        if name.startswith("explainers")
        for imported, _ in imports(tree, name)
        if imported.split(".")[0] == "explainer" or imported.split(".")[0] in IO_MODULES
    ]
    assert offending == []


def test_the_packages_import_each_other_without_cycles() -> None:
    graph: dict[str, set[str]] = {name: set() for name in SOURCES}
    for name, tree in SOURCES.items():
        for imported, _ in imports(tree, name):
            if imported in SOURCES and imported != name and not name.startswith(imported + "."):
                graph[name].add(imported)
    assert graph["explainer.engine"], "the graph was read"
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {Requirement(r).name.lower().replace("_", "-") for r in requirements}

    extras = {extra: names(reqs) for extra, reqs in project["optional-dependencies"].items()}
    return names(project["dependencies"]), extras


@cache
def provided() -> dict[str, list[str]]:
    return packages_distributions()


def distributions(module: str) -> set[str]:
    top = module.split(".")[0]
    return {d.lower().replace("_", "-") for d in provided().get(top, [])}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_import_is_a_declared_dependency_of_what_needs_it(name: str) -> None:
    core, extras = declared()
    batch = core | extras["batch"]
    for imported, at_top in imports(SOURCES[name], name):
        top = imported.split(".")[0]
        if top in PACKAGES or top in sys.stdlib_module_names or top == "__future__":
            continue
        dists = distributions(imported)
        assert dists, f"{name} imports {imported}, which no installed distribution provides"
        batch_only = name.startswith(BATCH_ONLY) or not at_top
        allowed = batch if batch_only else core
        assert dists & allowed, (
            f"{name} imports {top} ({', '.join(sorted(dists))}): declare it in "
            f"pyproject.toml's {'batch extra' if batch_only else 'dependencies'}"
        )
