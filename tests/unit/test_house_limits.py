"""The limits that keep the code easy to change, checked in the fast tier (`make check`): no module
of the product over 400 lines, no function over 60, no import cycle between product modules.
Each offender is named with its size, so the change that crosses a limit fails here, not in a
review; when one does, split by job first (DESIGN.md's layout).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from tests.support import ROOT

PRODUCT = ("events", "pipelines", "functions", "main.py")  # what ships or runs: not tests/, bench/
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60  # from its `def` line to its last, docstring included


def product_modules(root: Path = ROOT) -> list[Path]:
    found: list[Path] = []
    for name in PRODUCT:
        path = root / name
        found += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return found


def long_modules(paths: Iterable[Path], root: Path = ROOT) -> list[str]:
    """`path: N lines` for each module over MAX_MODULE_LINES (lines as `wc -l` counts them)."""
    sizes = {path: path.read_text().count("\n") for path in paths}
    return [f"{path.relative_to(root)}: {n} lines" for path, n in sizes.items() if n > MAX_MODULE_LINES]


def long_functions(paths: Iterable[Path], root: Path = ROOT) -> list[str]:
    """`path:line name: N lines` for each function or method (nested ones too) over MAX_FUNCTION_LINES."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}: {size} lines")
    return found


def cycles(imports: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing
    itself): each a cycle of imports. Tarjan's algorithm, iterative (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(imports):
        if start in index:
            continue
        work = [(start, iter(sorted(imports.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(imports.get(target, ())))))
                elif target in on_stack:
                    low[module] = min(low[module], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1 or module in imports.get(module, ()):
                    found.append(sorted(component))
    return found


def test_no_product_module_is_over_the_limit() -> None:
    offenders = long_modules(product_modules())
    assert not offenders, f"over {MAX_MODULE_LINES} lines, split by job:\n" + "\n".join(offenders)


def test_no_function_is_over_the_limit() -> None:
    offenders = long_functions(product_modules())
    assert not offenders, f"over {MAX_FUNCTION_LINES} lines, split it:\n" + "\n".join(offenders)


def test_no_product_modules_import_each_other_in_a_cycle() -> None:
    """Every import counts, a function's lazy one too (grimp, which import-linter reads with)."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("events", "pipelines", "functions", include_external_packages=False)
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    found = cycles(imports)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(cycle) for cycle in found)


def test_the_checks_name_each_offender_with_its_size(tmp_path: Path) -> None:
    """The checks can fail: a module one line over, a function one line over, a cycle of three."""
    (tmp_path / "events").mkdir()
    module = tmp_path / "events" / "big.py"
    body = "\n".join(f"    x{n} = {n}" for n in range(MAX_FUNCTION_LINES - 1))
    module.write_text(f"def long():\n{body}\n" + "\n" * (MAX_MODULE_LINES - MAX_FUNCTION_LINES + 1))
    (tmp_path / "events" / "small.py").write_text("def short():\n    return 1\n")
    paths = product_modules(tmp_path)
    assert long_modules(paths, tmp_path) == [f"events/big.py: {MAX_MODULE_LINES + 1} lines"]
    assert long_functions(paths, tmp_path) == [], "exactly at the limit"
    module.write_text(f"def long():\n{body}\n    return 0\n")
    assert long_functions(paths, tmp_path) == [f"events/big.py:1 long: {MAX_FUNCTION_LINES + 1} lines"]
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert cycles({"a": ["a"]}) == [["a"]]
    assert cycles({"a": ["b"], "b": []}) == []
