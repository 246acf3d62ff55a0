#!/usr/bin/env python3
"""Lists the functions longer than 60 lines (from the signature's first line to the closing brace)
and the source files longer than 450 lines, with their counts: the size goals of
the project (short functions, files of one concern).

    python3 scripts/check_sizes.py [ROOT] [--max-function 60] [--max-file 450]

A report, not a gate: it exits 0 whatever it finds. Braces are matched after removing strings,
character literals, comments and preprocessor lines.
"""
import argparse
import os
import re

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("root", nargs="?", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
parser.add_argument("--max-function", type=int, default=60)
parser.add_argument("--max-file", type=int, default=450)
args = parser.parse_args()
root = os.path.abspath(args.root)
def strip(line):
    line=re.sub(r'"(\\.|[^"\\])*"','""',line)
    line=re.sub(r"'(\\.|[^'\\])*'","''",line)
    return line.split('//')[0]
res=[]
def scan(p):
    lines=open(p).read().split('\n')
    depth=0; stack=[]; sig_start=None; pending=''
    for i,raw in enumerate(lines):
        l=strip(raw)
        if l.lstrip().startswith('#'):
            continue
        if depth_is_scope(stack) and l.strip() and sig_start is None and not l.strip().startswith('#'):
            sig_start=i
        for ch in l:
            if ch=='{':
                text=pending+l
                kind='func' if (depth_is_scope(stack) and '(' in text and not re.search(r'\b(namespace|struct|class|enum|union)\b',text) and not text.split('{')[0].rstrip().endswith('=') and not text.split('{')[0].rstrip().endswith(',')) else ('scope' if re.search(r'\b(namespace|struct|class|union)\b',text) and depth_is_scope(stack) else 'block')
                stack.append((kind, sig_start if sig_start is not None else i))
                sig_start=None; pending=''
            elif ch=='}':
                if stack:
                    kind,start=stack.pop()
                    if kind=='func': res.append((i-start+1,os.path.relpath(p,root),start+1,lines[start].strip()[:70]))
                sig_start=None; pending=''
            elif ch==';' and depth_is_scope(stack):
                sig_start=None; pending=''
        if depth_is_scope(stack): pending+=l
def depth_is_scope(stack):
    return all(k=='scope' for k,_ in stack)
for base in ['src','data','search','launcher']:
    for d,_,fs in os.walk(os.path.join(root,base)):
        for f in fs:
            if f.endswith(('.cpp','.h')): scan(os.path.join(d,f))
over=[r for r in res if r[0]>args.max_function]
for r in sorted(over,reverse=True): print(*r)
print(f'functions: {len(res)}, over {args.max_function} lines: {len(over)}')
files=[]
for base in ['src','data','search','launcher']:
    for d,_,fs in os.walk(os.path.join(root,base)):
        for f in fs:
            if f.endswith(('.cpp','.h')):
                p=os.path.join(d,f); n=sum(1 for _ in open(p))
                if n>args.max_file: files.append((n,os.path.relpath(p,root)))
for x in sorted(files,reverse=True): print(*x)
print(f'files over {args.max_file} lines: {len(files)}')
