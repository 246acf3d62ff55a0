#!/usr/bin/env python3
# WebDataset interop check for vitslim's shards, using the reference `webdataset` package (1.0.2).
#   check: read shards with webdataset (no shuffle, no decoding) and compare every sample with the
#          image folder they came from: key, label (.cls or .json), image bytes, each image once,
#          folder order (classes sorted, files sorted; --any-order for shuffled shards, as
#          `vitslim make-shards` writes for the train split unless --shuffle false).
#   write: write shards of a folder with webdataset.ShardWriter, for vitslim to read; even
#          positions carry a .cls label, odd ones a .json {"label": N}.
# Key rule (as make-shards): <class>/<stem>, stem = file name less its last extension with the
# remaining '.' as '_'; image member extension = the original extension lowercased.
#   python scripts/wds_interop.py check --shards 'DIR/train-{000000..000003}.tar' --folder ROOT
#   python scripts/wds_interop.py write --folder ROOT --out 'DIR/wds-%06d.tar' --maxcount 1000
import argparse
import json
import os
import sys

import braceexpand
import webdataset as wds

IMAGE_EXTS = ("jpg", "jpeg", "png")


def folder_samples(root):
    """(key, ext, label, path) for every image of ROOT/<class>/<file>, in folder order."""
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    out = []
    for label, cls in enumerate(classes):
        cdir = os.path.join(root, cls)
        for name in sorted(os.listdir(cdir)):
            stem, dot, ext = name.rpartition(".")
            path = os.path.join(cdir, name)
            if not dot or not stem or ext.lower() not in IMAGE_EXTS or not os.path.isfile(path):
                continue
            out.append((f"{cls}/{stem.replace('.', '_')}", ext.lower(), label, path))
    keys = {}
    for key, _, _, path in out:
        if keys.setdefault(key, path) != path:  # a.jpg + a.png, or a.b.jpg + a_b.jpg: one sample
            raise ValueError(f"{keys[key]} and {path} share the sample key {key}")
    return out


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def sample_label(sample):
    """The label of a raw webdataset sample, from .cls (decimal text) or .json {"label": N}."""
    if "cls" in sample:
        text = sample["cls"].decode("ascii")
        if not text.isdigit():
            raise ValueError(f".cls is not a decimal label: {text!r}")
        return int(text)
    if "json" in sample:
        label = json.loads(sample["json"]).get("label")
        if not isinstance(label, int) or isinstance(label, bool):
            raise ValueError(f".json has no integer \"label\": {sample['json']!r}")
        return label
    raise ValueError("no .cls or .json member")


def check(args):
    expected = folder_samples(args.folder)
    by_key = {e[0]: e for e in expected}
    urls = list(braceexpand.braceexpand(args.shards))
    seen = set()
    n = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        key = sample["__key__"]
        where = f"sample {n} ({sample['__url__']}: {key})"
        if args.any_order:
            want = by_key.get(key)
            if want is None:
                return fail(f"{where}: no such image in {args.folder}")
        else:
            if n >= len(expected):
                return fail(f"{where}: more samples than the {len(expected)} folder images")
            want = expected[n]
            if key != want[0]:
                return fail(f"{where}: key should be {want[0]} (folder order)")
        if key in seen:
            return fail(f"{where}: key appears twice")
        seen.add(key)
        _, ext, label, path = want
        members = {k for k in sample if not k.startswith("__")}
        images = members & set(IMAGE_EXTS)
        if images != {ext}:
            return fail(f"{where}: image members {sorted(images)}, expected [{ext!r}] for {path}")
        extra = members - {ext, "cls", "json"}
        if extra:
            return fail(f"{where}: unexpected members {sorted(extra)}")
        try:
            got = sample_label(sample)
        except ValueError as err:
            return fail(f"{where}: {err}")
        if got != label:
            return fail(f"{where}: label {got}, expected {label} for {path}")
        if sample[ext] != read_bytes(path):
            return fail(f"{where}: image bytes differ from {path}")
        n += 1
    if n != len(expected):
        missing = next(e[0] for e in expected if e[0] not in seen)
        return fail(f"only {n} of {len(expected)} folder images in the shards; first missing: {missing}")
    print(f"wds_interop check: {n} samples, {len(urls)} shards, keys/labels/bytes match")
    return 0


def fail(message):
    print(f"wds_interop check: MISMATCH {message}")
    return 1


def write(args):
    samples = folder_samples(args.folder)
    if not samples:
        print(f"wds_interop write: no .jpg/.jpeg/.png images in {args.folder}/<class>/")
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.out % 0)), exist_ok=True)
    with wds.ShardWriter(args.out, maxcount=args.maxcount, verbose=0) as sink:
        for i, (key, ext, label, path) in enumerate(samples):
            entry = {"__key__": key, ext: read_bytes(path)}
            if i % 2 == 0:
                entry["cls"] = label
            else:
                entry["json"] = {"label": label}
            sink.write(entry)
        shards = sink.shard  # streams opened so far (ShardWriter.close deletes it)
    print(f"wds_interop write: {len(samples)} samples, {shards} shards ({args.out})")
    return 0


def main():
    p = argparse.ArgumentParser(description="WebDataset interop for vitslim shards")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="check shards against the image folder they were made from")
    c.add_argument("--shards", required=True, help="brace pattern, e.g. 'DIR/train-{000000..000003}.tar'")
    c.add_argument("--folder", required=True, help="image folder ROOT/<class>/<file>")
    c.add_argument("--any-order", action="store_true", help="shuffled shards: each image once, any order")
    w = sub.add_parser("write", help="write shards of an image folder with webdataset.ShardWriter")
    w.add_argument("--folder", required=True)
    w.add_argument("--out", required=True, help="printf pattern, e.g. 'DIR/wds-%%06d.tar'")
    w.add_argument("--maxcount", type=int, default=100000)
    args = p.parse_args()
    try:
        return check(args) if args.cmd == "check" else write(args)
    except Exception as err:  # an unreadable shard or folder: one line, not a traceback
        print(f"wds_interop {args.cmd}: {type(err).__name__}: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
