#!/usr/bin/env python3
"""Benchmark models and the onnxruntime side of the speed comparison.

  python models/bench_models.py make DIR      # writes DIR/{tiny,small,base}.onnx (step form, random weights)
  python models/bench_models.py ort DIR/*.onnx [--steps 200]   # onnxruntime per-step latency, 1 thread
  python models/bench_models.py table DIR --linrt target/release/linrt   # everything, as the README table

The configurations are the issue's: tiny (d64, 2 layers, 4 heads, ffn 256), small
(d256, 4, 8, 1024), base (d512, 8, 8, 2048), 80-dim frame inputs projected in and a
29-way head, exported through export_onnx.py. `linrt bench` times linrt and tract on
the same files; this script times onnxruntime, so all three see identical graphs.
Needs torch and onnx for `make`, onnxruntime for `ort`.
"""
import argparse
import json
import os
import statistics
import sys
import time

CONFIGS = {
    "tiny": dict(d_model=64, n_layers=2, n_heads=4, d_ff=256),
    "small": dict(d_model=256, n_layers=4, n_heads=8, d_ff=1024),
    "base": dict(d_model=512, n_layers=8, n_heads=8, d_ff=2048),
}


def make(folder):
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import export_onnx

    os.makedirs(folder, exist_ok=True)
    for seed, (name, c) in enumerate(CONFIGS.items()):
        torch.manual_seed(seed)
        head = c["d_model"] // c["n_heads"]
        cfg = dict(c, d_query=head, d_value=head, activation="relu", norm_placement="post", final_norm=True,
                   feature_map="elu+1", attention_eps=1e-6, layernorm_eps=1e-5, input="vectors", input_dim=80,
                   input_projection=True, output_dim=29, prefix="")
        model = export_onnx.ExportModel(cfg)
        with torch.no_grad():  # LayerNorm gains away from 1 so no two parameters are equal
            for n, p in model.named_parameters():
                if "norm" in n:
                    p.add_(0.1 * torch.randn_like(p))
        path = os.path.join(folder, f"{name}.onnx")
        export_onnx.export(model.state_dict(), cfg, path, "step")
        print(f"wrote {path}")


def ort(paths, steps, warmup=20):
    import numpy as np
    import onnxruntime as rt

    results = []
    for path in paths:
        opts = rt.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = rt.ExecutionMode.ORT_SEQUENTIAL
        sess = rt.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        inputs = sess.get_inputs()
        feed = {}
        for i in inputs:
            shape = [1 if not isinstance(d, int) else d for d in i.shape]
            if "int" in i.type:
                feed[i.name] = np.zeros(shape, dtype=np.int64)
            else:
                feed[i.name] = np.zeros(shape, dtype=np.float32)
        rng = np.random.default_rng(0)
        x = inputs[0].name
        times = []
        for step in range(warmup + steps):
            if "float" in inputs[0].type:
                feed[x] = rng.standard_normal(feed[x].shape).astype(np.float32)
            start = time.perf_counter()
            out = sess.run(None, feed)
            elapsed = time.perf_counter() - start
            for i, o in zip(inputs[1:], out[1:]):  # carry the state
                feed[i.name] = o
            if step >= warmup:
                times.append(elapsed)
        r = {"model": path, "ort_step_us": statistics.median(times) * 1e6, "steps": steps,
             "onnxruntime": rt.__version__}
        results.append(r)
        print(json.dumps(r))
    return results


def table(folder, linrt, steps):
    """Converts each model to f32/f16/int8, runs `linrt bench` (linrt, tract, roofline)
    and onnxruntime, and prints the markdown table of docs/performance.md. One run, one machine."""
    import subprocess

    if not all(os.path.exists(os.path.join(folder, f"{n}.onnx")) for n in CONFIGS):
        make(folder)
    rows = []
    for name in CONFIGS:
        onnx_path = os.path.join(folder, f"{name}.onnx")
        ort_us = ort([onnx_path], steps)[0]["ort_step_us"]
        sizes = {}
        for dtype in ("f32", "f16", "int8"):
            lrt = os.path.join(folder, f"{name}.{dtype}.lrt")
            subprocess.run([linrt, "convert", onnx_path, "-o", lrt, "--dtype", dtype, "--json"], check=True,
                           stdout=subprocess.DEVNULL)
            sizes[dtype] = os.path.getsize(lrt)
            out = subprocess.run([linrt, "bench", lrt, "--onnx", onnx_path, "--steps", str(steps), "--json"],
                                 check=True, capture_output=True, text=True).stdout
            b = json.loads(out)
            rows.append((name, dtype, b["step_us"], b["tract_step_us"], ort_us, b["roofline_us"], sizes[dtype] / sizes["f32"],
                         b["kernels"]))
    print("| model | dtype | linrt µs/step | tract µs/step | onnxruntime µs/step | vs tract | vs onnxruntime | roofline µs | step / roofline | file vs f32 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, dtype, us, tract_us, ort_us, roof, size, kernels in rows:
        print(f"| {name} | {dtype} | {us:.1f} | {tract_us:.1f} | {ort_us:.1f} | {tract_us / us:.1f}× | {ort_us / us:.1f}× "
              f"| {roof:.1f} | {us / roof:.2f} | {100 * size:.0f} % |")
    print(f"\nkernels: {rows[0][7]}; {steps} steps per figure, medians, one thread")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("folder")
    o = sub.add_parser("ort")
    o.add_argument("models", nargs="+")
    o.add_argument("--steps", type=int, default=200)
    t = sub.add_parser("table")
    t.add_argument("folder")
    t.add_argument("--linrt", default="target/release/linrt")
    t.add_argument("--steps", type=int, default=200)
    a = p.parse_args()
    if a.cmd == "make":
        make(a.folder)
    elif a.cmd == "ort":
        ort(a.models, a.steps)
    else:
        table(a.folder, a.linrt, a.steps)


if __name__ == "__main__":
    main()
