#!/usr/bin/env python3
"""Golden fixtures for the equivalence tests, computed by fast-transformers itself.

For three models it builds fast-transformers encoders (TransformerEncoderBuilder with
"causal-linear" and RecurrentEncoderBuilder with "linear", same weights), exports both
ONNX forms through export_onnx.py, and writes 512 steps of inputs and reference outputs:
  tests/golden/<name>/step.onnx         recurrent-step ONNX graph
  tests/golden/<name>/sequence.onnx     causal-sequence ONNX graph, cumsum form
  tests/golden/<name>/weights.bin.gz    the weights both graphs share (ONNX external data, gzip)
  tests/golden/<name>/input.npy         [512] int64 token ids or [512, d_in] float32
  tests/golden/<name>/recurrent.npy     [512, d_out] float32, RecurrentEncoder stepped
  tests/golden/<name>/causal.npy        [512, d_out] float32, TransformerEncoder + causal mask
plus models/tiny/ (the tiny model as one ONNX file with a 64-token sample and its
reference outputs), tests/golden/cases/: a 1-layer model and copies each wrong in one way (missing
tensor, wrong shape, contradictory or unusable metadata, corrupted bytes, not a transformer),
and tests/golden/softmax/sequence.onnx.gz: the tiny model with *softmax* attention under
the same parameter names and metadata, which conversion must reject at verification.

Weights are PyTorch's default init snapped to a grid of 1/8 of the init bound, so the
gzip'd weights stay small (tests decompress them); LayerNorm gains and biases are
randomised so that a mix-up between them cannot pass. CI never runs this script.

  python models/make_golden.py                  # about a minute on 2 cores
  python models/make_golden.py --feature-maps   # only the fm_* models and the error cases
"""
import gzip
import io
import json
import os
import sys

import numpy as np
import onnx
import torch
from fast_transformers.builders import RecurrentEncoderBuilder, TransformerEncoderBuilder
from fast_transformers.masking import TriangularCausalMask

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_onnx  # noqa: E402

STEPS = 512
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")

MODELS = {
    # d_model 64, 2 layers, 4 heads, ffn 256: token ids in, logits out.
    "tiny": dict(n_layers=2, n_heads=4, d_query=16, d_value=16, d_ff=256, activation="relu",
                 final_norm=True, input="tokens", input_dim=50, input_projection=False,
                 output_dim=50, prefix=""),
    # d_model 256, 4 layers, 8 heads, ffn 1024: 80-dim feature frames projected in, 29 logits out.
    "small": dict(n_layers=4, n_heads=8, d_query=32, d_value=32, d_ff=1024, activation="relu",
                  final_norm=True, input="vectors", input_dim=80, input_projection=True,
                  output_dim=29, prefix=""),
    # query dims != value dims, gelu, no final norm, vectors straight in, hidden state out,
    # encoder wrapped under an "encoder." prefix.
    "mixed": dict(n_layers=2, n_heads=4, d_query=16, d_value=32, d_ff=256, activation="gelu",
                  final_norm=False, input="vectors", input_dim=128, input_projection=False,
                  output_dim=0, prefix="encoder."),
}


def snap(t, bound):
    step = bound / 8
    return torch.round(t / step) * step


def snap_parameters(module, snap=snap):
    """PyTorch's init snapped to a coarse grid (`snap(values, bound)`), LayerNorm gains
    and biases randomised around 1 and 0 so that a mix-up between them cannot pass."""
    for pname, p in module.named_parameters():
        if "norm" in pname:
            p.copy_(snap((1.0 if pname.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p), 1.0))
        else:
            fan_in = p.shape[-1] if p.dim() == 2 else p.shape[0]
            p.copy_(snap(p, 1.0 / (fan_in ** 0.5)))


def build(name, spec, seed):
    torch.manual_seed(seed)
    cfg = dict(spec, d_model=spec["n_heads"] * spec["d_value"], norm_placement="post",
               feature_map="elu+1", attention_eps=1e-6, layernorm_eps=1e-5)
    kw = dict(n_layers=cfg["n_layers"], n_heads=cfg["n_heads"], query_dimensions=cfg["d_query"],
              value_dimensions=cfg["d_value"], feed_forward_dimensions=cfg["d_ff"],
              activation=cfg["activation"], final_normalization=cfg["final_norm"], dropout=0.0,
              attention_dropout=0.0)
    encoder = TransformerEncoderBuilder.from_kwargs(attention_type="causal-linear", **kw).get().eval()
    recurrent = RecurrentEncoderBuilder.from_kwargs(attention_type="linear", **kw).get().eval()
    with torch.no_grad():
        snap_parameters(encoder)
    recurrent.load_state_dict(encoder.state_dict(), strict=True)
    d = cfg["d_model"]
    embedding = projection = head = None
    extra = {}
    if cfg["input"] == "tokens":
        embedding = torch.nn.Embedding(cfg["input_dim"], d)
        with torch.no_grad():
            embedding.weight.copy_(snap(embedding.weight, 1.0))
        extra["embedding.weight"] = embedding.weight
    elif cfg["input_projection"]:
        projection = torch.nn.Linear(cfg["input_dim"], d)
        with torch.no_grad():
            for p in projection.parameters():
                p.copy_(snap(p, 1.0 / cfg["input_dim"] ** 0.5))
        extra.update({"input_projection." + k: v for k, v in projection.state_dict().items()})
    if cfg["output_dim"]:
        head = torch.nn.Linear(d, cfg["output_dim"])
        with torch.no_grad():
            for p in head.parameters():
                p.copy_(snap(p, 1.0 / d ** 0.5))
        extra.update({"output_projection." + k: v for k, v in head.state_dict().items()})

    def embed(x):
        if embedding is not None:
            return embedding(x)
        return projection(x) if projection is not None else x

    def out(h):
        return head(h) if head is not None else h

    state_dict = {cfg["prefix"] + k: v for k, v in encoder.state_dict().items()}
    state_dict.update({k: v.detach() for k, v in extra.items()})
    if cfg["input"] == "tokens":
        inputs = torch.randint(0, cfg["input_dim"], (STEPS,))
    else:
        inputs = torch.randn(STEPS, cfg["input_dim"])
    with torch.no_grad():
        state, rec = None, []
        for t in range(STEPS):
            y, state = recurrent(embed(inputs[t : t + 1]), state=state)
            rec.append(out(y)[0])
        rec = torch.stack(rec)
        h = embed(inputs[None])
        causal = out(encoder(h, attn_mask=TriangularCausalMask(STEPS)))[0]
    return cfg, state_dict, inputs, rec, causal


def gzip_file(path):
    with open(path, "rb") as f:
        raw = f.read()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as g:
        g.write(raw)
    with open(path + ".gz", "wb") as f:
        f.write(buf.getvalue())
    os.remove(path)


class SoftmaxAttentionSequence:
    """Causal softmax attention with the linear model's parameters: same names, other op."""

    def __init__(self, attention):
        self.a = attention

    def __call__(self, x):
        a = self.a
        N, T, H = x.shape[0], x.shape[1], a.n_heads
        Q = a.query_projection(x).view(N, T, H, -1).transpose(1, 2)
        K = a.key_projection(x).view(N, T, H, -1).transpose(1, 2)
        V = a.value_projection(x).view(N, T, H, -1).transpose(1, 2)
        scores = Q @ K.transpose(-1, -2) / (Q.shape[-1] ** 0.5)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        w = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        return a.out_projection((w @ V).transpose(1, 2).reshape(N, T, -1))


def export_softmax(cfg, state_dict, path):
    original = export_onnx.Attention.sequence
    export_onnx.Attention.sequence = lambda self, x: SoftmaxAttentionSequence(self)(x)
    try:
        export_onnx.export(state_dict, cfg, path, "sequence")
    finally:
        export_onnx.Attention.sequence = original


def make_example(cfg, state_dict, inputs, rec, steps=64):
    """models/tiny/: the tiny golden model as a self-contained ONNX, a token sample and
    fast-transformers' outputs for it: what the README's first command converts and runs."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny")
    os.makedirs(folder, exist_ok=True)
    export_onnx.export(state_dict, cfg, os.path.join(folder, "tiny.onnx"), "step")
    np.save(os.path.join(folder, "sample.npy"), inputs[:steps].numpy())
    np.save(os.path.join(folder, "reference.npy"), rec[:steps].numpy().astype(np.float32))


def make_cases():
    """tests/golden/cases/: a 1-layer model, a pre-norm gelu variant, and copies of the
    first each wrong in one way, for the converter's inference and error tests."""
    folder = os.path.join(ROOT, "cases")
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(7)
    cfg = dict(d_model=16, n_layers=1, n_heads=2, d_query=8, d_value=8, d_ff=32, activation="relu",
               norm_placement="post", final_norm=True, feature_map="elu+1", attention_eps=1e-6,
               layernorm_eps=1e-5, input="vectors", input_dim=16, input_projection=False, output_dim=0,
               prefix="")
    sd = export_onnx.ExportModel(cfg).state_dict()
    valid = os.path.join(folder, "micro.step.onnx")
    export_onnx.export(sd, cfg, valid, "step")
    base = onnx.load(valid)

    def variant(name, edit):
        m = onnx.ModelProto()
        m.CopyFrom(base)
        edit(m)
        onnx.save(m, os.path.join(folder, name))

    def drop(m, tensor):
        keep = [t for t in m.graph.initializer if t.name != tensor]
        del m.graph.initializer[:]
        m.graph.initializer.extend(keep)

    def reshape(m, tensor):
        t = next(t for t in m.graph.initializer if t.name == tensor)
        t.CopyFrom(onnx.numpy_helper.from_array(np.zeros((31, 16), np.float32), tensor))

    def meta(m, key, value):
        next(e for e in m.metadata_props if e.key == key).value = value

    # Pre-norm with gelu: not a fast-transformers layout, but a config linrt runs.
    pre = dict(cfg, norm_placement="pre", activation="gelu")
    torch.manual_seed(8)
    export_onnx.export(export_onnx.ExportModel(pre).state_dict(), pre, os.path.join(folder, "micro_prenorm.step.onnx"), "step")
    # Sinusoidal positions and application metadata: tokens in, logits out, sequence
    # form (a step-form ONNX has no position input), 300 positions of reference.
    pos = dict(cfg, input="tokens", input_dim=12, output_dim=12, positional="sinusoidal", positional_max_len=300)
    torch.manual_seed(9)
    model = export_onnx.ExportModel(pos)
    export_onnx.export(model.state_dict(), pos, os.path.join(folder, "micro_positional.sequence.onnx"), "sequence",
                       extra_metadata={"app.task": "test", "app.vocabulary": json.dumps(list("abcdefghijkl"))})
    tokens = torch.randint(0, 12, (1, 300))
    with torch.no_grad():
        y = model.sequence(tokens)[0].numpy()
    np.save(os.path.join(folder, "micro_positional.input.npy"), tokens[0].numpy().astype(np.int64))
    np.save(os.path.join(folder, "micro_positional.reference.npy"), y.astype(np.float32))
    # Sequence form as torch.onnx.export writes it without dynamic axes: the length
    # fixed at 40 positions (verification must use exactly that), and a fixed batch of 2.
    export_onnx.export(sd, cfg, os.path.join(folder, "micro_fixed40.sequence.onnx"), "sequence", steps=40,
                       fixed_length=True)
    export_onnx.export(sd, cfg, os.path.join(folder, "micro_batch2.sequence.onnx"), "sequence", steps=40,
                       fixed_length=True, batch=2)
    variant("missing_tensor.onnx", lambda m: drop(m, "layers.0.linear2.bias"))
    variant("shape_mismatch.onnx", lambda m: reshape(m, "layers.0.linear1.weight"))
    variant("contradictory_heads.onnx", lambda m: meta(m, "linrt.n_heads", "4"))
    variant("bad_metadata.onnx", lambda m: meta(m, "linrt.layernorm_eps", "tiny"))
    # A valid ONNX that is no transformer at all.
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    relu = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    onnx.save(onnx.helper.make_model(relu), os.path.join(folder, "not_a_transformer.onnx"))
    # The first half of a valid file followed by garbage.
    with open(valid, "rb") as f:
        raw = f.read()
    rng = np.random.default_rng(3)
    with open(os.path.join(folder, "corrupted.onnx"), "wb") as f:
        f.write(raw[: len(raw) // 2] + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())


# The paper's other feature maps (fast_transformers.feature_maps): one small model each,
# d_model 32, 2 layers, 2 heads of 16, vectors straight in, hidden state out.
FEATURE_MAP_MODELS = {
    "fm_relu": lambda fm: fm.ActivationFunctionFeatureMap.factory(torch.nn.functional.relu),
    "fm_favor": lambda fm: fm.Favor.factory(n_dims=32, deterministic_eval=True),
    "fm_random_fourier": lambda fm: fm.RandomFourierFeatures.factory(n_dims=24, deterministic_eval=True),
    "fm_smoothed_random_fourier": lambda fm: fm.SmoothedRandomFourierFeatures.factory(
        n_dims=21, smoothing=0.5, deterministic_eval=True),
    "fm_generalized_random": lambda fm: fm.GeneralizedRandomFeatures.factory(n_dims=20, deterministic_eval=True),
}


def build_feature_map_model(name, seed):
    """A fast-transformers encoder with the named feature map; Ω drawn once (as
    fast-transformers' own new_feature_map draws it) and snapped to a 1/8 grid, then
    frozen: deterministic_eval keeps eval-mode forwards from redrawing it."""
    import fast_transformers.feature_maps as fm

    # fast-transformers' orthogonal draw calls torch.qr, which PyTorch 2 removed.
    torch.qr = lambda a: torch.linalg.qr(a, mode="reduced")
    torch.manual_seed(seed)
    spec = dict(n_layers=2, n_heads=2, d_query=16, d_value=16, d_ff=64, activation="relu", final_norm=True,
                input="vectors", input_dim=32, input_projection=False, output_dim=0, prefix="")
    kw = dict(n_layers=2, n_heads=2, query_dimensions=16, value_dimensions=16, feed_forward_dimensions=64,
              activation="relu", final_normalization=True, dropout=0.0, attention_dropout=0.0,
              feature_map=FEATURE_MAP_MODELS[name](fm))
    encoder = TransformerEncoderBuilder.from_kwargs(attention_type="causal-linear", **kw).get()
    recurrent = RecurrentEncoderBuilder.from_kwargs(attention_type="linear", **kw).get()
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, fm.RandomFourierFeatures):
                module.new_feature_map("cpu")  # fast-transformers' own draw (orthogonal where it defaults so)
                module.omega.copy_(snap(module.omega, 1.0))
        snap_parameters(encoder)
    encoder.eval()
    recurrent.eval()
    recurrent.load_state_dict(encoder.state_dict(), strict=True)
    feature = encoder.layers[0].attention.inner_attention.feature_map
    kind, feature_dim, params = export_onnx.describe_feature_map(feature)
    cfg = dict(spec, d_model=32, norm_placement="post", feature_map=kind, feature_dim=feature_dim,
               feature_params=params, attention_eps=1e-6, layernorm_eps=1e-5)
    state_dict = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
    inputs = torch.randn(STEPS, 32)
    with torch.no_grad():
        state, rec = None, []
        for t in range(STEPS):
            y, state = recurrent(inputs[t : t + 1], state=state)
            rec.append(y[0])
        rec = torch.stack(rec)
        causal = encoder(inputs[None], attn_mask=TriangularCausalMask(STEPS))[0]
    return cfg, state_dict, inputs, rec, causal


def write_golden(name, cfg, sd, inputs, rec, causal):
    folder = os.path.join(ROOT, name)
    os.makedirs(folder, exist_ok=True)
    weights = None
    for form in ("step", "sequence"):
        path = os.path.join(folder, f"{form}.onnx")
        export_onnx.export(sd, cfg, path, form)
        # Both forms keep their weights in one shared external file (ONNX external
        # data), committed gzip'd: the small model would otherwise weigh 25 MB.
        proto = onnx.load(path)
        if os.path.exists(os.path.join(folder, "weights.bin")):
            os.remove(os.path.join(folder, "weights.bin"))  # onnx appends to it otherwise
        inits = sorted(proto.graph.initializer, key=lambda t: t.name)
        del proto.graph.initializer[:]
        proto.graph.initializer.extend(inits)
        onnx.save_model(proto, path, save_as_external_data=True,
                        all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
        with open(os.path.join(folder, "weights.bin"), "rb") as f:
            data = f.read()
        assert weights is None or weights == data, "step and sequence forms must share weights.bin"
        weights = data
    gzip_file(os.path.join(folder, "weights.bin"))
    np.save(os.path.join(folder, "input.npy"), inputs.numpy())
    np.save(os.path.join(folder, "recurrent.npy"), rec.numpy().astype(np.float32))
    np.save(os.path.join(folder, "causal.npy"), causal.numpy().astype(np.float32))
    gap = (rec - causal).abs().max().item() / causal.abs().max().item()
    print(f"{name}: d_model {cfg['d_model']}, recurrent vs causal max rel gap {gap:.2e}")


def make_error_cases():
    """tests/golden/cases/: graphs tract cannot run, for the converter's error lines: an
    op nobody implements (micro's Relu renamed), and a Reshape whose constant target
    does not fit the input (x [1, 16] to [1, 15])."""
    folder = os.path.join(ROOT, "cases")
    m = onnx.load(os.path.join(folder, "micro.step.onnx"))
    relu = next(n for n in m.graph.node if n.op_type == "Relu")
    relu.op_type, relu.name = "FancyActivation", relu.name.replace("Relu", "FancyActivation")
    onnx.save(m, os.path.join(folder, "unknown_op.onnx"))
    m = onnx.load(os.path.join(folder, "micro.step.onnx"))
    for node in m.graph.node:
        node.input[:] = ["x_reshaped" if i == "x" else i for i in node.input]
    target = onnx.helper.make_node("Constant", [], ["bad_shape"], name="bad_shape",
                                   value=onnx.numpy_helper.from_array(np.array([1, 15], np.int64)))
    reshape = onnx.helper.make_node("Reshape", ["x", "bad_shape"], ["x_reshaped"], name="/input/Reshape")
    nodes = [target, reshape] + list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    onnx.save(m, os.path.join(folder, "untypable.onnx"))


def make_feature_maps():
    for seed, name in enumerate(FEATURE_MAP_MODELS, start=20):
        write_golden(name, *build_feature_map_model(name, seed))
    # A feature map linrt does not run: micro's elu(x)+1 with softplus in place of elu.
    folder = os.path.join(ROOT, "cases")
    m = onnx.load(os.path.join(folder, "micro.step.onnx"))
    for node in m.graph.node:
        if node.op_type == "Elu":
            node.op_type, node.name = "Softplus", node.name.replace("Elu", "Softplus")
            del node.attribute[:]
    onnx.save(m, os.path.join(folder, "unsupported_feature_map.onnx"))


def main():
    if sys.argv[1:] == ["--feature-maps"]:
        make_feature_maps()
        make_error_cases()
        return
    make_cases()
    make_feature_maps()
    make_error_cases()
    for seed, (name, spec) in enumerate(MODELS.items()):
        cfg, sd, inputs, rec, causal = build(name, spec, seed)
        write_golden(name, cfg, sd, inputs, rec, causal)
        if name == "tiny":
            make_example(cfg, sd, inputs, rec)
            folder = os.path.join(ROOT, "softmax")
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, "sequence.onnx")
            export_softmax(cfg, sd, path)
            gzip_file(path)


if __name__ == "__main__":
    main()
