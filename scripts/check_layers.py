#!/usr/bin/env python3
"""Fails when a source file includes a header of a layer its own layer does not depend on.

The layers and their dependencies come from src/CMakeLists.txt (one --layer=NAME:DIR:DEPS per
layer, DEPS comma-separated); a dependency's dependencies are allowed too. The build runs this
before compiling, so a wrong-way include stops the build with the file, line and both layers.
"""
import argparse
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)/[^"]+"')


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
    for name, folder in dirs.items():
        allowed = closure(name) | {name}
        for entry in sorted(os.listdir(folder)):
            if not entry.endswith((".h", ".cpp")):
                continue
            path = os.path.join(folder, entry)
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if m and m.group(1) in dirs and m.group(1) not in allowed:
                        problems.append(f"{os.path.relpath(path, args.root)}:{number}: layer '{name}' includes "
                                        f"'{m.group(1)}', which it does not depend on (allowed: "
                                        f"{', '.join(sorted(allowed))})")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
