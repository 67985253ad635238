"""Which top-level module of the service imports which.

A module is a file or directory directly under a crate's src/ (lib.rs and main.rs are the
crate's roots, not modules). The service is two crates, `kindling` (src/) and
`kindling-core` (core/src/), and src/lib.rs re-exports every module of core under its own
name, so `crate::db` in src/ is core's `db`: the graph is taken over both source trees as
one. An import is a `crate::name` path in code (comments are skipped); `super::` stays
inside its module. Enough for this repository's style, where every cross-module use is
spelled `crate::module::…`.
"""

from __future__ import annotations

import re
import sys
from itertools import combinations
from pathlib import Path

CRATE_PATH = re.compile(r"\bcrate::(\w+)")
ROOTS = {"lib", "main"}


def strip_comments(text: str) -> str:
    """Drops `//` comments (doc comments included); string literals holding `//` are rare
    enough here that a false negative inside one is harmless."""
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def module_of(src: Path, file: Path) -> str | None:
    first = file.relative_to(src).parts[0]
    name = first.removesuffix(".rs")
    return None if name in ROOTS else name


def graph(*srcs: Path) -> dict[str, set[str]]:
    """module -> the other modules it imports, over one or more src/ directories."""
    files = [(src, f) for src in srcs for f in sorted(src.rglob("*.rs"))]
    modules = {m for src, f in files if (m := module_of(src, f))}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for src, file in files:
        here = module_of(src, file)
        if here is None:
            continue
        for used in CRATE_PATH.findall(strip_comments(file.read_text())):
            if used in modules and used != here:
                edges[here].add(used)
    return edges


def mutual_imports(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    return [(a, b) for a, b in combinations(sorted(edges), 2) if b in edges[a] and a in edges[b]]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle's modules, one list per strongly connected component of more than one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main(argv: list[str]) -> int:
    edges = graph(*(map(Path, argv[1:]) if len(argv) > 1 else [Path("src"), Path("core/src")]))
    for module in sorted(edges):
        print(f"{module} -> {', '.join(sorted(edges[module])) or '(nothing)'}")
    problems = cycles(edges)
    for cycle in problems:
        print(f"cycle: {' <-> '.join(cycle)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
