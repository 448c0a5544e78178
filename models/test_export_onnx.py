#!/usr/bin/env python3
"""Tests of export_onnx.py against fast-transformers modules: what the exporter reads
from a module, the mistakes it refuses, and its command line.

  python models/test_export_onnx.py      # about 20 s; needs torch, onnx, fast-transformers

.ci/run runs it when a Python with those packages is there ($LINRT_PYTHON, default
/opt/venv/bin/python); the Rust tests never need Python.
"""
import os
import subprocess
import sys
import tempfile

import torch
from fast_transformers.builders import TransformerEncoderBuilder

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export_onnx  # noqa: E402
from export_onnx import ExportError  # noqa: E402

torch.qr = lambda a: torch.linalg.qr(a, mode="reduced")  # fast-transformers' orthogonal draw on PyTorch 2


def encoder(heads=4, head_dim=16, activation="relu", feature_map=None, layers=2):
    torch.manual_seed(0)
    kw = dict(n_layers=layers, n_heads=heads, query_dimensions=head_dim, value_dimensions=head_dim,
              feed_forward_dimensions=4 * heads * head_dim, activation=activation, dropout=0.0,
              attention_dropout=0.0)
    if feature_map is not None:
        kw["feature_map"] = feature_map
    return TransformerEncoderBuilder.from_kwargs(attention_type="causal-linear", **kw).get().eval()


class Wrapped(torch.nn.Module):
    """An encoder under a prefix with an input block and a head named other than
    the conventional names."""

    def __init__(self):
        super().__init__()
        self.frontend = torch.nn.Linear(20, 64)
        self.encoder = encoder()
        self.classifier = torch.nn.Linear(64, 7)


def raises(fn, *needles):
    try:
        fn()
    except ExportError as e:
        msg = str(e)
        assert "\n" not in msg, f"one line: {msg}"
        for n in needles:
            assert n in msg, f"{n!r} not in: {msg}"
        return msg
    raise AssertionError(f"no ExportError (expected one mentioning {needles})")


def test_gelu_is_read_from_the_module(tmp):
    cfg = export_onnx.export_module(encoder(activation="gelu"), os.path.join(tmp, "g.onnx"))
    assert cfg["activation"] == "gelu", cfg


def test_relu_on_a_gelu_model_is_refused(tmp):
    path = os.path.join(tmp, "wrong.onnx")
    raises(lambda: export_onnx.export_module(encoder(activation="gelu"), path, activation="relu"),
           "activation", "gelu")
    assert not os.path.exists(path)


def test_four_heads_on_a_six_head_model_is_refused(tmp):
    six = encoder(heads=6, head_dim=16)
    path = os.path.join(tmp, "heads.onnx")
    raises(lambda: export_onnx.export_module(six, path, n_heads=4), "n_heads", "6")
    assert not os.path.exists(path)


def test_the_check_names_the_cause_of_a_mismatch(tmp):
    """What the module comparison says when a config is wrong in each silent way
    (the overrides above are refused earlier; this is the check behind them)."""
    gelu = encoder(activation="gelu")
    sd = {k: v.detach() for k, v in gelu.state_dict().items()}
    wrong = export_onnx.infer_config(sd, 4, activation="relu")
    raises(lambda: export_onnx.check_against_module(gelu, wrong, sd), "activation is gelu")
    six = encoder(heads=6, head_dim=16)
    sd = {k: v.detach() for k, v in six.state_dict().items()}
    wrong = export_onnx.infer_config(sd, 4)
    raises(lambda: export_onnx.check_against_module(six, wrong, sd), "has 6 heads")
    right = export_onnx.infer_config(sd, 6)
    assert export_onnx.check_against_module(six, right, sd) < 1e-5


def test_heads_that_do_not_divide_the_widths(tmp):
    sd = encoder(heads=4, head_dim=16).state_dict()
    raises(lambda: export_onnx.infer_config(sd, 5), "n_heads 5 does not divide", "heads x value dims")


def test_weights_that_do_not_fit_say_why(tmp):
    sd = encoder(heads=4, head_dim=16).state_dict()
    cfg = export_onnx.infer_config(sd, 4)
    cfg["d_ff"] = 100  # as a wrong hand-written config would say
    raises(lambda: export_onnx.export(sd, cfg, os.path.join(tmp, "x.onnx"), "step"),
           "the weights do not fit the configuration", "size mismatch")
    assert not os.path.exists(os.path.join(tmp, "x.onnx"))


def test_other_block_names_say_how_to_map_them(tmp):
    model = Wrapped()
    sd = model.state_dict()
    raises(lambda: export_onnx.infer_config(sd, 4), "frontend", "--input-projection")
    cfg = export_onnx.export_module(model, os.path.join(tmp, "w.onnx"), input_projection="frontend",
                                    output_head="classifier")
    assert (cfg["input_dim"], cfg["output_dim"], cfg["prefix"]) == (20, 7, "encoder."), cfg


def test_every_feature_map_is_read_from_the_module(tmp):
    import fast_transformers.feature_maps as fm

    cases = {
        "relu": fm.ActivationFunctionFeatureMap.factory(torch.relu),
        "favor": fm.Favor.factory(n_dims=32),
        "random-fourier": fm.RandomFourierFeatures.factory(n_dims=24),
        "smoothed-random-fourier": fm.SmoothedRandomFourierFeatures.factory(n_dims=21, smoothing=0.5),
        "generalized-random": fm.GeneralizedRandomFeatures.factory(n_dims=20),
    }
    for name, factory in cases.items():
        model = encoder(feature_map=factory)
        for m in model.modules():
            if hasattr(m, "omega"):
                m.train()
                m.new_feature_map("cpu")
                m.eval()
        cfg = export_onnx.export_module(model, os.path.join(tmp, f"{name}.onnx"))
        assert cfg["feature_map"] == name, (name, cfg["feature_map"])
    raises(lambda: export_onnx.export_module(encoder(feature_map=fm.Favor.factory(stabilize=True)),
                                             os.path.join(tmp, "s.onnx")), "stabilize")
    undrawn = encoder(feature_map=fm.Favor.factory(n_dims=32))  # never run in training mode
    raises(lambda: export_onnx.export_module(undrawn, os.path.join(tmp, "z.onnx")), "omega is all zeros")
    softplus = fm.ActivationFunctionFeatureMap.factory(torch.nn.functional.softplus)
    raises(lambda: export_onnx.export_module(encoder(feature_map=softplus), os.path.join(tmp, "p.onnx")),
           "unsupported feature map")


def test_command_line(tmp):
    model = encoder(activation="gelu")
    ckpt = os.path.join(tmp, "ckpt.pt")
    torch.save({"state_dict": model.state_dict()}, ckpt)
    build = os.path.join(tmp, "build.py")
    with open(build, "w") as f:
        f.write("import sys\nsys.path.insert(0, %r)\nimport test_export_onnx as t\n"
                "def gelu():\n    return t.encoder(activation='gelu')\n" % HERE)
    script = os.path.join(HERE, "export_onnx.py")

    def run(*args):
        return subprocess.run([sys.executable, script, ckpt, *args], capture_output=True, text=True)

    out = os.path.join(tmp, "cli.onnx")
    r = run("-o", out, "--module", f"{build}:gelu")
    assert r.returncode == 0 and "activation=gelu" in r.stdout, r.stderr
    bad = os.path.join(tmp, "bad.onnx")
    r = run("-o", bad, "--module", f"{build}:gelu", "--activation", "relu")
    assert r.returncode == 1 and r.stderr.startswith("error: activation") and len(r.stderr.splitlines()) == 1, r.stderr
    r = run("-o", bad, "--n-heads", "5")
    assert r.returncode == 1 and "does not divide" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    r = run("-o", bad)
    assert r.returncode == 1 and "--n-heads" in r.stderr, r.stderr
    assert not os.path.exists(bad)
    # --norm is the converter's name for the flag; --norm-placement still works.
    r = run("-o", out, "--n-heads", "4", "--activation", "gelu", "--norm", "post")
    assert r.returncode == 0, r.stderr


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")]
    failed = 0
    for name, fn in tests:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                fn(tmp)
                print(f"ok   {name}")
            except Exception as e:  # report every test, then fail
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
