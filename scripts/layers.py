#!/usr/bin/env python3
"""Checks the agent's module layers: prints the graph of its top-level modules (who names whom through
`crate::`), and fails if two modules depend on each other through any path (a cycle), if anything
below the command-line layer names `cli`, if the pure core (model, plan, token, shard, escape, ecs/sign, and the
import renderer adopt/render) names a clock,
the environment, the file system or the network, or if ARCHITECTURE.md's module map and the tree of
`src/` differ. Run from anywhere: `python3 scripts/layers.py`.

Comments are ignored; `use super::` stays inside one folder and is not an edge. Modules inside one
folder may use each other ("helpers inside one folder aside"); only the top-level rooms are checked.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
# The pure core: time, randomness and credentials are its arguments.
PURE = [
    "model.rs",
    "plan.rs",
    "token.rs",
    "shard.rs",
    "escape.rs",
    "ecs/sign.rs",
    "adopt/render.rs",
    "isolation/model.rs",
    "isolation/ranges.rs",
]
IMPURE = re.compile(
    r"\b(tokio|reqwest|std::fs|std::env|std::net|SystemTime|Instant::now|Utc::now|Local::now|fastrand|uuid)\b"
)
# The binary and the crate root wire everything together; they are above every module.
ROOTS = {"main", "lib"}


def room(path: pathlib.Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def code_of(text: str) -> str:
    # Drop line comments (doc comments included); string literals naming crate:: paths are rare enough.
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def graph() -> dict:
    edges: dict = {}
    for path in sorted(SRC.rglob("*.rs")):
        here = room(path)
        if here == "sim":
            continue
        text = code_of(path.read_text())
        used = set(re.findall(r"\bcrate::([a-z_]+)", text))
        if here in ROOTS:
            used |= set(re.findall(r"\bsgpolicy::([a-z_]+)", text))
        edges.setdefault(here, set()).update(u for u in used if u != here)
    return edges


def cycles(edges: dict) -> list:
    """Strongly connected components with more than one room (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def impure() -> list:
    out = []
    for rel in PURE:
        for n, line in enumerate(code_of((SRC / rel).read_text()).splitlines(), 1):
            m = IMPURE.search(line)
            if m:
                out.append(f"src/{rel}:{n}: the pure core names {m.group(1)}")
    return out


def module_map() -> list:
    """Every `src/...rs` path in ARCHITECTURE.md's module map exists, and every file is in it."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text.split("## Module map", 1)[-1].split("\n## ", 1)[0]
    named = set(re.findall(r"`src/([a-z_/]+\.rs)`", section))
    files = {str(p.relative_to(SRC)) for p in SRC.rglob("*.rs")}
    out = [f"ARCHITECTURE.md names src/{f}, which does not exist" for f in sorted(named - files)]
    out += [f"src/{f} is missing from ARCHITECTURE.md's module map" for f in sorted(files - named)]
    return out


def main() -> int:
    edges = graph()
    for room_name in sorted(edges):
        print(f"{room_name:12} -> {', '.join(sorted(edges[room_name])) or '-'}")
    problems = [f"cycle: {' <-> '.join(c)}" for c in cycles(edges)]
    problems += [
        f"{r} imports cli (only main and cli itself may)"
        for r, used in sorted(edges.items())
        if "cli" in used and r not in ROOTS | {"cli"}
    ]
    problems += impure() + module_map()
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    print(f"{len(edges)} modules, {len(cycles(edges))} cycles")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
