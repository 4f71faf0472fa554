#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a circle.

Draws each crate's module graph from its `use crate::...`, `use super::...`
and `use self::...` lines and the `crate::`/`super::` paths written out in
its code (test modules and comments left out), plus an edge from each
folder module to the children it declares, and prints every strongly
connected set of more than one module, with the edges inside it. A child's
use of its own ancestors (a trait its mod.rs declares for its children) is
not an edge. Modules
import down the medallion and never in a circle (README, "Repository"):
when two modules need the same thing, it moves to the lower one or to a
small module of its own.

Usage: scripts/module-cycles-test.py [CRATE_SRC ...]
       (default: records/src pipeline/src api/src tests/src)
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["records/src", "pipeline/src", "api/src", "tests/src"]


def modules(src):
    """Module path (a::b) -> file, for every .rs file under src."""
    found = {}
    for folder, _, files in os.walk(src):
        for name in files:
            if name.endswith(".rs"):
                parts = os.path.relpath(os.path.join(folder, name), src)[:-3].split(os.sep)
                if parts[-1] in ("mod", "lib", "main"):
                    parts = parts[:-1]
                found["::".join(parts)] = os.path.join(folder, name)
    return found


def use_targets(text):
    """The crate-relative paths text names: its `use` lines, braces
    expanded, and paths written out in code (`crate::routes::COLD_READS`)."""
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    uses = re.findall(r"\buse\s+((?:crate|super|self)\b[^;]*);", text)
    for use in uses:
        yield from expand(re.sub(r"\s+", "", use))
    code = re.sub(r"\buse\s+[^;]*;", "", text)
    yield from re.findall(r"\b(?:crate|super)(?:::super)*(?:::[A-Za-z_][A-Za-z0-9_]*)+", code)


def expand(path):
    match = re.match(r"(.*?)::\{(.*)\}$", path)
    if not match:
        yield path.split(" as ")[0]
        return
    prefix, depth, item = match.group(1), 0, ""
    for ch in match.group(2) + ",":
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            if item:
                yield from expand(prefix if item == "self" else f"{prefix}::{item}")
            item = ""
        else:
            item += ch


def resolve(known, module, path):
    """The longest known module the path names, from inside `module`."""
    segments = path.split("::")
    here = module.split("::") if module else []
    if segments[0] == "crate":
        base, segments = [], segments[1:]
    elif segments[0] == "self":
        base, segments = here, segments[1:]
    else:  # super: the parent of a file module and of a folder's mod.rs alike
        base, segments = here[:-1], segments[1:]
        while segments and segments[0] == "super":
            base, segments = base[:-1], segments[1:]
    for n in range(len(segments), -1, -1):
        candidate = "::".join(base + segments[:n])
        if candidate in known:
            return candidate
    return None


def cycles(edges):
    """Strongly connected sets of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
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
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            visit(v)
    return found


def main(crates):
    failed = False
    for crate in crates:
        known = modules(os.path.join(ROOT, crate))
        edges = {m: set() for m in known}
        for module in known:
            # A module depends on the children it declares.
            parent = module.rpartition("::")[0]
            if module and parent in known:
                edges[parent].add(module)
        for module, path in known.items():
            with open(path, encoding="utf-8") as f:
                for target in use_targets(f.read()):
                    to = resolve(known, module, target)
                    # A child using what its parent declares for its children
                    # is not a circle: no edge to an ancestor.
                    if to and to != module and not module.startswith(to + "::") and to != "":
                        edges[module].add(to)
        found = cycles(edges)
        for component in found:
            failed = True
            print(f"{crate}: modules import each other in a circle: {', '.join(component)}")
            for module in component:
                print(f"  {module} -> {', '.join(sorted(edges[module] & set(component)))}")
        if not found:
            print(f"ok {crate}: {len(known)} modules, no import circle")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or CRATES))
