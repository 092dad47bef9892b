"""No import cycle anywhere in lb/, module by module.

`lint-imports` (pyproject.toml, make lint) holds the layers and, with its acyclic_siblings
contract, cycles between siblings of one package. What it does not see is a package's
`__init__` and one of its own modules importing each other (the lb.sched <-> scheduler cycle
the registry module untied): that is a parent and a child, not siblings. This test takes the
whole module graph (grimp, which import-linter is built on; imports under TYPE_CHECKING and
inside functions included) and asserts it has no strongly connected component of two or more
modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

import grimp


def cycles(imports: Mapping[str, Set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or around a loop (Tarjan's strongly
    connected components of two or more; iterative, so a deep import chain cannot hit the
    recursion limit). Each group sorted, groups sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(imports):
        if root in index:
            continue
        work = [(root, iter(sorted(imports.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return sorted(found)


def test_cycles_finds_loops_of_any_length_and_nothing_else() -> None:
    imports = {
        "a": {"b"}, "b": {"a"},  # two modules importing each other
        "p": {"p.x"}, "p.x": {"p.y"}, "p.y": {"p"},  # a package's __init__ around its children
        "c": {"d"}, "d": {"e"}, "e": set(),  # a chain: no cycle
        "f": {"f"},  # a module importing itself is not a cycle between modules
    }
    assert cycles(imports) == [["a", "b"], ["p", "p.x", "p.y"]]


def test_lb_has_no_import_cycle() -> None:
    graph = grimp.build_graph("lb", cache_dir=None)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    assert cycles(imports) == []


def test_every_top_level_part_of_lb_has_a_layer() -> None:
    """A package or module added under lb/ but named in no layer would be checked by nothing: the
    layers contract must place it (docs/design.md, "Layers")."""
    import tomllib
    from pathlib import Path

    import lb

    root = Path(lb.__file__).parent
    pyproject = tomllib.loads((root.parent / "pyproject.toml").read_text())
    contracts = pyproject["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    placed = {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}
    parts = {f"lb.{p.stem}" for p in root.glob("*.py") if p.stem != "__init__"}
    parts |= {f"lb.{p.parent.name}" for p in root.glob("*/__init__.py")}
    assert parts - placed == set()
    assert placed - parts == set()  # and no layer names a part that is gone
