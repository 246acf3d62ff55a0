#!/usr/bin/env python3
"""Prints the slowest tests of a ctest run from its JUnit file (ctest --output-junit), so that the
suite's growth is visible at the end of every scripts/test.sh.

  slowest_tests.py JUNIT.xml [--top N]
Prints nothing (exit 0) when the file is missing or holds no test: ctest -N runs none.
"""
import argparse
import os
import sys
import xml.etree.ElementTree as ET


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("junit")
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    if not os.path.isfile(a.junit):
        return 0
    try:
        root = ET.parse(a.junit).getroot()
    except ET.ParseError as e:
        print(f"slowest_tests: {a.junit}: {e}", file=sys.stderr)
        return 0
    cases = [(float(c.get("time", 0) or 0), c.get("name", "?"), c.get("status", "")) for c in root.iter("testcase")]
    if not cases:
        return 0
    total = sum(t for t, _, _ in cases)
    print(f"\nThe {min(a.top, len(cases))} slowest of {len(cases)} tests ({total:.0f} s of test time in all):")
    print(f"{'seconds':>8}  test")
    for seconds, name, status in sorted(cases, reverse=True)[: a.top]:
        mark = "" if status in ("run", "") else f"  ({status})"
        print(f"{seconds:8.1f}  {name}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
