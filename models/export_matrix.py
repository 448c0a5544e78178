#!/usr/bin/env python3
"""The export matrix: what PyTorch users export, as fixtures for tests/export_matrix.rs.

fast-transformers' causal kernel is a C++ extension that ONNX cannot trace, so a user
exports a plain-PyTorch twin with the same parameter names (export_onnx.ExportModel
is one) and calls torch.onnx.export on it directly, with the exporter's defaults:
constant folding on, no linrt metadata. Each cell of the matrix is one such export:

  exporter   TorchScript (dynamo=False), opsets 14, 17, 20, 23 (its newest);
             dynamo (dynamo=True), opsets 18 (its oldest), 23, 28 (its newest)
  form       step (state in and out) and sequence (cumsum form)
  length     dynamic, or fixed (no dynamic axes: x is [1, 128, 64] or [1, 64])
  weights    f32, or f16 (`model.half()` before export)
  storage    inline, or ONNX external data (a weights file next to the .onnx)
  model      "wrapped": an embedding, the encoder under `encoder.`, a head (tokens in,
             logits out); "vectors": the issue's model, d_model 64, 2 layers, 4 heads,
             ffn 256, 64-dim vectors in, hidden state out, nothing around it

Weights are fast-transformers' init snapped to a power-of-two grid, so that f16 holds
them exactly and every cell, f16 ones included, must match the same reference:
fast-transformers' RecurrentEncoder stepped over 512 positions. Writes
tests/golden/matrix/: <cell>.onnx.gz (and <cell>.onnx.data.gz), <model>.input.npy,
<model>.reference.npy and cells.json. CI never runs this script.

  python models/export_matrix.py      # about a minute
"""
import gzip
import json
import math
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np
import onnx
import torch
from fast_transformers.builders import RecurrentEncoderBuilder

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export_onnx  # noqa: E402
import make_golden  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "golden", "matrix")
STEPS = 512

MODELS = {
    "wrapped": dict(d_model=32, n_layers=2, n_heads=2, d_query=16, d_value=16, d_ff=64, input="tokens",
                    input_dim=20, input_projection=False, output_dim=20, prefix="encoder."),
    "vectors": dict(d_model=64, n_layers=2, n_heads=4, d_query=16, d_value=16, d_ff=256, input="vectors",
                    input_dim=64, input_projection=False, output_dim=0, prefix=""),
}

# (name, model, exporter, opset, form, fixed length or None, weights, external data)
CELLS = [
    ("ts14-step", "wrapped", "torchscript", 14, "step", None, "f32", False),
    ("ts14-sequence", "wrapped", "torchscript", 14, "sequence", None, "f32", False),
    ("ts17-step", "wrapped", "torchscript", 17, "step", None, "f32", False),
    ("ts17-sequence", "wrapped", "torchscript", 17, "sequence", None, "f32", False),
    ("ts17-sequence-fixed64", "wrapped", "torchscript", 17, "sequence", 64, "f32", False),
    ("ts20-sequence", "wrapped", "torchscript", 20, "sequence", None, "f32", False),
    ("ts23-step", "wrapped", "torchscript", 23, "step", None, "f32", False),
    ("ts23-sequence", "wrapped", "torchscript", 23, "sequence", None, "f32", False),
    ("ts17-step-f16", "wrapped", "torchscript", 17, "step", None, "f16", False),
    ("ts17-sequence-f16", "wrapped", "torchscript", 17, "sequence", None, "f16", False),
    ("ts17-sequence-external", "wrapped", "torchscript", 17, "sequence", None, "f32", True),
    ("dynamo18-step", "wrapped", "dynamo", 18, "step", None, "f32", False),
    ("dynamo18-sequence", "wrapped", "dynamo", 18, "sequence", None, "f32", False),
    ("dynamo18-sequence-fixed64", "wrapped", "dynamo", 18, "sequence", 64, "f32", False),
    ("dynamo23-sequence", "wrapped", "dynamo", 23, "sequence", None, "f32", False),
    ("dynamo28-step", "wrapped", "dynamo", 28, "step", None, "f32", False),
    ("dynamo28-sequence", "wrapped", "dynamo", 28, "sequence", None, "f32", False),
    ("dynamo18-step-f16", "wrapped", "dynamo", 18, "step", None, "f16", False),
    ("dynamo18-sequence-f16", "wrapped", "dynamo", 18, "sequence", None, "f16", False),
    ("dynamo18-step-external", "wrapped", "dynamo", 18, "step", None, "f32", True),
    ("ts17-vectors-sequence-fixed128", "vectors", "torchscript", 17, "sequence", 128, "f32", False),
    ("ts17-vectors-step", "vectors", "torchscript", 17, "step", None, "f32", False),
    ("dynamo18-vectors-sequence-fixed128", "vectors", "dynamo", 18, "sequence", 128, "f32", False),
    ("dynamo18-vectors-sequence-f16", "vectors", "dynamo", 18, "sequence", None, "f16", False),
]


def snap(t, bound):
    """Round to a power-of-two grid of about bound/8: a few significant bits, exact in f16."""
    step = 2.0 ** math.floor(math.log2(bound / 8))
    return torch.round(t / step) * step


def full_config(spec):
    return dict(spec, activation="relu", norm_placement="post", final_norm=True, feature_map="elu+1",
                attention_eps=1e-6, layernorm_eps=1e-5)


def build(name, spec, seed):
    """fast-transformers' recurrent encoder with snapped weights, the state_dict of the
    user's twin, the inputs and the reference outputs."""
    torch.manual_seed(seed)
    encoder = RecurrentEncoderBuilder.from_kwargs(
        attention_type="linear", n_layers=spec["n_layers"], n_heads=spec["n_heads"],
        query_dimensions=spec["d_query"], value_dimensions=spec["d_value"], feed_forward_dimensions=spec["d_ff"],
        activation="relu", final_normalization=True, dropout=0.0, attention_dropout=0.0).get().eval()
    with torch.no_grad():
        make_golden.snap_parameters(encoder, snap)
    sd = {spec["prefix"] + k: v.detach().clone() for k, v in encoder.state_dict().items()}
    d = spec["d_model"]
    embedding = head = None
    if spec["input"] == "tokens":
        embedding = torch.nn.Embedding(spec["input_dim"], d)
        head = torch.nn.Linear(d, spec["output_dim"])
        with torch.no_grad():
            embedding.weight.copy_(snap(embedding.weight, 1.0))
            for p in head.parameters():
                p.copy_(snap(p, 1.0 / d ** 0.5))
        sd["embedding.weight"] = embedding.weight.detach().clone()
        sd.update({f"output_projection.{k}": v.detach().clone() for k, v in head.state_dict().items()})
        inputs = torch.randint(0, spec["input_dim"], (STEPS,))
    else:
        inputs = torch.randn(STEPS, spec["input_dim"])
    with torch.no_grad():
        state, ys = None, []
        for t in range(STEPS):
            x = embedding(inputs[t : t + 1]) if embedding is not None else inputs[t : t + 1]
            y, state = encoder(x, state=state)
            ys.append((head(y) if head is not None else y)[0])
    return sd, inputs, torch.stack(ys)


class SequenceNet(export_onnx.ExportModel):
    """What a user writes: the twin with `forward` as the causal sequence."""

    def forward(self, x):
        return self.sequence(x)


class StepNet(export_onnx.ExportModel):
    """The twin with `forward` as one recurrent step."""

    def forward(self, x, *states):
        return self.step(x, *states)


def export_cell(cell, spec, sd, path):
    name, model_name, exporter, opset, form, fixed, weights, external = cell
    cfg = full_config(spec)
    net = (StepNet if form == "step" else SequenceNet)(cfg)
    net.load_state_dict(sd, strict=True)
    net.eval()
    dtype = torch.float16 if weights == "f16" else torch.float32
    if weights == "f16":
        net = net.half()
    tokens = spec["input"] == "tokens"
    H, F_, Dv = spec["n_heads"], spec["d_query"], spec["d_value"]
    if form == "step":
        x = torch.zeros(1, dtype=torch.long) if tokens else torch.zeros(1, spec["input_dim"], dtype=dtype)
        states = []
        for _ in range(spec["n_layers"]):
            states += [torch.zeros(1, H, F_, Dv, dtype=dtype), torch.zeros(1, H, F_, dtype=dtype)]
        args = (x, *states)
        names = ["x"] + [f"{k}_{i}" for i in range(spec["n_layers"]) for k in ("S", "z")]
        dynamic = None
    else:
        T = fixed or 8
        x = torch.zeros(1, T, dtype=torch.long) if tokens else torch.zeros(1, T, spec["input_dim"], dtype=dtype)
        args = (x,)
        names = ["x"]
        dynamic = None if fixed else {"x": {1: "T"}}
    kwargs = dict(opset_version=opset, input_names=names, dynamo=exporter == "dynamo")
    if exporter == "dynamo":
        if dynamic:
            kwargs["dynamic_shapes"] = ({1: torch.export.Dim("T", min=1, max=4096)},)
        kwargs["external_data"] = external
    else:
        kwargs["dynamic_axes"] = dynamic
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, args, path, **kwargs)
    if exporter == "torchscript" and external:
        proto = onnx.load(path)
        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=os.path.basename(path) + ".data", size_threshold=0)
    written = onnx.load(path, load_external_data=False)
    return written.opset_import[0].version


def gzip_into(src, dst):
    with open(src, "rb") as f, gzip.GzipFile(dst, "wb", compresslevel=9, mtime=0) as g:
        g.write(f.read())


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    built = {name: build(name, spec, seed) for seed, (name, spec) in enumerate(MODELS.items(), start=40)}
    for name, (_, inputs, ref) in built.items():
        np.save(os.path.join(OUT, f"{name}.input.npy"), inputs.numpy())
        np.save(os.path.join(OUT, f"{name}.reference.npy"), ref.numpy().astype(np.float32))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cell in CELLS:
            name, model_name, exporter, opset, form, fixed, weights, external = cell
            path = os.path.join(tmp, f"{name}.onnx")
            written_opset = export_cell(cell, MODELS[model_name], built[model_name][0], path)
            data = path + ".data"
            if external and not os.path.exists(data):
                raise SystemExit(f"{name}: the exporter wrote no external data")
            if not external and os.path.exists(data):
                os.remove(data)  # dynamo writes one unasked for small models sometimes: keep the cell inline
                export_cell(cell[:7] + (False,), MODELS[model_name], built[model_name][0], path)
            gzip_into(path, os.path.join(OUT, f"{name}.onnx.gz"))
            if external:
                gzip_into(data, os.path.join(OUT, f"{name}.onnx.data.gz"))
            rows.append(dict(name=name, model=model_name, exporter=exporter, opset=written_opset, form=form,
                             length=fixed or "dynamic", weights=weights, external_data=external,
                             torch=torch.__version__.split("+")[0]))
            print(f"{name}: opset {written_opset}")
    with open(os.path.join(OUT, "cells.json"), "w") as f:
        json.dump(rows, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(rows)} cells, {total / 1e6:.2f} MB in {OUT}\n\nthe table of docs/converter.md:\n")
    print("| exporter | opset | form | length | weights | storage | model | converts to |")
    print("|---|---:|---|---|---|---|---|---|")
    for r in rows:
        length = "dynamic" if r["length"] == "dynamic" else f"fixed {r['length']}"
        exporter = "TorchScript" if r["exporter"] == "torchscript" else "dynamo"
        storage = "external data" if r["external_data"] else "inline"
        print(f"| {exporter} | {r['opset']} | {r['form']} | {length} | {r['weights']} | {storage} | {r['model']} | "
              "f32, f16, int8 |")


if __name__ == "__main__":
    main()
