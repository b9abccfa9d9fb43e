"""The arrows between the packages, and no import cycle between modules.

- ``fxdsp`` (the effects library) imports only torch, numpy, numba and the standard library.
- ``fxdata`` may import ``fxdsp``, never the reverse.
- The libraries (fxdsp, fxdata, fxencoder, cloner) never import the application layer
  (``mixfx``) or the scripts (``experiments``); ``mixfx`` is installed without ``experiments``,
  so it never imports it either.
- No import cycle between the project's modules.

Checked twice: statically (every ``import`` statement of every file, lazy imports inside
functions and ``TYPE_CHECKING`` blocks included, parsed with ``ast``) and dynamically (each
package and all its submodules imported in a fresh interpreter, then ``sys.modules`` read).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("fxdsp", "fxdata", "fxencoder", "cloner")
APPLICATIONS = ("mixfx", "experiments")
PACKAGES = LIBRARIES + APPLICATIONS
STDLIB = frozenset(sys.stdlib_module_names)

#: Top-level packages each package may import besides the standard library and itself.
ALLOWED: dict[str, frozenset[str] | None] = {
    "fxdsp": frozenset({"torch", "numpy", "numba"}),
    "fxdata": None,  # anything but the forbidden below (soundfile, mido, tqdm, ...)
    "fxencoder": None,
    "cloner": None,
    "mixfx": None,
    "experiments": None,
}
#: Top-level packages each package must never import.
FORBIDDEN: dict[str, frozenset[str]] = {
    "fxdsp": frozenset({"fxdata", "fxencoder", "cloner", "mixfx", "experiments"}),
    "fxdata": frozenset({"fxencoder", "cloner", "mixfx", "experiments"}),
    "fxencoder": frozenset({"mixfx", "experiments"}),
    "cloner": frozenset({"mixfx", "experiments"}),
    "mixfx": frozenset({"experiments"}),
    "experiments": frozenset(),
}
#: The known exceptions to ALLOWED, each (module, imported package): only lazily, inside the
#: function that needs it, so that importing the module never loads the package.
LAZY_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset(
    {
        # ChainConfig YAML files (from_yaml/to_yaml) need PyYAML, an optional package: it is
        # imported inside those methods only (the dynamic test below checks it is not loaded).
        ("fxdsp.config", "yaml"),
    }
)
#: Optional packages (extras) that importing fxdsp must not pull in, even through a dependency.
FXDSP_NEVER_LOADS = frozenset(
    {"soundfile", "scipy", "matplotlib", "tqdm", "yaml", "pyloudnorm", "tensorboard", "mido"}
)


@dataclass(frozen=True)
class Import:
    """One imported module name, where it is written, and whether it only serves type checking."""

    source: str  # the importing module
    target: str  # the imported module (``from a import b`` gives ``a.b``; resolved later)
    line: int
    type_checking: bool
    lazy: bool  # inside a function: runs only when the function is called


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def scan(path: Path, module: str) -> list[Import]:
    """Every import statement of ``path`` (relative imports resolved), with its context."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, type_checking: bool, lazy: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True, lazy)
            for child in node.orelse:
                visit(child, type_checking, lazy)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lazy = True
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, alias.name, node.lineno, type_checking, lazy))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            for alias in node.names:
                target = stem if alias.name == "*" else f"{stem}.{alias.name}"
                found.append(Import(module, target, node.lineno, type_checking, lazy))
        for child in ast.iter_child_nodes(node):
            visit(child, type_checking, lazy)

    visit(tree, False, False)
    return found


MODULES = project_modules()
IMPORTS = {name: scan(path, name) for name, path in MODULES.items()}


def resolve(target: str) -> str | None:
    """The project module an import loads: the longest known prefix of ``target``.

    ``from fxdsp import functional`` loads ``fxdsp.functional``; ``from fxdsp import Gain``
    loads ``fxdsp`` (its ``__init__``). Outside the project: None.
    """
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in MODULES:
            return name
    return None


def test_the_scan_sees_the_project() -> None:
    """The scan is not vacuous: it finds the packages and their known imports."""
    assert {"fxdsp", "fxdata", "mixfx", "mixfx.cli", "fxdsp.normalize"} <= set(MODULES)
    targets = {i.target for i in IMPORTS["fxdsp.normalize"]}
    assert "torch.nn" in targets and "fxdsp.fxnorm_stats.FxNormStats" in targets
    lazy = {i.target for i in IMPORTS["mixfx.commands.demo"]}
    assert "mixfx.demo.run_demo" in lazy  # an import inside a function counts


@pytest.mark.parametrize("package", PACKAGES)
def test_static_imports_follow_the_arrows(package: str) -> None:
    allowed = ALLOWED[package]
    bad = []
    for module, imports in IMPORTS.items():
        if module.split(".")[0] != package:
            continue
        for imp in imports:
            top = imp.target.split(".")[0]
            if top in (package, "__future__") or top in STDLIB:
                continue
            if imp.lazy and (module, top) in LAZY_EXCEPTIONS:
                continue
            if top in FORBIDDEN[package] or (allowed is not None and top not in allowed):
                bad.append(f"{MODULES[module].relative_to(ROOT)}:{imp.line} imports {imp.target}")
    assert not bad, f"{package} may not import these:\n" + "\n".join(bad)


_IMPORT_ALL = r"""
import importlib, json, pkgutil, sys
package = sys.argv[1]
preload = sys.argv[2].split(",") if sys.argv[2] else []
for name in preload:
    importlib.import_module(name)
before = set(sys.modules)
root = importlib.import_module(package)
errors = {}
for info in pkgutil.walk_packages(root.__path__, package + "."):
    if info.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except ImportError as err:  # an optional package that is missing here: reported
        errors[info.name] = repr(err)
new = sorted({m.split(".")[0] for m in set(sys.modules) - before})
print(json.dumps({"new": new, "errors": errors, "files": {
    m: getattr(sys.modules[m], "__file__", None) for m in (package,)}}))
"""


def import_all(package: str, preload: tuple[str, ...] = ()) -> dict[str, object]:
    """Import ``package`` and all its submodules in a fresh interpreter, outside the repo."""
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, package, ",".join(preload)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_fxdsp_loads_only_torch_numpy_numba_and_the_standard_library() -> None:
    # torch, numpy and numba are loaded first: what they bring along is theirs, not fxdsp's.
    result = import_all("fxdsp", preload=("torch", "numpy", "numba"))
    assert result["errors"] == {}
    new = set(result["new"])  # type: ignore[arg-type]
    assert not new & (FXDSP_NEVER_LOADS | FORBIDDEN["fxdsp"]), sorted(new)
    assert new - STDLIB == {"fxdsp"}, sorted(new - STDLIB)


@pytest.mark.parametrize("package", ["fxdata", "fxencoder", "cloner"])
def test_libraries_never_load_the_application_layer(package: str) -> None:
    result = import_all(package)
    new = set(result["new"])  # type: ignore[arg-type]
    assert not new & FORBIDDEN[package], sorted(new & FORBIDDEN[package])
    assert result["errors"] == {}, result["errors"]


def test_mixfx_never_loads_experiments() -> None:
    result = import_all("mixfx")
    assert "experiments" not in result["new"]  # type: ignore[operator]
    assert result["errors"] == {}, result["errors"]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), or self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def module_graph() -> dict[str, set[str]]:
    """Who imports whom among the project's modules, at run time.

    Lazy imports inside functions count (they run, and hide a cycle rather than remove it);
    imports under ``if TYPE_CHECKING:`` do not (they never run). Importing ``a.b.c`` also runs
    the ``__init__`` of ``a`` and ``a.b``; those implicit edges are left out, since every
    package whose ``__init__`` re-exports a submodule would otherwise be a cycle.
    """
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for module, imports in IMPORTS.items():
        for imp in imports:
            if imp.type_checking:
                continue
            target = resolve(imp.target)
            if target is not None and target != module:
                graph[module].add(target)
    return graph


def test_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _cycles(graph) == [["a", "b", "c"], ["e"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    cycles = _cycles(module_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)
