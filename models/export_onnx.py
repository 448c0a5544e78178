#!/usr/bin/env python3
"""Export a linear-attention transformer (fast-transformers layout) to ONNX for `linrt convert`.

Two forms, both accepted by the converter:
  step      one recurrent step: inputs (x, S_0, z_0, S_1, z_1, ...) -> (y, S_0', z_0', ...)
            with S_i: [N, H, Dk, Dv] and z_i: [N, H, Dk] per layer;
  sequence  the whole causal sequence in cumsum form: x [N, T, ...] -> y [N, T, d_out].

The model can be a fast-transformers encoder (RecurrentEncoderBuilder with attention
"linear", or TransformerEncoderBuilder with "causal-linear"), a module that wraps one
(e.g. `self.encoder = builder.get()` next to an embedding and a head), or any plain
PyTorch module whose state_dict uses the same parameter names. Its weights are loaded
into an exportable twin written in plain PyTorch ops (fast-transformers' own causal
kernel is a C++ extension ONNX cannot trace); the twin computes exactly what
fast-transformers computes. Hyperparameters are written into the ONNX metadata
(`linrt.*` keys), which the converter reads first.

From Python, with the model object:
  import export_onnx
  export_onnx.export_module(model, "model.onnx", form="step")   # or form="sequence"

From a checkpoint on the command line:
  python models/export_onnx.py ckpt.pt --n-heads 4 --form step -o model.step.onnx
  linrt convert model.step.onnx -o model.lrt
"""
import argparse
import math

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


class Attention(nn.Module):
    """fast-transformers' AttentionLayer with linear attention, elu(x)+1 feature map."""

    def __init__(self, d_model, n_heads, d_query, d_value, eps):
        super().__init__()
        self.n_heads, self.d_query, self.d_value, self.eps = n_heads, d_query, d_value, eps
        self.query_projection = nn.Linear(d_model, d_query * n_heads)
        self.key_projection = nn.Linear(d_model, d_query * n_heads)
        self.value_projection = nn.Linear(d_model, d_value * n_heads)
        self.out_projection = nn.Linear(d_value * n_heads, d_model)

    def step(self, x, S, z):
        N, H = x.shape[0], self.n_heads
        Q = F.elu(self.query_projection(x).view(N, H, -1)) + 1
        K = F.elu(self.key_projection(x).view(N, H, -1)) + 1
        V = self.value_projection(x).view(N, H, -1)
        z = z + K
        S = S + torch.einsum("nhd,nhm->nhdm", K, V)
        Z = 1.0 / (torch.einsum("nhd,nhd->nh", Q, z) + self.eps)
        out = torch.einsum("nhd,nhdm->nhm", Q, S) * Z[:, :, None]
        return self.out_projection(out.reshape(N, -1)), S, z

    def sequence(self, x, quadratic=False):
        N, T, H = x.shape[0], x.shape[1], self.n_heads
        Q = F.elu(self.query_projection(x).view(N, T, H, -1)) + 1
        K = F.elu(self.key_projection(x).view(N, T, H, -1)) + 1
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
        self.attention = Attention(d, cfg["n_heads"], cfg["d_query"], cfg["d_value"], cfg["attention_eps"])
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


def infer_config(state_dict, n_heads, **overrides):
    """Hyperparameters from weight shapes (n_heads must be given: shapes cannot tell it)."""
    sd = state_dict
    qname = next(k for k in sd if k.endswith("layers.0.attention.query_projection.weight"))
    prefix = qname[: -len("layers.0.attention.query_projection.weight")]
    n_layers = 0
    while f"{prefix}layers.{n_layers}.linear1.weight" in sd:
        n_layers += 1
    d_model = sd[qname].shape[1]
    cfg = dict(
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        d_query=sd[qname].shape[0] // n_heads,
        d_value=sd[f"{prefix}layers.0.attention.value_projection.weight"].shape[0] // n_heads,
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
    # The same conventional module names `linrt convert` looks for.
    def block(names):
        return next((n for n in names if f"{n}.weight" in sd), None)

    head = block(BLOCK_NAMES["output"])
    if head:
        cfg.update(output_block=head, output_dim=sd[f"{head}.weight"].shape[0])
    emb, proj = block(BLOCK_NAMES["embedding"]), block(BLOCK_NAMES["input_projection"])
    if emb:
        cfg.update(input="tokens", input_dim=sd[f"{emb}.weight"].shape[0], input_projection=False, input_block=emb)
    elif proj:
        cfg.update(input="vectors", input_dim=sd[f"{proj}.weight"].shape[1], input_projection=True, input_block=proj)
    else:
        cfg.update(input="vectors", input_dim=d_model, input_projection=False)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def export(state_dict, cfg, path, form, steps=8, extra_metadata=None, fixed_length=False, batch=1):
    """Writes `path` in `form` ("step" or "sequence") with linrt.* metadata, plus
    `extra_metadata`: application keys (`app.*`, e.g. a vocabulary or front-end
    parameters) that `linrt convert` copies into the .lrt file unchanged. The
    sequence form's length is dynamic unless `fixed_length` (then `steps`, as
    torch.onnx.export writes it without dynamic axes); `batch` is the batch size
    the graph declares."""
    import onnx

    model = ExportModel(cfg)
    if model.positional != "none":  # the table is derived, not learned: fill it in
        state_dict = dict(state_dict, positional_encoding=model.positional_encoding)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    H, Dk, Dv, L = cfg["n_heads"], cfg["d_query"], cfg["d_value"], cfg["n_layers"]
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
    return meta


def export_module(module, path, form="step", n_heads=None, **overrides):
    """Exports a fast-transformers encoder, or a module wrapping one, as it is.

    The head count is read from the module's attention layers when not given; set
    `activation="gelu"` or `norm_placement="pre"` when the model uses them."""
    if n_heads is None:
        heads = {m.n_heads for m in module.modules() if hasattr(m, "n_heads") and hasattr(m, "query_projection")}
        if len(heads) != 1:
            raise ValueError("cannot read n_heads from the module; pass n_heads=")
        n_heads = heads.pop()
    sd = {k: v.detach() for k, v in module.state_dict().items()}
    cfg = infer_config(sd, n_heads, **overrides)
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a state_dict, a {'state_dict': ...} checkpoint, or a pickled module")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--form", choices=["step", "sequence"], default="step")
    p.add_argument("--n-heads", type=int, required=True)
    p.add_argument("--activation", choices=["relu", "gelu"])
    p.add_argument("--norm-placement", choices=["post", "pre"])
    p.add_argument("--attention-eps", type=float)
    p.add_argument("--layernorm-eps", type=float)
    a = p.parse_args()
    sd = load_state_dict(a.checkpoint)
    cfg = infer_config(sd, a.n_heads, activation=a.activation, norm_placement=a.norm_placement,
                       attention_eps=a.attention_eps, layernorm_eps=a.layernorm_eps)
    export(sd, cfg, a.output, a.form)
    print(f"wrote {a.output} ({a.form} form): " + ", ".join(f"{k}={v}" for k, v in cfg.items()))


if __name__ == "__main__":
    main()
