#!/usr/bin/env python3
"""The timer `vitslim plan` runs for ONNX Runtime and OpenVINO candidates.

  time_onnx.py --check ENGINE PRECISION   exit 0 when ENGINE (onnxruntime | openvino) can run at
                                          PRECISION (fp32 | bf16) here; exit 3 with one line why not
  time_onnx.py REQUEST.json RESULT.json   time the request's ONNX files, write their median ms

REQUEST: {"engine", "precision", "threads", "batch", "input_shape": [C, H, W], "warmup", "rounds",
"min_ms", "max_rounds", "models": [paths]}. Every model is loaded first; then `warmup` untimed
passes each, then rounds in which every model runs once, in order (machine drift hits all alike):
at least `rounds`, and more until every model has run for `min_ms` in all (at most `max_rounds`). RESULT:
{"median_ms": [one per model], "engine_version": "..."}. Random float32 input, seeded.
"""
import json
import os
import statistics
import sys
import time

import numpy as np

NOT_INSTALLED = 3


def load_engine(engine, precision):
    """The engine's module, or exit 3 naming what is missing."""
    try:
        if engine == "onnxruntime":
            import onnxruntime as module
        elif engine == "openvino":
            import openvino as module
        else:
            print(f"unknown engine {engine!r} (onnxruntime, openvino)")
            sys.exit(2)
    except ImportError:
        print(f"{engine} is not installed for {sys.executable} (pip install {engine}; scripts/setup.sh installs it)")
        sys.exit(NOT_INSTALLED)
    if engine == "onnxruntime" and precision != "fp32":
        print(f"onnxruntime: no {precision} kernels on the CPU provider; use fp32")
        sys.exit(NOT_INSTALLED)
    return module


def session(engine, module, path, precision, threads):
    """A callable running one batch."""
    if engine == "onnxruntime":
        opts = module.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = module.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        return lambda images: sess.run(None, {"images": images})
    core = module.Core()
    config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
              "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(core.read_model(path), "CPU", config)
    request = compiled.create_infer_request()
    return lambda images: request.infer({0: images})


def check(engine, precision):
    module = load_engine(engine, precision)
    if engine == "openvino" and precision == "bf16":
        caps = module.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if "BF16" not in caps:
            print("openvino: this CPU has no bf16 inference (OPTIMIZATION_CAPABILITIES: " + ", ".join(caps) + ")")
            sys.exit(NOT_INSTALLED)
    return 0


def run(request_path, result_path):
    with open(request_path) as f:
        req = json.load(f)
    engine, precision = req["engine"], req["precision"]
    module = load_engine(engine, precision)
    runs = [session(engine, module, p, precision, int(req["threads"])) for p in req["models"]]
    rng = np.random.default_rng(0)
    images = rng.standard_normal([int(req["batch"])] + list(req["input_shape"])).astype(np.float32)
    warmup, rounds = int(req["warmup"]), int(req["rounds"])
    times = [[] for _ in runs]
    round_index = 0
    while (round_index < warmup + rounds
           or (round_index < warmup + int(req["max_rounds"]) and min(map(sum, times)) < float(req["min_ms"]))):
        for i, one in enumerate(runs):
            t0 = time.perf_counter()
            one(images)
            if round_index >= warmup:
                times[i].append((time.perf_counter() - t0) * 1000.0)
        round_index += 1
    result = {"median_ms": [statistics.median(t) for t in times], "engine_version": module.__version__}
    with open(result_path + ".partial", "w") as f:
        json.dump(result, f)
    os.replace(result_path + ".partial", result_path)
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "--check":
        return check(argv[2], argv[3])
    if len(argv) == 3:
        return run(argv[1], argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
