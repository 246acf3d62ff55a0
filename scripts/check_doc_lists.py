#!/usr/bin/env python3
"""Checks that the lists of files, folders and jobs in the docs match the tree and the binary, so
that they cannot drift:

1. every folder README that lists its files (data/README.md) names each header of its folder, and
   every `name.h` it names exists there;
2. README.md's Layout block names every top-level folder and every src/ folder of the repository,
   every path it names exists, and it names every docs/*.md;
3. README.md's job table has one row per job of `vitslim --help`, and no other;
4. launcher/README.md's `job =` comment lists every job the launcher accepts (the launcher's own
   table, from `vitslim-launch --help`), and no other;
5. every relative link of README.md, docs/*.md and the folder READMEs points to a file of the
   repository, and a #section link to a heading of its file.

Usage: scripts/check_doc_lists.py [--root DIR] [--binary build/vitslim] [--launcher build/vitslim-launch]
Prints one line per problem and exits 1 when there is any.
"""
import argparse
import os
import re
import subprocess
import sys

IGNORED_TOP = {".git", ".ci", ".github", "build", "runs", ".venv", "gpu-bundle"}


def tracked_dirs(root):
    """Top-level folders and src/ folders that git tracks (ignored build outputs left out)."""
    files = subprocess.run(["git", "-C", root, "ls-files"], check=True, capture_output=True, text=True).stdout.split()
    top = {f.split("/")[0] for f in files if "/" in f} - IGNORED_TOP
    src = {"/".join(f.split("/")[:2]) for f in files if f.startswith("src/") and f.count("/") >= 2}
    return top, src, files


def check_folder_readme(root, folder, problems):
    text = open(os.path.join(root, folder, "README.md"), encoding="utf-8").read()
    named = set(re.findall(r"`([A-Za-z0-9_/]+\.h)`", text))
    base = os.path.join(root, folder)
    present = {os.path.relpath(os.path.join(d, f), base) for d, _, names in os.walk(base) for f in names
               if f.endswith(".h")}
    for h in sorted(present - named):
        problems.append(f"{folder}/README.md does not name {h}")
    for h in sorted(named - present):
        problems.append(f"{folder}/README.md names {h}, which is not in {folder}/")


def layout_block(text):
    m = re.search(r"^## Layout\n.*?^```\n(.*?)^```", text, re.M | re.S)
    return m.group(1) if m else ""


def check_layout(root, problems):
    text = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    block = layout_block(text)
    if not block:
        problems.append("README.md has no ## Layout block")
        return
    entries = {line.split()[0].rstrip("/") for line in block.splitlines() if line and not line[0].isspace()}
    top, src, _ = tracked_dirs(root)
    for d in sorted(top | src):
        if d not in entries and not any(e.startswith(d + "/") for e in entries):
            problems.append(f"README.md Layout does not name {d}/")
    for e in sorted(entries):
        if not os.path.exists(os.path.join(root, e)):
            problems.append(f"README.md Layout names {e}, which does not exist")
    docs = {f for f in os.listdir(os.path.join(root, "docs")) if f.endswith(".md")}
    listed = set(re.findall(r"([a-z0-9-]+\.md)", block))
    for d in sorted(docs - listed):
        problems.append(f"README.md Layout does not name docs/{d}")
    for d in sorted((listed - docs) - {"README.md"}):
        problems.append(f"README.md Layout names docs/{d}, which does not exist")


def help_jobs(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    part = out.split("jobs:", 1)[1].split("\n\n", 1)[0] if "jobs:" in out else ""
    return [line.split()[0] for line in part.splitlines() if line.strip()]


def check_job_table(root, binary, problems):
    text = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    rows = re.findall(r"^\| `([a-z-]+)` \|", text, re.M)
    jobs = help_jobs(binary)
    if not jobs:
        problems.append(f"{binary} --help lists no jobs")
    for j in jobs:
        if j not in rows:
            problems.append(f"README.md job table has no row for `{j}`")
    for r in rows:
        if r not in jobs and not r.startswith(("deit", "vit")):
            problems.append(f"README.md job table has a row for `{r}`, which is not a job")


def check_launcher(root, launcher, problems):
    text = open(os.path.join(root, "launcher", "README.md"), encoding="utf-8").read()
    m = re.search(r"^job = \w+ +; (.*)$", text, re.M)
    if not m:
        problems.append("launcher/README.md has no `job = ... ; a | b` line")
        return
    listed = [j.strip() for j in m.group(1).split("|")]
    out = subprocess.run([launcher, "--help"], capture_output=True, text=True)
    m2 = re.search(r"^jobs: ([a-z, -]+)$", out.stdout, re.M)
    if not m2:
        problems.append(f"{launcher} --help does not list its jobs")
        return
    accepted = [j.strip() for j in m2.group(1).split(",") if j.strip()]
    for j in accepted:
        if j not in listed:
            problems.append(f"launcher/README.md does not list job {j}")
    for j in listed:
        if j not in accepted:
            problems.append(f"launcher/README.md lists job {j}, which vitslim-launch does not accept")


def slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(path):
    out, fence = set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            out.add(slug(line))
    return out


def check_links(root, problems):
    _, _, files = tracked_dirs(root)
    docs = [f for f in files if f.endswith(".md") and (f == "README.md" or f.startswith("docs/") or
                                                       f.count("/") == 1 and f.endswith("/README.md"))]
    for doc in docs:
        text = open(os.path.join(root, doc), encoding="utf-8").read()
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(root, os.path.dirname(doc), path)) if path else os.path.join(root, doc)
            if not os.path.exists(full):
                problems.append(f"{doc}: link to {target}: no such file")
            elif anchor and full.endswith(".md") and anchor not in headings(full):
                problems.append(f"{doc}: link to {target}: no such section")


def main():
    root_default = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=root_default)
    ap.add_argument("--binary", default=os.path.join(root_default, "build", "vitslim"))
    ap.add_argument("--launcher", default=os.path.join(root_default, "build", "vitslim-launch"))
    args = ap.parse_args()
    problems = []
    check_folder_readme(args.root, "data", problems)
    check_layout(args.root, problems)
    check_job_table(args.root, args.binary, problems)
    check_launcher(args.root, args.launcher, problems)
    check_links(args.root, problems)
    for p in problems:
        print(p)
    print(f"doc lists: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
