#!/usr/bin/env python3
"""Checks an ONNX file written by `vitslim export` in real runtimes, without vitslim.

Given MODEL.onnx and the --sample file export wrote beside it (seeded random "images" and vitslim's
"logits" for them), this script:
  - runs onnx.checker (full check, with shape inference);
  - checks the graph: opset >= 17, a symbolic batch dimension, no Identity node, the preprocessing
    metadata, and with --removed B,B,... no attention node in those blocks;
  - runs ONNX Runtime (CPU) on the whole sample and on one image (the dynamic batch), and
    OpenVINO (CPU, f32 inference precision) on the sample, comparing the logits to vitslim's.
It imports only onnx, onnxruntime, openvino, numpy and safetensors. Exit 1 when any check fails.
"""
import argparse
import json
import sys

import numpy as np
import onnx
from safetensors.numpy import load_file

REQUIRED_METADATA = ["vitslim.input_size", "vitslim.mean", "vitslim.std", "vitslim.crop_pct",
                     "vitslim.interpolation", "vitslim.removed_layers"]


def check_graph(model, removed):
    problems = []
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 17:
        problems.append(f"opset {opset} < 17")
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    if not batch.dim_param:
        problems.append("the batch dimension is not symbolic")
    ops = [n.op_type for n in model.graph.node]
    if "Identity" in ops:
        problems.append("an Identity node is left")
    meta = {p.key: p.value for p in model.metadata_props}
    problems += [f"metadata {k} missing" for k in REQUIRED_METADATA if k not in meta]
    for b in removed:
        attn = [n.name for n in model.graph.node if n.name.startswith(f"blocks.{b}.attn") or
                n.name.startswith(f"blocks.{b}.norm1")]
        if attn:
            problems.append(f"block {b} should have no attention, has {attn[:3]}")
    return problems, {"opset": opset, "nodes": len(ops), "metadata": meta}


def run_ort(path, images):
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"images": images})[0]


def run_openvino(path, images):
    import openvino as ov
    core = ov.Core()
    # f32: OpenVINO picks bf16 by itself on CPUs with AMX/AVX512-BF16.
    compiled = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled(images)[compiled.output(0)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the .onnx file")
    parser.add_argument("sample", help="the .safetensors sample written by `vitslim export --sample`")
    parser.add_argument("--tol", type=float, default=1e-4, help="max |logits difference| allowed")
    parser.add_argument("--removed", default="", help="blocks that must have no attention nodes, e.g. 1,3")
    parser.add_argument("--runtimes", default="onnxruntime,openvino", help="comma-separated")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    removed = [int(b) for b in args.removed.split(",") if b]
    problems, info = check_graph(model, removed)
    sample = load_file(args.sample)
    images, want = sample["images"], sample["logits"]
    results = {"model": args.model, "opset": info["opset"], "nodes": info["nodes"], "diffs": {}}
    print(f"onnx.checker: ok; opset {info['opset']}, {info['nodes']} nodes, removed attention "
          f"[{info['metadata'].get('vitslim.removed_layers', '')}]")
    runners = {"onnxruntime": run_ort, "openvino": run_openvino}
    for name in [r for r in args.runtimes.split(",") if r]:
        got = runners[name](args.model, images)
        diff = float(np.abs(got - want).max())
        results["diffs"][name] = diff
        print(f"{name}: batch {images.shape[0]}, max |logits - vitslim| = {diff:.2e}")
        if not diff <= args.tol:
            problems.append(f"{name} differs from vitslim by {diff:.2e} > {args.tol}")
        if name == "onnxruntime":  # the batch dimension is dynamic: one image alone
            one = float(np.abs(run_ort(args.model, images[:1]) - want[:1]).max())
            results["diffs"]["onnxruntime_batch1"] = one
            if not one <= args.tol:
                problems.append(f"onnxruntime at batch 1 differs by {one:.2e}")
    results["problems"] = problems
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
