#!/usr/bin/env python3
"""Fails when a source file includes a header of a layer its own layer does not depend on, or
when the folders' includes form a loop (data/formats -> data/loading -> data/formats, say).

The layers and their dependencies come from src/CMakeLists.txt (one --layer=NAME:DIR:DEPS per
layer, DEPS comma-separated); a dependency's dependencies are allowed too. The build runs this
before compiling, so a wrong-way include stops the build with the file, line and both layers.
"""
import argparse
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)/[^"]+"')
FOLDER_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)/[^"/]+"')


def folder_of(root, path):
    """The include prefix of the folder holding `path` (src/ and the top level are include roots)."""
    rel = os.path.relpath(os.path.dirname(path), root)
    return rel[len("src/"):] if rel.startswith("src/") else rel


def folder_loops(edges):
    """One problem per folder edge that closes a loop, naming the include that makes it."""
    problems = []
    for a, targets in sorted(edges.items()):
        for b, where in sorted(targets.items()):
            seen, stack = set(), [b]
            while stack:
                x = stack.pop()
                if x == a:
                    problems.append(f"{where}: folder '{a}' includes '{b}', which includes '{a}' back "
                                    "(folders must depend one way)")
                    break
                if x not in seen:
                    seen.add(x)
                    stack.extend(edges.get(x, {}))
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--layer", action="append", default=[], help="NAME:DIR:DEP,DEP")
    args = parser.parse_args()
    dirs, deps = {}, {}
    for spec in args.layer:
        name, folder, needs = spec.split(":")
        dirs[name] = os.path.join(args.root, folder)
        deps[name] = {d for d in needs.split(",") if d}

    def closure(name, seen=None):
        seen = set() if seen is None else seen
        for d in deps[name]:
            if d not in seen:
                seen.add(d)
                closure(d, seen)
        return seen

    problems = []
    folder_edges = {}
    for name, folder in dirs.items():
        allowed = closure(name) | {name}
        sources = sorted(os.path.join(d, f) for d, _, names in os.walk(folder) for f in names)
        for path in sources:
            if not path.endswith((".h", ".cpp")):
                continue
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    target = FOLDER_INCLUDE.match(line)
                    if target and target.group(1) != folder_of(args.root, path):
                        folder_edges.setdefault(folder_of(args.root, path), {})[target.group(1)] = (
                            f"{os.path.relpath(path, args.root)}:{number}")
                    if m and m.group(1) in dirs and m.group(1) not in allowed:
                        problems.append(f"{os.path.relpath(path, args.root)}:{number}: layer '{name}' includes "
                                        f"'{m.group(1)}', which it does not depend on (allowed: "
                                        f"{', '.join(sorted(allowed))})")
    problems += folder_loops(folder_edges)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
