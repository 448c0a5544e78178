#!/usr/bin/env python3
"""Export a linear-attention transformer (fast-transformers layout) to ONNX for `linrt convert`.

Two forms, both accepted by the converter:
  step      one recurrent step: inputs (x, S_0, z_0, S_1, z_1, ...) -> (y, S_0', z_0', ...)
            with S_i: [N, H, F, Dv] and z_i: [N, H, F] per layer (F: features per
            head, d_query unless a random-feature map widens it);
  sequence  the whole causal sequence in cumsum form: x [N, T, ...] -> y [N, T, d_out].

The model can be a fast-transformers encoder (RecurrentEncoderBuilder with attention
"linear", or TransformerEncoderBuilder with "causal-linear"), a module that wraps one
(e.g. `self.encoder = builder.get()` next to an embedding and a head), or any plain
PyTorch module whose state_dict uses the same parameter names. Its weights are loaded
into an exportable twin written in plain PyTorch ops (fast-transformers' own causal
kernel is a C++ extension ONNX cannot trace); the twin computes exactly what
fast-transformers computes. Hyperparameters are written into the ONNX metadata
(`linrt.*` keys), which the converter reads first.

The feature map may be any of fast-transformers' that linrt runs (elu+1, relu,
Favor, RandomFourierFeatures, SmoothedRandomFourierFeatures, GeneralizedRandomFeatures
with relu); a random map's Ω is exported as the module holds it.

From Python, with the model object (heads, activation, norm placement, eps and the
feature map are read from it, and the export is checked against it):
  import export_onnx
  export_onnx.export_module(model, "model.onnx", form="step")   # or form="sequence"

From a checkpoint on the command line, with the function that builds the model (the
same reading and checking), or with the values a state_dict cannot tell:
  python models/export_onnx.py ckpt.pt --module my_model.py:build -o model.step.onnx
  python models/export_onnx.py ckpt.pt --n-heads 4 [--activation gelu] -o model.step.onnx
  linrt convert model.step.onnx -o model.lrt
"""
import argparse
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

OPSET = 17
# Module names of the input and output blocks, as `linrt convert` looks for them.
BLOCK_NAMES = {
    "embedding": ["embedding", "embed", "token_embedding", "tok_embeddings"],
    "input_projection": ["input_projection", "input_proj"],
    "output": ["output_projection", "head", "lm_head", "output"],
}


class ExportError(ValueError):
    """A model the exporter cannot export faithfully; the message says why and what to do."""


# The feature maps of fast-transformers (`fast_transformers.feature_maps`) by the names
# linrt gives them; the random ones keep their projection Ω in the buffer `omega`
# ([d_query, M]) of `attention.inner_attention.feature_map`, as fast-transformers does.
FEATURE_MAPS = ["elu+1", "relu", "favor", "random-fourier", "smoothed-random-fourier", "generalized-random"]
RANDOM_FEATURE_MAPS = FEATURE_MAPS[2:]


def omega_columns(cfg):
    """Columns M of Ω for the map's feature width `feature_dim` (F)."""
    f = cfg["feature_dim"]
    return {"favor": f // 2, "random-fourier": f // 2, "smoothed-random-fourier": (f - 1) // 2,
            "generalized-random": f}[cfg["feature_map"]]


class FeatureMap(nn.Module):
    """φ as fast-transformers computes it, with the constants linrt stores:
    input_scale = √softmax_temp, output_scale = √(2/n_dims) (random Fourier),
    log_offset = ½·ln(n_dims) (Favor), smoothing (smoothed random Fourier)."""

    def __init__(self, cfg):
        super().__init__()
        self.kind = cfg.get("feature_map", "elu+1")
        if self.kind not in FEATURE_MAPS:
            raise ValueError(f"unknown feature map {self.kind!r} (one of {', '.join(FEATURE_MAPS)})")
        p = cfg.get("feature_params", {})
        self.input_scale = p.get("input_scale", 1.0)
        self.output_scale = p.get("output_scale", 0.0)
        self.log_offset = p.get("log_offset", 0.0)
        self.smoothing = p.get("smoothing", 0.0)
        if self.kind in RANDOM_FEATURE_MAPS:
            self.register_buffer("omega", torch.zeros(cfg["d_query"], omega_columns(cfg)))

    def forward(self, x):
        if self.kind == "elu+1":
            return F.elu(x) + 1
        if self.kind == "relu":
            return F.relu(x)
        if self.kind != "generalized-random" or self.input_scale != 1.0:
            x = x * self.input_scale
        u = x.unsqueeze(-2).matmul(self.omega).squeeze(-2)
        if self.kind == "favor":
            offset = torch.einsum("...d,...d->...", x, x).unsqueeze(-1) * 0.5 + self.log_offset
            return torch.cat([torch.exp(u - offset), torch.exp(-u - offset)], dim=-1)
        if self.kind == "generalized-random":
            return F.relu(u)
        phi = torch.cat([torch.cos(u), torch.sin(u)], dim=-1) * self.output_scale
        if self.kind == "smoothed-random-fourier":
            phi = torch.cat([phi, torch.full(phi.shape[:-1] + (1,), self.smoothing, dtype=phi.dtype)], dim=-1)
        return phi


def describe_feature_map(fm):
    """(name, feature_dim, feature_params) of a fast-transformers feature map instance,
    or ExportError naming a map linrt does not run."""
    described = _describe_map(fm)
    if described[0] in RANDOM_FEATURE_MAPS and not torch.any(fm.omega != 0):
        raise ExportError(f"the {type(fm).__name__} feature map's omega is all zeros: fast-transformers draws it "
                          "on the first forward in training mode (or new_feature_map); draw it before exporting")
    return described


def _describe_map(fm):
    """What describe_feature_map returns, before the check of Ω. Activation maps are
    recognised by what they compute (they hold a Python function, often a lambda)."""
    cls = type(fm).__name__
    probe = torch.linspace(-4, 4, 97)

    def computes(f, want):
        try:
            with torch.no_grad():
                return torch.allclose(f(probe), want, atol=1e-6)
        except Exception:
            return False

    if hasattr(fm, "activation_function"):
        if computes(fm.activation_function, F.elu(probe) + 1):
            return "elu+1", 0, {}
        if computes(fm.activation_function, F.relu(probe)):
            return "relu", 0, {}
        raise ExportError(f"unsupported feature map {cls} with activation {fm.activation_function!r}: "
                         "linrt runs elu+1, relu, Favor, RandomFourierFeatures, SmoothedRandomFourierFeatures "
                         "and GeneralizedRandomFeatures (relu kernel)")
    if not hasattr(fm, "omega"):
        raise ExportError(f"unsupported feature map {cls}")
    m = fm.omega.shape[1]
    scale = math.sqrt(fm.softmax_temp)
    if cls == "Favor":
        if fm.stabilize:
            raise ExportError("unsupported feature map Favor(stabilize=True): its offset is a maximum over the "
                             "whole sequence, which a causal stream cannot know")
        return "favor", 2 * m, {"input_scale": scale, "log_offset": 0.5 * math.log(fm.n_dims)}
    if cls == "GeneralizedRandomFeatures":
        if not computes(fm.kernel_fn, F.relu(probe)):
            raise ExportError(f"unsupported feature map GeneralizedRandomFeatures with kernel_fn {fm.kernel_fn!r} "
                             "(linrt runs its default, relu)")
        return "generalized-random", m, {"input_scale": scale if fm.softmax_temp != 1.0 else 1.0}
    if cls == "SmoothedRandomFourierFeatures":
        return "smoothed-random-fourier", 2 * m + 1, {"input_scale": scale,
                                                     "output_scale": math.sqrt(2 / fm.n_dims),
                                                     "smoothing": float(fm.smoothing)}
    if cls == "RandomFourierFeatures":
        return "random-fourier", 2 * m, {"input_scale": scale, "output_scale": math.sqrt(2 / fm.n_dims)}
    raise ExportError(f"unsupported feature map {cls}")


class InnerAttention(nn.Module):
    """Holds the feature map where fast-transformers' LinearAttention holds it."""

    def __init__(self, cfg):
        super().__init__()
        self.feature_map = FeatureMap(cfg)


class Attention(nn.Module):
    """fast-transformers' AttentionLayer with linear attention and its feature map."""

    def __init__(self, d_model, n_heads, d_query, d_value, eps, cfg=None):
        super().__init__()
        self.n_heads, self.d_query, self.d_value, self.eps = n_heads, d_query, d_value, eps
        self.query_projection = nn.Linear(d_model, d_query * n_heads)
        self.key_projection = nn.Linear(d_model, d_query * n_heads)
        self.value_projection = nn.Linear(d_model, d_value * n_heads)
        self.out_projection = nn.Linear(d_value * n_heads, d_model)
        self.inner_attention = InnerAttention(cfg or {"feature_map": "elu+1"})

    def phi(self, x):
        return self.inner_attention.feature_map(x)

    def step(self, x, S, z):
        N, H = x.shape[0], self.n_heads
        Q = self.phi(self.query_projection(x).view(N, H, -1))
        K = self.phi(self.key_projection(x).view(N, H, -1))
        V = self.value_projection(x).view(N, H, -1)
        z = z + K
        S = S + torch.einsum("nhd,nhm->nhdm", K, V)
        Z = 1.0 / (torch.einsum("nhd,nhd->nh", Q, z) + self.eps)
        out = torch.einsum("nhd,nhdm->nhm", Q, S) * Z[:, :, None]
        return self.out_projection(out.reshape(N, -1)), S, z

    def sequence(self, x, quadratic=False):
        N, T, H = x.shape[0], x.shape[1], self.n_heads
        Q = self.phi(self.query_projection(x).view(N, T, H, -1))
        K = self.phi(self.key_projection(x).view(N, T, H, -1))
        V = self.value_projection(x).view(N, T, H, -1)
        if quadratic:
            # The same causal linear attention through the T×T matrix of φ(q)·φ(k):
            # equal up to rounding, and much cheaper to train for short sequences than
            # materialising every prefix sum S_t (N·T·H·Dk·Dv values).
            A = torch.einsum("nthd,nshd->nhts", Q, K).tril()
            out = torch.einsum("nhts,nshm->nthm", A, V) / (A.sum(-1).transpose(1, 2)[..., None] + self.eps)
            return self.out_projection(out.reshape(N, T, -1))
        KV = torch.cumsum(torch.einsum("nthd,nthm->nthdm", K, V), dim=1)
        Zc = torch.cumsum(K, dim=1)
        Z = 1.0 / (torch.einsum("nthd,nthd->nth", Q, Zc) + self.eps)
        out = torch.einsum("nthd,nthdm->nthm", Q, KV) * Z[:, :, :, None]
        return self.out_projection(out.reshape(N, T, -1))


class EncoderLayer(nn.Module):
    """fast-transformers' TransformerEncoderLayer (post-norm), or pre-norm on request."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg["d_model"]
        self.attention = Attention(d, cfg["n_heads"], cfg["d_query"], cfg["d_value"], cfg["attention_eps"], cfg)
        self.linear1 = nn.Linear(d, cfg["d_ff"])
        self.linear2 = nn.Linear(cfg["d_ff"], d)
        self.norm1 = nn.LayerNorm(d, eps=cfg["layernorm_eps"])
        self.norm2 = nn.LayerNorm(d, eps=cfg["layernorm_eps"])
        self.act = F.gelu if cfg["activation"] == "gelu" else F.relu
        self.pre = cfg["norm_placement"] == "pre"

    def ffn(self, x):
        return self.linear2(self.act(self.linear1(x)))

    def forward(self, x, attend):
        if self.pre:
            x = x + attend(self.norm1(x))
            return x + self.ffn(self.norm2(x))
        x = self.norm1(x + attend(x))
        return self.norm2(x + self.ffn(x))


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(cfg) for _ in range(cfg["n_layers"])])
        self.norm = nn.LayerNorm(cfg["d_model"], eps=cfg["layernorm_eps"]) if cfg["final_norm"] else None


class ExportModel(nn.Module):
    """Input block -> encoder (under `prefix`) -> output block, with fast-transformers names."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d = cfg["d_model"]
        # Input and output blocks keep the user's module names (see BLOCK_NAMES).
        self.in_name = cfg.get("input_block", "embedding" if cfg["input"] == "tokens" else "input_projection")
        self.out_name = cfg.get("output_block", "output_projection")
        if cfg["input"] == "tokens":
            setattr(self, self.in_name, nn.Embedding(cfg["input_dim"], d))
        elif cfg["input_projection"]:
            setattr(self, self.in_name, nn.Linear(cfg["input_dim"], d))
        prefix = cfg["prefix"].rstrip(".")
        self.encoder_path = prefix
        encoder = Encoder(cfg)
        if prefix:
            setattr(self, prefix, encoder)
        else:
            self.layers, self.norm = encoder.layers, encoder.norm
        if cfg["output_dim"]:
            setattr(self, self.out_name, nn.Linear(d, cfg["output_dim"]))
        # Optional sinusoidal positions, added after the input block. Not a parameter:
        # the table is a fixed function of (position, d_model); the sequence-form ONNX
        # carries `positional_max_len` rows of it as the initializer `positional_encoding`
        # (how the converter recognises it), which bounds the steps tract can verify.
        self.positional = cfg.get("positional", "none")
        if self.positional == "sinusoidal":
            self.register_buffer("positional_encoding", sinusoidal_table(cfg.get("positional_max_len", 1024), d))
        elif self.positional != "none":
            raise ValueError(f"unknown positional encoding {self.positional!r} (none or sinusoidal)")

    def _encoder(self):
        return getattr(self, self.encoder_path) if self.encoder_path else self

    def _input_block(self, x):
        if self.cfg["input"] == "tokens" or self.cfg["input_projection"]:
            return getattr(self, self.in_name)(x)
        return x

    def _output_block(self, h):
        enc = self._encoder()
        if enc.norm is not None:
            h = enc.norm(h)
        return getattr(self, self.out_name)(h) if self.cfg["output_dim"] else h

    def step(self, x, *states):
        if self.positional != "none":
            raise ValueError("the step form has no position input: export a positional model in sequence form")
        h, new_states = self._input_block(x), []
        for i, layer in enumerate(self._encoder().layers):
            S, z = states[2 * i], states[2 * i + 1]
            box = {}

            def attend(u, layer=layer, S=S, z=z, box=box):
                out, box["S"], box["z"] = layer.attention.step(u, S, z)
                return out

            h = layer(h, attend)
            new_states += [box["S"], box["z"]]
        return (self._output_block(h), *new_states)

    def sequence(self, x, quadratic=False):
        """The causal sequence; `quadratic` computes attention through the T×T matrix
        (for training; the export keeps the cumsum form)."""
        h = self._input_block(x)
        if self.positional == "sinusoidal":
            h = h + self.positional_encoding[: h.shape[1]]
        for layer in self._encoder().layers:
            h = layer(h, lambda u, att=layer.attention: att.sequence(u, quadratic))
        return self._output_block(h)


def sinusoidal_table(max_len, d):
    """The sinusoidal position encoding as linrt computes it: column i of position p is
    sin(p·ω) (even i) or cos(p·ω) (odd i), ω = 10000^(-2⌊i/2⌋/d), in float64, then
    rounded to float32."""
    import numpy as np

    pos = np.arange(max_len, dtype=np.float64)[:, None]
    omega = np.array([10000.0 ** (-(2 * (i // 2)) / d) for i in range(d)], dtype=np.float64)
    angle = pos * omega
    table = np.where(np.arange(d) % 2 == 0, np.sin(angle), np.cos(angle))
    return torch.from_numpy(table.astype(np.float32))


class _Form(nn.Module):
    def __init__(self, model, form):
        super().__init__()
        self.model, self.form = model, form

    def forward(self, *args):
        return self.model.step(*args) if self.form == "step" else self.model.sequence(*args)


def infer_config(state_dict, n_heads, embedding=None, input_projection=None, output_head=None, **overrides):
    """Hyperparameters from weight shapes (n_heads must be given: shapes cannot tell it).
    `embedding`, `input_projection` and `output_head` name the input and output blocks
    when they are not called one of BLOCK_NAMES (as `linrt convert` takes them)."""
    sd = state_dict
    suffix = "layers.0.attention.query_projection.weight"
    qname = next((k for k in sd if k.endswith(suffix)), None)
    if qname is None:
        raise ExportError(f"no parameter ending in {suffix}: not a fast-transformers style encoder "
                          "(its layers must be layers.<i>.attention.query_projection etc.)")
    prefix = qname[: -len(suffix)]
    n_layers = 0
    while f"{prefix}layers.{n_layers}.linear1.weight" in sd:
        n_layers += 1
    d_model = sd[qname].shape[1]
    q_width = sd[qname].shape[0]
    v_width = sd[f"{prefix}layers.0.attention.value_projection.weight"].shape[0]
    if not isinstance(n_heads, int) or n_heads < 1 or q_width % n_heads or v_width % n_heads:
        raise ExportError(f"n_heads {n_heads} does not divide the query width {q_width} and the value width "
                          f"{v_width}: the widths are heads x per-head dims (d_model {d_model} is usually "
                          "heads x value dims); pass the head count the model was built with")
    if any(k.endswith("inner_attention.feature_map.omega") for k in sd) and "feature_map" not in overrides:
        raise ExportError("the checkpoint holds random-feature maps (feature_map.omega buffers), whose kind "
                          "and constants a state_dict does not tell: export from the module "
                          "(export_module, or --module on the command line)")
    cfg = dict(
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        d_query=q_width // n_heads,
        d_value=v_width // n_heads,
        d_ff=sd[f"{prefix}layers.0.linear1.weight"].shape[0],
        activation="relu",
        norm_placement="post",
        final_norm=f"{prefix}norm.weight" in sd,
        feature_map="elu+1",
        attention_eps=1e-6,
        layernorm_eps=1e-5,
        prefix=prefix,
        output_dim=0,
    )
    # The same conventional module names `linrt convert` looks for, or the ones given.
    def block(given, names, what, flag):
        if given:
            name = given.rstrip(".")
            if f"{name}.weight" not in sd:
                raise ExportError(f"{flag} {given}: the checkpoint has no {name}.weight for the {what}")
            return name
        return next((n for n in names if f"{n}.weight" in sd), None)

    head = block(output_head, BLOCK_NAMES["output"], "output head", "--output-head")
    if head:
        cfg.update(output_block=head, output_dim=sd[f"{head}.weight"].shape[0])
    emb = block(embedding, BLOCK_NAMES["embedding"], "embedding", "--embedding")
    proj = None if emb else block(input_projection, BLOCK_NAMES["input_projection"], "input projection",
                                  "--input-projection")
    if emb:
        cfg.update(input="tokens", input_dim=sd[f"{emb}.weight"].shape[0], input_projection=False, input_block=emb)
    elif proj:
        cfg.update(input="vectors", input_dim=sd[f"{proj}.weight"].shape[1], input_projection=True, input_block=proj)
    else:
        cfg.update(input="vectors", input_dim=d_model, input_projection=False)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    # Anything left over would be silently dropped: name it and say how to map it.
    known = set(ExportModel(cfg).state_dict()) - {"positional_encoding"}
    unknown = sorted(k for k in sd if k not in known)
    if unknown:
        blocks = sorted({k.rsplit(".", 1)[0] for k in unknown})
        raise ExportError(f"parameters the exporter does not map: {', '.join(unknown[:6])}"
                          f"{' ...' if len(unknown) > 6 else ''}; if {', '.join(blocks[:3])} is the input or "
                          "output block, name it with --embedding, --input-projection or --output-head "
                          "(input_projection=/output_head= from Python)")
    return cfg


def export(state_dict, cfg, path, form, steps=8, extra_metadata=None, fixed_length=False, batch=1):
    """Writes `path` in `form` ("step" or "sequence") with linrt.* metadata, plus
    `extra_metadata`: application keys (`app.*`, e.g. a vocabulary or front-end
    parameters) that `linrt convert` copies into the .lrt file unchanged. The
    sequence form's length is dynamic unless `fixed_length` (then `steps`, as
    torch.onnx.export writes it without dynamic axes); `batch` is the batch size
    the graph declares."""
    import os

    model = ExportModel(cfg)
    if model.positional != "none":  # the table is derived, not learned: fill it in
        state_dict = dict(state_dict, positional_encoding=model.positional_encoding)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        # PyTorch's own message is a multi-line list; say what it means here.
        detail = " ".join(str(e).split())
        raise ExportError(f"the weights do not fit the configuration ({detail[:300]}): widths are heads x per-head "
                          "dims (d_model is usually heads x value dims); check --n-heads and the block names") from None
    model.eval()
    H, Dk, Dv, L = cfg["n_heads"], features_per_head(cfg), cfg["d_value"], cfg["n_layers"]
    tokens = cfg["input"] == "tokens"
    if form == "step":
        x = torch.zeros(1, dtype=torch.long) if tokens else torch.zeros(1, cfg["input_dim"])
        states = []
        for _ in range(L):
            states += [torch.zeros(1, H, Dk, Dv), torch.zeros(1, H, Dk)]
        args = (x, *states)
        in_names = ["x"] + [f"{k}_{i}" for i in range(L) for k in ("S", "z")]
        out_names = ["y"] + [f"{k}_out_{i}" for i in range(L) for k in ("S", "z")]
        dynamic = None
    else:
        x = torch.zeros(batch, steps, dtype=torch.long) if tokens else torch.zeros(batch, steps, cfg["input_dim"])
        args = (x,)
        in_names, out_names = ["x"], ["y"]
        dynamic = None if fixed_length else {"x": {1: "T"}, "y": {1: "T"}}
    # Written next to the target and renamed: a failure leaves no broken file behind.
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        _trace(model, form, args, tmp, in_names, out_names, dynamic, cfg, extra_metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _trace(model, form, args, path, in_names, out_names, dynamic, cfg, extra_metadata):
    import onnx

    with torch.no_grad():
        torch.onnx.export(
            _Form(model, form),
            args,
            path,
            input_names=in_names,
            output_names=out_names,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            # Folding would transpose Linear weights into anonymous initializers;
            # keeping it off preserves the parameter names the converter maps.
            do_constant_folding=False,
            dynamo=False,
        )
    proto = onnx.load(path)
    # Strip the "model." the _Form wrapper adds, so names are exactly the state_dict's.
    # (torch writes a parameter equal to another as Identity(other): rename those too.)
    def strip(name):
        return name[len("model."):] if name.startswith("model.") else name

    for t in proto.graph.initializer:
        t.name = strip(t.name)
    for node in proto.graph.node:
        node.input[:] = [strip(i) for i in node.input]
        node.output[:] = [strip(o) for o in node.output]
    meta = metadata(cfg, form)
    for k, v in (extra_metadata or {}).items():
        if not k.startswith("app."):
            raise ValueError(f"extra metadata key {k!r}: application keys start with 'app.'")
        meta[k] = v
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, path)


def features_per_head(cfg):
    """F: d_query for elu+1 and relu, `feature_dim` for the random maps."""
    return cfg["feature_dim"] if cfg.get("feature_map", "elu+1") in RANDOM_FEATURE_MAPS else cfg["d_query"]


def metadata(cfg, form):
    keys = ["d_model", "n_layers", "n_heads", "d_query", "d_value", "d_ff", "activation", "norm_placement",
            "feature_map", "input", "input_dim", "output_dim"]
    meta = {f"linrt.{k}": str(cfg[k]) for k in keys}
    meta["linrt.final_norm"] = "true" if cfg["final_norm"] else "false"
    meta["linrt.input_projection"] = "true" if cfg["input_projection"] else "false"
    meta["linrt.attention_eps"] = repr(float(cfg["attention_eps"]))
    meta["linrt.layernorm_eps"] = repr(float(cfg["layernorm_eps"]))
    meta["linrt.form"] = form
    meta["linrt.positional"] = cfg.get("positional", "none")
    meta["linrt.prefix"] = cfg["prefix"]
    if cfg["feature_map"] in RANDOM_FEATURE_MAPS:
        meta["linrt.feature_dim"] = str(cfg["feature_dim"])
        for k, v in cfg["feature_params"].items():
            meta[f"linrt.feature_{k}"] = repr(float(v))
    return meta


def find_encoder(module):
    """The encoder inside `module` (itself, or the first submodule with `layers` whose
    layers have an attention block), with its parameter-name prefix."""
    for name, m in module.named_modules():
        layers = getattr(m, "layers", None)
        if isinstance(layers, nn.ModuleList) and len(layers) and hasattr(layers[0], "attention"):
            return m, (name + "." if name else "")
    raise ExportError("no encoder found in the module: expected a fast-transformers encoder (a `layers` list of "
                      "layers with an `attention` block), or a module holding one")


def _activation_name(fn):
    probe = torch.linspace(-4, 4, 97)
    with torch.no_grad():
        for name, ref in (("relu", F.relu), ("gelu", F.gelu)):
            try:
                if torch.allclose(fn(probe), ref(probe), atol=1e-6):
                    return name
            except Exception:
                pass
    raise ExportError(f"unsupported feed-forward activation {fn!r}: linrt runs relu and gelu (exact, erf form)")


def read_module_config(module):
    """Everything the exporter needs that weight shapes cannot tell, read from the
    module itself: heads, activation, norm placement, both eps and the feature map."""
    enc, prefix = find_encoder(module)
    layer = enc.layers[0]
    att = layer.attention
    inner = getattr(att, "inner_attention", None)
    if type(inner).__name__ == "LinearAttention":
        raise ExportError("the encoder uses non-causal linear attention (attention_type='linear' in "
                          "TransformerEncoderBuilder): linrt streams causal models; build it with 'causal-linear'")
    if type(inner).__name__ not in ("CausalLinearAttention", "RecurrentLinearAttention", "InnerAttention"):
        raise ExportError(f"unsupported attention {type(inner).__name__}: linrt runs causal linear attention")
    fm = inner.feature_map
    if isinstance(fm, FeatureMap):  # this file's own twin
        kind, params = fm.kind, {k: getattr(fm, k) for k in ("input_scale", "output_scale", "log_offset", "smoothing")}
        feature_dim = {"favor": 2, "random-fourier": 2, "generalized-random": 1}.get(kind, 0) * (
            fm.omega.shape[1] if hasattr(fm, "omega") else 0)
        if kind == "smoothed-random-fourier":
            feature_dim = 2 * fm.omega.shape[1] + 1
        used = {"favor": ["input_scale", "log_offset"], "random-fourier": ["input_scale", "output_scale"],
                "smoothed-random-fourier": ["input_scale", "output_scale", "smoothing"],
                "generalized-random": ["input_scale"]}.get(kind, [])
        params = {k: v for k, v in params.items() if k in used}
    else:
        kind, feature_dim, params = describe_feature_map(fm)
    act = getattr(layer, "activation", None) or getattr(layer, "act", None)
    cfg = dict(
        n_heads=att.n_heads,
        activation=_activation_name(act) if act is not None else None,
        # fast-transformers' layers are post-norm; this file's twin says which it is.
        norm_placement="pre" if getattr(layer, "pre", False) else "post",
        attention_eps=float(getattr(inner, "eps", getattr(att, "eps", 1e-6))),
        layernorm_eps=float(layer.norm1.eps),
        feature_map=kind,
        prefix=prefix,
    )
    if kind in RANDOM_FEATURE_MAPS:
        cfg.update(feature_dim=feature_dim, feature_params=params)
    return cfg


def _run_encoder(module, h):
    """The user's encoder on hidden states h [1, T, d_model], causally; None when its
    call signature is unknown (a plain module that is not fast-transformers')."""
    if isinstance(module, ExportModel):
        return _twin_encoder(module, h)
    enc, _ = find_encoder(module)
    from_ft = type(enc).__module__.startswith("fast_transformers")
    name = type(enc).__name__
    if name.startswith("Recurrent"):
        state, ys = None, []
        for t in range(h.shape[1]):
            y, state = enc(h[:, t], state=state)
            ys.append(y)
        return torch.stack(ys, dim=1)
    if from_ft:
        from fast_transformers.masking import TriangularCausalMask

        return enc(h, attn_mask=TriangularCausalMask(h.shape[1]))
    return None  # a plain module whose call signature we do not know


def _twin_encoder(model, h):
    enc = model._encoder()
    for layer in enc.layers:
        h = layer(h, lambda u, att=layer.attention: att.sequence(u))
    return enc.norm(h) if enc.norm is not None else h


def check_against_module(module, cfg, sd, steps=24):
    """Runs the user's encoder and the exporter's twin (what the ONNX is traced from)
    on the same random inputs; refuses a mismatch, naming the likely cause."""
    twin = ExportModel(cfg)
    twin.load_state_dict(sd, strict=True)
    twin.eval()
    # Its own generator: the caller's random stream stays where it was.
    h = torch.randn(1, steps, cfg["d_model"], generator=torch.Generator().manual_seed(1234))
    was_training = module.training
    module.eval()
    # fast-transformers redraws a random map's Ω on every forward unless told not to;
    # the export freezes the Ω it finds, so the check must run with that one.
    frozen = [m for m in module.modules() if hasattr(m, "new_feature_map") and hasattr(m, "omega")]
    for m in frozen:
        m.new_feature_map = lambda device: None
    try:
        with torch.no_grad():
            want = _run_encoder(module, h)
            if want is None:
                return None
            got = _twin_encoder(twin, h)
    finally:
        for m in frozen:
            del m.new_feature_map
        module.train(was_training)
    err = ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()
    if err <= 1e-4:
        return err
    causes = []
    for key, values in (("activation", ["relu", "gelu"]), ("norm_placement", ["post", "pre"])):
        for v in values:
            if v != cfg[key] and _matches(dict(cfg, **{key: v}), sd, h, want):
                causes.append(f"the model's {key.replace('_', ' ')} is {v}, not {cfg[key]}")
    qw = cfg["n_heads"] * cfg["d_query"]
    for heads in range(1, qw + 1):
        if heads != cfg["n_heads"] and qw % heads == 0 and (cfg["n_heads"] * cfg["d_value"]) % heads == 0:
            alt = dict(cfg, n_heads=heads, d_query=qw // heads, d_value=cfg["n_heads"] * cfg["d_value"] // heads)
            if _matches(alt, sd, h, want):
                causes.append(f"the model has {heads} heads, not {cfg['n_heads']}")
    why = "; ".join(causes) if causes else "the module does not compute what its parameter names describe"
    raise ExportError(f"the export would differ from your module by {err:.1e} of its output scale: {why}")


def _matches(cfg, sd, h, want):
    try:
        twin = ExportModel(cfg)
        twin.load_state_dict(sd, strict=True)
        twin.eval()
        with torch.no_grad():
            got = _twin_encoder(twin, h)
        return ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item() <= 1e-4
    except Exception:
        return False


def export_module(module, path, form="step", n_heads=None, **overrides):
    """Exports a fast-transformers encoder, or a module wrapping one, as it is.

    Heads, activation, norm placement, both eps and the feature map are read from the
    module; an override that contradicts the module is refused. Before writing, the
    module and the exporter's twin run on the same random inputs, and a mismatch is
    refused with its likely cause. Returns the config written."""
    read = read_module_config(module)
    given = dict(overrides, n_heads=n_heads)
    for key, value in given.items():
        if value is not None and key in read and read[key] is not None and read[key] != value:
            raise ExportError(f"{key}={value!r} contradicts the module, whose {key} is {read[key]!r}")
    sd = {k: v.detach() for k, v in module.state_dict().items()}
    merged = {k: v for k, v in read.items() if k != "n_heads" and v is not None}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    cfg = infer_config(sd, read["n_heads"], **merged)
    if check_against_module(module, cfg, sd) is None:
        print(f"warning: {type(module).__name__} is not a fast-transformers encoder, so the export was not "
              "run against it; check the ONNX against your model's outputs", file=sys.stderr)
    export(sd, cfg, path, form)
    return cfg


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return obj[key]
    return obj


def load_module(spec, state_dict):
    """`file.py:function` or `package.module:function`: calls it to build the model and
    loads the checkpoint's weights into it."""
    import importlib
    import importlib.util

    where, _, fn = spec.rpartition(":")
    if not where or not fn:
        raise ExportError(f"--module {spec}: expected file.py:function or package.module:function")
    if where.endswith(".py"):
        loader = importlib.util.spec_from_file_location("user_model", where)
        if loader is None:
            raise ExportError(f"--module {spec}: cannot read {where}")
        mod = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(mod)
    else:
        mod = importlib.import_module(where)
    build = getattr(mod, fn, None)
    if build is None:
        raise ExportError(f"--module {spec}: {where} has no {fn}")
    module = build()
    missing, unexpected = module.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise ExportError(f"the checkpoint does not fit the module {spec} builds: missing {missing[:4]}, "
                          f"unexpected {unexpected[:4]}")
    return module


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a state_dict or a {'state_dict': ...} / {'model': ...} checkpoint")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--form", choices=["step", "sequence"], default="step")
    p.add_argument("--module", help="file.py:function (or package.module:function) that builds the model: the "
                   "exporter then reads heads, activation and feature map from it and checks the export against it")
    p.add_argument("--n-heads", type=int, help="required without --module")
    p.add_argument("--activation", choices=["relu", "gelu"])
    p.add_argument("--norm", "--norm-placement", dest="norm_placement", choices=["post", "pre"])
    p.add_argument("--attention-eps", type=float)
    p.add_argument("--layernorm-eps", type=float)
    p.add_argument("--embedding", help="module name of the token embedding, if not a conventional one")
    p.add_argument("--input-projection", help="module name of the input projection (e.g. frontend)")
    p.add_argument("--output-head", help="module name of the output head (e.g. classifier)")
    a = p.parse_args()
    try:
        sd = load_state_dict(a.checkpoint)
        blocks = dict(embedding=a.embedding, input_projection=a.input_projection, output_head=a.output_head)
        flags = dict(activation=a.activation, norm_placement=a.norm_placement, attention_eps=a.attention_eps,
                     layernorm_eps=a.layernorm_eps)
        if a.module:
            cfg = export_module(load_module(a.module, sd), a.output, a.form, n_heads=a.n_heads, **blocks, **flags)
        else:
            if a.n_heads is None:
                raise ExportError("pass --n-heads (weight shapes cannot tell it), or --module to read it from the model")
            cfg = infer_config(sd, a.n_heads, **blocks, **flags)
            export(sd, cfg, a.output, a.form)
            print("note: exported from weights alone; --module builds your model and checks the export against it",
                  file=sys.stderr)
    except (ExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {a.output} ({a.form} form): " + ", ".join(f"{k}={v}" for k, v in cfg.items()))


if __name__ == "__main__":
    main()
