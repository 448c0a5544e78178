#!/usr/bin/env python3
"""Word and character error rates of the recognizer on held-out voices, run by linrt.

  python models/asr-commands/evaluate.py models/asr-commands/asr-commands.f32.lrt \\
      models/asr-commands/asr-commands.int8.lrt --work /tmp/asr --linrt target/release/linrt

For each model file: the held-out utterances (voices and variants never used in
training; data.py) clean and with noise at 5-20 dB SNR, turned into features with
the normalisation statistics stored in the file, run step by step by `linrt run`,
decoded greedily (CTC). Prints WER/CER overall, per accent and per voice variant,
and writes everything to --json.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402
from train import greedy, split_utterances, stack  # noqa: E402


def edit_distance(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def metadata(linrt, lrt):
    out = subprocess.run([linrt, "inspect", lrt, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["metadata"]


def transcribe(linrt, lrt, utts, mean, std):
    """Greedy transcripts of feature matrices, one `linrt run` (fresh state) each."""
    texts = []
    with tempfile.TemporaryDirectory() as tmp:
        x, y = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        for f in utts:
            np.save(x, stack((f.astype(np.float32) - mean) / std))
            subprocess.run([linrt, "run", lrt, "--input", x, "--output", y], check=True, capture_output=True)
            texts.append(greedy(np.load(y)))
    return texts


def score(refs, hyps):
    words = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
    chars = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    return {"wer": words / sum(len(r.split()) for r in refs), "cer": chars / sum(len(r) for r in refs),
            "utterances": len(refs)}


def normalisation(linrt, lrt):
    """The feature mean and std stored in a model file."""
    meta = metadata(linrt, lrt)
    return (np.array(json.loads(meta["app.feature_mean"]), dtype=np.float32),
            np.array(json.loads(meta["app.feature_std"]), dtype=np.float32))


def evaluate_set(linrt, lrt, d, mean, std):
    """WER/CER of one test set (a data.build result), overall and per accent and
    voice variant."""
    refs = [str(t) for t in d["texts"]]
    hyps = transcribe(linrt, lrt, split_utterances(d), mean, std)
    result = score(refs, hyps)
    groups = collections.defaultdict(lambda: ([], []))
    for v, r, h in zip(d["voices"], refs, hyps):
        accent, _, variant = str(v).partition("+")
        for key in (f"accent {accent}", f"variant {variant or '(default)'}"):
            groups[key][0].append(r)
            groups[key][1].append(h)
    result["groups"] = {k: score(*v) for k, v in sorted(groups.items())}
    result["examples"] = [{"ref": r, "hyp": h} for r, h in list(zip(refs, hyps))[:5]]
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--work", default="/tmp/asr")
    p.add_argument("--count", type=int, default=600)
    p.add_argument("--linrt", default="target/release/linrt")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    sets = {name: data.build(name, a.count, os.path.join(a.work, f"{name}.npz"))
            for name in ("test-clean", "test-noisy", "test-flite")}
    report = {}
    for lrt in a.models:
        mean, std = normalisation(a.linrt, lrt)
        entry = {}
        for name, d in sets.items():
            result = evaluate_set(a.linrt, lrt, d, mean, std)
            if name == "test-noisy":
                result["snr_db_range"] = [float(np.nanmin(d["snr"])), float(np.nanmax(d["snr"]))]
            entry[name] = result
            print(f"{os.path.basename(lrt)} {name}: WER {100 * result['wer']:.2f} % CER {100 * result['cer']:.2f} % "
                  f"({result['utterances']} utterances)", flush=True)
        report[os.path.basename(lrt)] = entry
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
