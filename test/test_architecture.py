# Copyright 2026 The vad4space_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Architecture rules of the package, checked statically with ``ast`` (nothing is imported).

- no import cycles between the package's modules (module-level and function-level imports both
  count; imports under ``if TYPE_CHECKING:`` do not run and are ignored);
- no module over ``MAX_LINES`` lines (not counting the license header);
- the onboard runtime (``vad4space_ros/deploy``) imports no training stack at module level,
  neither directly nor through another module of the package.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = 'vad4space_ros'
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE
MAX_LINES = 400
DEPLOY_FORBIDDEN = ('torch', 'torchvision', 'anomalib', 'lightning', 'timm', 'scipy', 'sklearn',
                    f'{PACKAGE}.models', f'{PACKAGE}.training', f'{PACKAGE}.evaluation')


@dataclass(frozen=True)
class Import:
    """One imported module name, where it appears and whether it runs at import time."""

    target: str
    line: int
    module_level: bool


def module_name(path: Path) -> str:
    """Return the dotted module name of a file of the package (``pkg/__init__.py`` -> ``pkg``)."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def package_modules() -> dict[str, Path]:
    """Return every module of the package: dotted name -> file."""
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob('*.py'))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or (
        isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING')


def _resolve_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ''
    base = module.split('.') if is_package else module.split('.')[:-1]
    base = base[:len(base) - (node.level - 1)]
    return '.'.join(base + ([node.module] if node.module else []))


def imports_of(path: Path, modules: dict[str, Path], text: str | None = None) -> list[Import]:
    """Return the imports of a file (or of ``text`` as that file); submodules by their name."""
    module = module_name(path)
    is_package = path.name == '__init__.py'
    found: list[Import] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, module_level)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, module_level) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_from(node, module, is_package)
            for alias in node.names:
                candidate = f'{source}.{alias.name}'
                found.append(Import(candidate if candidate in modules else source, node.lineno,
                                    module_level))
        inside_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, module_level and not inside_function)

    visit(ast.parse(path.read_text() if text is None else text, filename=str(path)), True)
    return found


def internal_target(name: str, modules: dict[str, Path]) -> str | None:
    """Return the package module an import name refers to (its longest known prefix), if any."""
    parts = name.split('.')
    while parts:
        candidate = '.'.join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(module_level_only: bool = False) -> dict[str, dict[str, int]]:
    """Return module -> {imported package module: first line}."""
    modules = package_modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for item in imports_of(path, modules):
            target = internal_target(item.target, modules)
            if target and target != name and (item.module_level or not module_level_only):
                edges.setdefault(target, item.line)
        graph[name] = edges
    return graph


def tangled_components(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Return the strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(components)


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Return one cycle through each tangled component."""
    return [_cycle_in(component, graph) for component in tangled_components(graph)]


def _cycle_in(component: list[str], graph: dict[str, dict[str, int]]) -> list[str]:
    """Return a closed path through the first module of a strongly connected component."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    return paths[node] + [start]
                if target in members and target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    raise AssertionError(f'{component} is not strongly connected')


def describe_cycle(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    """Format a cycle as ``a (line n) -> b (line m) -> a``."""
    steps = [f'{source} (line {graph[source][target]})'
             for source, target in zip(cycle, cycle[1:])]
    return ' -> '.join(steps + [cycle[-1]])


def test_find_cycles_reports_a_cycle_and_ignores_a_chain() -> None:
    graph = {'a': {'b': 1}, 'b': {'c': 2}, 'c': {'a': 3}, 'd': {'a': 4}}
    assert find_cycles(graph) == [['a', 'b', 'c', 'a']]
    assert find_cycles({'a': {'b': 1}, 'b': {}}) == []


def test_imports_of_resolves_relative_submodule_and_function_level_imports() -> None:
    path = PACKAGE_DIR / 'nodes' / 'probe.py'  # not a file: its text is given below
    text = ('from . import parameters\n'
            'from .ros_conversions import stamp_to_ns\n'
            'if TYPE_CHECKING:\n    import torch\n'
            'def f():\n    from vad4space_ros.models import backbones\n')
    assert module_name(path) == f'{PACKAGE}.nodes.probe'
    items = imports_of(path, package_modules(), text)
    assert [(i.target, i.module_level) for i in items] == [
        (f'{PACKAGE}.nodes.parameters', True), (f'{PACKAGE}.nodes.ros_conversions', True),
        (f'{PACKAGE}.models.backbones', False)]


def test_no_import_cycles() -> None:
    graph = import_graph()
    components = tangled_components(graph)
    report = '\n'.join(
        f'{describe_cycle(_cycle_in(component, graph), graph)}'
        + (f'\n  (one tangle of {len(component)} modules: {", ".join(component)})'
           if len(component) > 2 else '')
        for component in components)
    print(report)
    assert not components, f'{len(components)} import cycle(s):\n{report}'


def lines_after_license(text: str) -> int:
    """Count a module's lines after its leading comment block (the license header)."""
    lines = text.splitlines()
    start = 0
    while start < len(lines) and (lines[start].startswith('#') or not lines[start].strip()):
        start += 1
    return len(lines) - start


def test_no_module_over_the_line_limit() -> None:
    too_long = {name: lines_after_license(path.read_text())
                for name, path in package_modules().items()}
    too_long = {name: lines for name, lines in too_long.items() if lines > MAX_LINES}
    listing = '\n'.join(f'{name}: {lines} lines' for name, lines in sorted(too_long.items()))
    print(listing)
    assert not too_long, f'modules over {MAX_LINES} lines:\n{listing}'


def _forbidden(name: str) -> str | None:
    for prefix in DEPLOY_FORBIDDEN:
        if name == prefix or name.startswith(prefix + '.'):
            return prefix
    return None


def _parents(name: str) -> list[str]:
    """Return the packages whose ``__init__`` runs before ``name`` (outermost first)."""
    parts = name.split('.')
    return ['.'.join(parts[:end]) for end in range(1, len(parts))]


def deploy_violations() -> list[str]:
    """Return each forbidden module-level import reachable from a deploy module, with its path."""
    modules = package_modules()
    direct = {name: [item for item in imports_of(path, modules) if item.module_level]
              for name, path in modules.items()}
    violations = []
    for start in sorted(name for name in modules if name.startswith(f'{PACKAGE}.deploy')):
        chains = {start: [start]}
        queue = [start]
        while queue:
            current = queue.pop(0)
            for item in direct[current]:
                where = f'{current}:{item.line} imports {item.target}'
                if _forbidden(item.target):
                    violations.append(' -> '.join(chains[current][1:] + [where]))
                    continue
                target = internal_target(item.target, modules)
                for step in ([] if target is None else _parents(target) + [target]):
                    if step in modules and step not in chains:
                        chains[step] = chains[current] + [where]
                        queue.append(step)
    return sorted(set(violations))


def test_deploy_imports_no_training_stack_at_module_level() -> None:
    violations = deploy_violations()
    listing = '\n'.join(violations)
    print(listing)
    assert not violations, ('vad4space_ros/deploy reaches forbidden modules at import time:\n'
                            + listing)


@pytest.mark.parametrize('forbidden', ['torch', 'scipy.ndimage', f'{PACKAGE}.models.methods'])
def test_forbidden_prefixes_match_submodules(forbidden: str) -> None:
    assert _forbidden(forbidden)
    assert _forbidden('torchmetrics_like_name') is None
