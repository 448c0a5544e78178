#!/usr/bin/env python3
"""Turns trained exports into the shipped models: converts each ONNX with `linrt convert`
(f32, int8, and f16 where it helps), measures every file with linrt itself, and writes
the golden files the tests check and a metrics.json each card quotes.

  cargo build --release
  python models/ship.py asr-commands --work /tmp/asr       # after models/asr-commands/train.py
  python models/ship.py copy --work /tmp/copy              # after models/copy/train.py
  python models/ship.py digits-gen --work /tmp/digits      # after models/digits-gen/train.py
  python models/ship.py asr-goldens                         # the recognizer's goldens and sample only

Everything runs through the release binary (--linrt): what the cards report is what
linrt computes, step by step in recurrent mode.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export_onnx  # noqa: E402


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw).stdout


class Linrt:
    def __init__(self, binary):
        self.binary = binary

    def convert(self, onnx, out, dtype, flags=()):
        sh(self.binary, "convert", onnx, "-o", out, "--dtype", dtype, *flags)
        return os.path.getsize(out)

    def run(self, lrt, x):
        """Outputs for one input array, fresh state, recurrent steps."""
        with tempfile.TemporaryDirectory() as tmp:
            xi, yo = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
            np.save(xi, x)
            sh(self.binary, "run", lrt, "--input", xi, "--output", yo)
            return np.load(yo)

    def step_us(self, lrt):
        return json.loads(sh(self.binary, "bench", lrt, "--json", "--steps", "1000"))["step_us"]


def reference(model, x):
    """The golden outputs: the PyTorch twin in float64, the exact value linrt's f32
    is measured against (PyTorch's own f32 drifts up to 7e-4 of the output scale on
    these trained models; linrt stays within 3e-7)."""
    with torch.no_grad():
        return model.double().sequence(x if x.dtype == torch.long else x.double()).float().numpy()


def twin(onnx_path, cfg):
    """The PyTorch twin of an exported ONNX: `cfg`'s model with the file's weights."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(onnx_path)
    sd = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in proto.graph.initializer}
    model = export_onnx.ExportModel(cfg)
    if model.positional != "none":  # the table is derived, not learned: the twin's own
        sd["positional_encoding"] = model.positional_encoding
    model.load_state_dict(sd)
    return model.eval()


def convert_all(linrt, folder, name, onnx, dtypes, measure_only=(), flags=None):
    """Converts to each dtype into the model's folder; `measure_only` dtypes go to a
    scratch folder: measured and reported, not shipped (the 10 MB budget)."""
    shutil.copy(onnx, os.path.join(folder, f"{name}.onnx"))
    scratch = tempfile.mkdtemp()
    files = {}
    for dtype in list(dtypes) + list(measure_only):
        out = os.path.join(scratch if dtype in measure_only else folder, f"{name}.{dtype}.lrt")
        files[dtype] = {"path": out, "bytes": linrt.convert(onnx, out, dtype, (flags or {}).get(dtype, ())),
                        "shipped": dtype not in measure_only}
    files["onnx"] = {"bytes": os.path.getsize(onnx), "shipped": True}
    return files


def ship_asr(a, linrt):
    sys.path.insert(0, os.path.join(HERE, "asr-commands"))
    import evaluate

    folder = os.path.join(HERE, "asr-commands")
    onnx = os.path.join(a.work, "asr-commands.onnx")
    # The f32 file is measured, not shipped: `linrt convert` makes it from the ONNX
    # exactly (tests/common converts it for the tests), and models/ stays small.
    files = convert_all(linrt, folder, "asr-commands", onnx, ["int8"], measure_only=["f32"],
                        flags={"int8": ["--min-cosine", "0.995"]})
    sets = evaluate.load_sets(a.work)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("f32", "int8"):
            for decoder in ("beam", "greedy"):
                for n, d in sets.items():
                    r = evaluate.evaluate_set(linrt.binary, files[dtype]["path"], d, decoder, tmp)
                    r.pop("errors")  # every wrong transcript: too big for models/ (evaluate.py --json has them)
                    results.setdefault(dtype, {}).setdefault(decoder, {})[n] = r
                    print(f"asr {dtype} {decoder} {n}: WER {100 * r['wer']:.2f} % CER {100 * r['cer']:.2f} %",
                          flush=True)
    asr_goldens(files["f32"]["path"], linrt)
    results["data"] = asr_data_stats(a.work)
    return files, results


def asr_data_stats(work):
    """Training utterances and hours per engine and voice count, from the shards."""
    import glob
    import collections

    stats = collections.defaultdict(lambda: {"utterances": 0, "hours": 0.0, "voices": set()})
    for path in sorted(glob.glob(os.path.join(work, "train-*.npz"))):
        d = np.load(path)
        for voice, frames in zip(d["voices"], d["lengths"]):
            engine = str(voice).split(":")[0]
            stats[engine]["utterances"] += 1
            stats[engine]["hours"] += frames / 100 / 3600
            stats[engine]["voices"].add(str(voice))
    return {e: dict(v, voices=len(v["voices"])) for e, v in sorted(stats.items())}


def asr_goldens(lrt, linrt):
    """The recognizer's goldens and the sample `linrt asr` plays by default: three
    short held-out utterances (a held-out Pico voice and a held-out espeak-ng voice,
    clean, then a held-out espeak-ng voice with noise; the first of at most three words
    and 1.8 s, each set searched from where the last left off) in one 16-bit WAV, models/asr-commands/sample.wav,
    separated by 1.4 s of a quiet noise floor (-70 dBFS) so that each ends at an
    endpoint. For each, cases.json gives its samples in the WAV, voice, what was said,
    and the greedy transcript of utt<i>.logits.npy, the PyTorch twin's logits for it
    alone (features from kaldi-native-fbank in float32). Small, to keep models/ under
    10 MB."""
    sys.path.insert(0, os.path.join(HERE, "asr-commands"))
    import data
    from train import CONFIG, greedy, stack

    folder = os.path.join(HERE, "asr-commands")
    meta = json.loads(sh(linrt.binary, "inspect", lrt, "--json"))["metadata"]
    mean = np.array(json.loads(meta["app.feature_mean"]), dtype=np.float32)
    std = np.array(json.loads(meta["app.feature_std"]), dtype=np.float32)
    model = twin(os.path.join(folder, "asr-commands.onnx"), CONFIG)
    gold = os.path.join(folder, "golden")
    os.makedirs(gold, exist_ok=True)
    picks, index = [], 0
    # One index runs through the three sets, so that the noisy utterance is not the
    # clean one again (both sets hold the same utterances).
    for split in ("test-pico-clean", "test-espeak-clean", "test-espeak-noisy"):
        while True:
            text, voice, audio, snr = data.utterance(split, index)
            index += 1
            if len(text.split()) <= 3 and len(audio) <= 1.8 * data.SAMPLE_RATE:
                picks.append((text, voice, audio, snr))
                break
    rng = np.random.default_rng(11)
    floor = lambda seconds: np.round(rng.standard_normal(int(seconds * data.SAMPLE_RATE)) * 10.0)  # noqa: E731
    committed = committed_sample(folder, picks)
    pieces, cases, at = [floor(0.2)], [], int(0.2 * data.SAMPLE_RATE)
    for i, (text, voice, audio, snr) in enumerate(picks):
        # The committed audio of the same utterance where there is one (see committed_sample).
        pcm = np.round(np.clip(audio, -1, 1) * 32767) if committed is None else committed[i]
        pieces += [pcm, floor(1.4 if i < len(picks) - 1 else 0.2)]
        feats = data.fbank((pcm / 32768.0).astype(np.float32), noise_floor=data.NOISE_FLOOR)
        x = torch.from_numpy(stack((feats - mean) / std))[None]
        logits = reference(model, x)[0]
        np.save(os.path.join(gold, f"utt{i}.logits.npy"), logits.astype(np.float32))
        cases.append({"wav": "sample.wav", "start": at, "end": at + len(pcm), "voice": voice, "snr_db": snr,
                      "reference": text, "greedy": greedy(logits)})
        at += len(pcm) + len(pieces[-1])
    with wave.open(os.path.join(folder, "sample.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(data.SAMPLE_RATE)
        w.writeframes(np.clip(np.concatenate(pieces), -32768, 32767).astype(np.int16).tobytes())
    with open(os.path.join(gold, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    for c in cases:
        print(f"golden {c['start']}..{c['end']} {c['voice']}: {c['reference']!r} -> greedy {c['greedy']!r}")


def committed_sample(folder, picks):
    """The committed sample.wav's samples of each of these utterances when it holds them
    (same text, voice and length in cases.json), else None. SVOX Pico's audio differs by a few LSB from
    one CPU to another, so regenerating the sample on another machine would change every
    fixture made from it (the compressed copies, their expected transcripts) for nothing:
    new goldens for a new model are computed from the audio users already have."""
    try:
        cases = json.load(open(os.path.join(folder, "golden", "cases.json")))
        with wave.open(os.path.join(folder, "sample.wav"), "rb") as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    except (OSError, ValueError, wave.Error):
        return None
    same = len(cases) == len(picks) and all(
        c["reference"] == text and c["voice"] == voice and c["end"] - c["start"] == len(audio)
        for c, (text, voice, audio, _) in zip(cases, picks))
    return [pcm[c["start"]:c["end"]] for c in cases] if same else None


def ship_copy(a, linrt):
    sys.path.insert(0, os.path.join(HERE, "copy"))
    from train import SEPARATOR, SYMBOLS, batch  # noqa: F401

    folder = os.path.join(HERE, "copy")
    onnx = os.path.join(a.work, "copy.onnx")
    files = convert_all(linrt, folder, "copy", onnx, ["f32", "int8"])
    results = {}
    # Teacher-forced exact copy == greedy decoding exact copy: with every prediction
    # right, feeding the model its own outputs gives exactly these inputs.
    for dtype in ("f32", "int8"):
        results[dtype] = {}
        for L, n in ((8, 200), (16, 200), (32, 200), (63, 200), (255, 100)):
            rng = np.random.default_rng(1000 + L)
            exact, symbols = 0, 0
            for _ in range(n):
                x, _ = batch(rng, 1, L)
                x = x[0].numpy().astype(np.int64)
                pred = linrt.run(files[dtype]["path"], x[:-1])[L + 1:].argmax(-1)
                exact += bool((pred == x[L + 2:]).all())
                symbols += int((pred == x[L + 2:]).sum())
            results[dtype][f"length {2 * L + 2}"] = {"symbols": L, "exact_copy": exact / n,
                                                     "symbol_accuracy": symbols / (n * L), "sequences": n}
            print(f"copy {dtype} length {2 * L + 2}: exact {exact / n:.3f}, symbols {symbols / (n * L):.4f}", flush=True)
    from train import CONFIG
    model = twin(onnx, CONFIG)
    gold = os.path.join(folder, "golden")
    os.makedirs(gold, exist_ok=True)
    for name, L in (("short", 12), ("long", 63)):
        x, _ = batch(np.random.default_rng(7 + L), 1, L)
        logits = reference(model, x[:, :-1])[0]
        np.save(os.path.join(gold, f"{name}.tokens.npy"), x[0, :-1].numpy().astype(np.int64))
        np.save(os.path.join(gold, f"{name}.logits.npy"), logits.astype(np.float32))
    return files, results


def ship_digits(a, linrt):
    sys.path.insert(0, os.path.join(HERE, "digits-gen"))
    from train import CONFIG, LEVELS

    folder = os.path.join(HERE, "digits-gen")
    onnx = os.path.join(a.work, "digits-gen.onnx")
    # f16 does not help here (int8 is as accurate and half its size): measured, not shipped.
    files = convert_all(linrt, folder, "digits-gen", onnx, ["f32", "int8"], measure_only=["f16"])
    test = np.load(os.path.join(a.work, "test.npy"))
    results = {}
    for dtype in ("f32", "f16", "int8"):
        nats = 0.0
        for seq in test:
            logits = linrt.run(files[dtype]["path"], seq[:-1].astype(np.int64)).astype(np.float64)
            logp = logits - logits.max(-1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
            nats -= logp[np.arange(64), seq[1:]].sum()
        bits = nats / (len(test) * 64) / math.log(2)
        results[dtype] = {"test_bits_per_pixel": bits, "test_images": len(test)}
        print(f"digits {dtype}: {bits:.4f} bits/pixel", flush=True)
    model = twin(onnx, CONFIG)
    gold = os.path.join(folder, "golden")
    os.makedirs(gold, exist_ok=True)
    seqs = test[:2, :-1].astype(np.int64)
    logits = reference(model, torch.from_numpy(seqs))
    for i in range(2):
        np.save(os.path.join(gold, f"test{i}.tokens.npy"), seqs[i])
        np.save(os.path.join(gold, f"test{i}.logits.npy"), logits[i].astype(np.float32))
    assert logits.shape[-1] == LEVELS
    return files, results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=["asr-commands", "copy", "digits-gen", "asr-goldens"])
    p.add_argument("--work", help="the training run's folder (not needed for asr-goldens)")
    p.add_argument("--linrt", default="target/release/linrt")
    a = p.parse_args()
    linrt = Linrt(os.path.abspath(a.linrt))
    if a.model == "asr-goldens":  # only the recognizer's goldens and sample, from the shipped files
        asr_goldens(os.path.join(HERE, "asr-commands", "asr-commands.int8.lrt"), linrt)
        return
    if not a.work:
        p.error("--work is required")
    ship = {"asr-commands": ship_asr, "copy": ship_copy, "digits-gen": ship_digits}[a.model]
    files, results = ship(a, linrt)
    latency = {dtype: linrt.step_us(f["path"]) for dtype, f in files.items() if "path" in f}
    train = json.load(open(os.path.join(a.work, "train.json")))
    metrics = {"files": {k: v["bytes"] for k, v in files.items()},
               "not_shipped": [k for k, v in files.items() if not v["shipped"]],
               "step_us": latency, "results": results, "training": train}
    with open(os.path.join(HERE, a.model, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    print(json.dumps({"files": metrics["files"], "step_us": latency}, indent=1))


if __name__ == "__main__":
    main()
