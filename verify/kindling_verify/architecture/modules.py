"""Which module of the service imports which, at two levels.

Submodules: every file is a module, named by its path (`routes/openapi.rs` is
`routes::openapi`, `routes/mod.rs` is `routes`; lib.rs and main.rs are the crate's roots, not
modules). This level shows a circle inside one directory, such as `routes::openapi` importing
the handlers while they import its shared responses. An import between a module and one of
its ancestors is left out: a parent declares its children and a child uses its parent's items,
which is how Rust nests modules, not a circle to untangle.

Top level: the same imports grouped by the file or directory directly under src/, the unit
docs/architecture.md talks about.

The service is two crates, `kindling` (src/) and `kindling-core` (core/src/), and src/lib.rs
re-exports every module of core under its own name, so `crate::db` in src/ is core's `db`:
the graph is taken over both source trees as one.

An import is every path of a `use` tree (groups, nested groups, `self`, `as`, `pub use`,
spread over lines) and every `crate::`, `super::` or `self::` path elsewhere in the code
(expressions, attributes); comments are skipped. A path counts for the longest module it
names (`crate::routes::responses::BAD_ID` is `routes::responses`). `super::` is taken from
the file's module, so inside an inline `mod tests` it points one level too high: at an
ancestor, which is left out anyway.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

USE = re.compile(r"\buse\s+([^;]+);")
PATH_IN_CODE = re.compile(r"\b(?:crate|super|self)(?:::\w+)+")
RENAME = re.compile(r"\s+as\s+\w+")
ROOTS = {"lib", "main"}

Segments = tuple[str, ...]


def strip_comments(text: str) -> str:
    """Drops `//` comments (doc comments included); string literals holding `//` are rare
    enough here that a false negative inside one is harmless."""
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def module_path(src: Path, file: Path) -> str | None:
    """`routes/openapi.rs` -> `routes::openapi`, `routes/mod.rs` -> `routes`, roots -> None."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return None if parts[0] in ROOTS else "::".join(parts)


def split_group(group: str) -> list[str]:
    """The items of a `{...}` group's inside, split at its own commas, not its nested groups'."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(group):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(group[start:i])
            start = i + 1
    items.append(group[start:])
    return [item for item in items if item]


def use_paths(tree: str, prefix: Segments = ()) -> Iterator[Segments]:
    """Every path a `use` tree names: `crate::{db, routes::{self, items as i}}` gives
    crate::db, crate::routes and crate::routes::items."""
    tree = re.sub(r"\s+", "", RENAME.sub("", tree))
    head, brace, rest = tree.partition("{")
    path = prefix + tuple(part for part in head.split("::") if part)
    if not brace:
        yield path[:-1] if path[-1] == "self" else path
        return
    for item in split_group(rest.removesuffix("}")):
        yield from use_paths(item, path)


def imports(text: str) -> Iterator[Segments]:
    """The paths a file's code names, its own crate's or not."""
    code = strip_comments(text)
    for tree in USE.findall(code):
        yield from use_paths(tree)
    for path in PATH_IN_CODE.findall(USE.sub("", code)):
        yield tuple(path.split("::"))


def resolve(path: Segments, here: Segments) -> Segments | None:
    """The path from the crate's root, or None if it starts in another crate (std::, rocket::)."""
    if path[0] == "crate":
        return path[1:]
    if path[0] not in ("self", "super"):
        return None
    while path and path[0] in ("self", "super"):
        here = here[:-1] if path[0] == "super" else here
        path = path[1:]
    return here + path


def owner(path: Segments, modules: set[str]) -> str | None:
    """The longest module that `path` names, if any."""
    for n in range(len(path), 0, -1):
        if (name := "::".join(path[:n])) in modules:
            return name
    return None


def ancestor_or_descendant(a: str, b: str) -> bool:
    """Whether one module is the other or contains it (either way round)."""
    return a == b or a.startswith(b + "::") or b.startswith(a + "::")


def submodule_graph(*srcs: Path) -> dict[str, set[str]]:
    """module -> the modules it imports other than its ancestors and descendants, every file a
    module, over one or more src/ directories."""
    files = [(module_path(src, f), f) for src in srcs for f in sorted(src.rglob("*.rs"))]
    modules = {here for here, _ in files if here}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for here, file in files:
        if here is None:
            continue
        for path in imports(file.read_text()):
            absolute = resolve(path, tuple(here.split("::")))
            used = owner(absolute, modules) if absolute else None
            if used and not ancestor_or_descendant(here, used):
                edges[here].add(used)
    return edges


def graph(*srcs: Path) -> dict[str, set[str]]:
    """top-level module -> the other top-level modules it imports."""
    edges: dict[str, set[str]] = {}
    for module, used in submodule_graph(*srcs).items():
        top = module.split("::")[0]
        edges.setdefault(top, set()).update(u.split("::")[0] for u in used)
        edges[top].discard(top)
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
    srcs = list(map(Path, argv[1:])) if len(argv) > 1 else [Path("src"), Path("core/src")]
    problems = 0
    for level, edges in (("top level", graph(*srcs)), ("submodules", submodule_graph(*srcs))):
        print(f"{level}:")
        for module in sorted(edges):
            print(f"  {module} -> {', '.join(sorted(edges[module])) or '(nothing)'}")
        for cycle in cycles(edges):
            print(f"  cycle: {' <-> '.join(cycle)}")
            problems += 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
