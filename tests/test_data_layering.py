"""fxdata's module layering: no import cycle, one definition of the stem names."""

from __future__ import annotations

import ast
from pathlib import Path

import fxdsp.registry

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at top level or inside functions (lazy imports count)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def _graph(package: str) -> dict[str, set[str]]:
    modules = {f"{package}.{p.stem}": p for p in (ROOT / package).glob("*.py")}
    return {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}


def test_fxdata_modules_import_each_other_without_a_cycle() -> None:
    graph = _graph("fxdata")
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            assert state.get(dep) != 1, f"import cycle: {' -> '.join([*path, module, dep])}"
            if dep not in state:
                visit(dep, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    # The two that used to import each other: the pack sits below the segment datasets.
    assert "fxdata.datasets" not in graph["fxdata.pack"]
    assert "fxdata.pack" in graph["fxdata.datasets"]


def test_fxdsp_library_never_imports_fxdata() -> None:
    for path in sorted((ROOT / "fxdsp").rglob("*.py")):
        bad = sorted(i for i in _imports(path) if i == "fxdata" or i.startswith("fxdata."))
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_stem_names_have_one_definition() -> None:
    import fxdata
    import fxdata.datasets
    import fxdata.midi
    import fxdata.pack
    import fxdata.tracks

    for module in (fxdata.datasets, fxdata.midi, fxdata.pack, fxdata.tracks):
        assert module.STEMS is fxdsp.registry.STEMS, module.__name__
    assert fxdata.STEMS is fxdsp.registry.STEMS
    for path in sorted((ROOT / "fxdata").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assigned = [
            node
            for node in tree.body
            if isinstance(node, (ast.Assign, ast.AnnAssign))
            and any(
                isinstance(t, ast.Name) and t.id == "STEMS"
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            )
        ]
        assert not assigned, f"{path.name} defines STEMS itself"
