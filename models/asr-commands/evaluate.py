#!/usr/bin/env python3
"""Word and character error rates of the recognizer, as users run it: `linrt asr`.

  python models/asr-commands/evaluate.py models/asr-commands/asr-commands.f32.lrt \\
      models/asr-commands/asr-commands.int8.lrt --work /tmp/asr --linrt target/release/linrt

For each model file and decoder (the constrained beam, greedy): every test set of
data.py (held-out voices of each training engine, clean and with noise at 5-20 dB
SNR, and Flite, never used in training), each utterance written as a 16-bit WAV and
transcribed by `linrt asr --json` from a fresh process (linrt's own front-end,
stepping, decoding and endpoints). Prints WER/CER per set, and writes everything,
per voice and per group, to --json.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402
from train import edit_distance  # noqa: E402

# name → utterances; every held-out set of the training engines, clean and noisy.
TEST_SETS = {f"test-{e}-{c}": n
             for e, n in (("espeak", 600), ("pico", 300), ("piper", 300), ("festival", 300), ("mbrola", 300),
                          ("rhvoice", 300))
             for c in ("clean", "noisy")}
TEST_SETS["test-flite"] = 600


def load_sets(work, names=None):
    """The test sets (all, or those `names` lists). "dev" (not a test set, never in
    the default list) is 300 utterances of the training voices and augmentation that
    no training shard holds: the set decoder settings are chosen on."""
    sets = {n: data.build(n, count, os.path.join(work, f"{n}.npz")) for n, count in TEST_SETS.items()
            if names is None or n in names}
    if names is not None and "dev" in names:
        from train import DEV_FIRST
        sets["dev"] = data.build("train", 300, os.path.join(work, "dev-audio.npz"), first=DEV_FIRST, keep_audio=True)
    real = real_set()
    if real and (names is None or "test-real" in names):
        sets["test-real"] = real
    return sets


def utterance_audio(d):
    offsets = np.concatenate([[0], np.cumsum(d["audio_lengths"])])
    return [d["audio"][offsets[i]:offsets[i + 1]] for i in range(len(d["audio_lengths"]))]


# Recordings of a real person saying words of the vocabulary: Asterisk's English
# telephony prompts (Debian `asterisk-core-sounds-en-wav`, 8 kHz), never used in
# training or tuning. Only prompts whose transcript is all vocabulary words.
ASTERISK_SOUNDS = "/usr/share/asterisk/sounds/en_US_f_Allison"
ASTERISK_TRANSCRIPTS = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"


def real_set():
    """[(wav path, reference, voice)] of the Asterisk prompts, or [] when the
    package is not installed."""
    import gzip
    import re

    if not (os.path.isdir(ASTERISK_SOUNDS) and os.path.exists(ASTERISK_TRANSCRIPTS)):
        return []
    vocab = set(data.VOCAB)
    out = []
    for line in gzip.open(ASTERISK_TRANSCRIPTS, "rt", errors="replace"):
        name, sep, text = line.partition(":")
        words = re.sub(r"[^a-z' ]", " ", text.lower()).split()
        path = os.path.join(ASTERISK_SOUNDS, name.strip() + ".wav")
        if sep and words and all(w in vocab for w in words) and os.path.exists(path):
            out.append((path, " ".join(words), "real:asterisk-allison"))
    return out


def write_wav(path, pcm):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(data.SAMPLE_RATE)
        w.writeframes(pcm.astype(np.int16).tobytes())


def transcribe(linrt, lrt, wav, decoder, flags=()):
    """The finals `linrt asr` prints for one file, joined."""
    out = subprocess.run([linrt, "asr", wav, "--model", lrt, "--json", "--decoder", decoder, *flags], check=True,
                         capture_output=True, text=True).stdout
    finals = [json.loads(line) for line in out.splitlines()]
    return " ".join(f["text"] for f in finals if f["type"] == "final")


def score(refs, hyps):
    words = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
    chars = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    return {"wer": words / sum(len(r.split()) for r in refs), "cer": chars / sum(len(r) for r in refs),
            "utterances": len(refs)}


def groups_of(voice):
    """The groups an utterance's voice counts in: its voice, and for espeak-ng its
    accent and variant."""
    engine, _, name = str(voice).partition(":")
    keys = [f"voice {voice}"]
    if engine == "espeak":
        accent, _, variant = name.partition("+")
        keys += [f"accent {accent}", f"variant {variant or '(default)'}"]
    return keys


def evaluate_set(linrt, lrt, d, decoder, tmp, workers=2, flags=()):
    """One test set: a data.build result, or a real_set() list of files."""
    if isinstance(d, list):
        paths, refs, voices = (list(x) for x in zip(*d))
        d = {"voices": voices}
    else:
        refs, paths = [str(t) for t in d["texts"]], []
        for i, pcm in enumerate(utterance_audio(d)):
            paths.append(os.path.join(tmp, f"{i}.wav"))
            write_wav(paths[-1], pcm)
    with ThreadPoolExecutor(workers) as pool:
        hyps = list(pool.map(lambda p: transcribe(linrt, lrt, p, decoder, flags), paths))
    result = score(refs, hyps)
    groups = collections.defaultdict(lambda: ([], []))
    for v, r, h in zip(d["voices"], refs, hyps):
        for key in groups_of(v):
            groups[key][0].append(r)
            groups[key][1].append(h)
    result["groups"] = {k: score(*v) for k, v in sorted(groups.items())}
    result["errors"] = [{"ref": r, "hyp": h, "voice": str(v)} for r, h, v in zip(refs, hyps, d["voices"]) if r != h]
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--work", default="/tmp/asr")
    p.add_argument("--linrt", default="target/release/linrt")
    p.add_argument("--decoders", default="beam,greedy")
    p.add_argument("--sets", default=None, help="comma-separated test sets (default: all), or dev")
    p.add_argument("--flags", default="", help="more `linrt asr` flags, e.g. \"--beam 16\"")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    sets = load_sets(a.work, a.sets.split(",") if a.sets else None)
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for lrt in a.models:
            entry = report.setdefault(os.path.basename(lrt), {})
            for decoder in a.decoders.split(","):
                for name, d in sets.items():
                    r = evaluate_set(a.linrt, lrt, d, decoder, tmp, flags=a.flags.split())
                    if name.endswith("noisy"):
                        r["snr_db_range"] = [float(np.nanmin(d["snr"])), float(np.nanmax(d["snr"]))]
                    entry.setdefault(decoder, {})[name] = r
                    print(f"{os.path.basename(lrt)} {decoder} {name}: WER {100 * r['wer']:.2f} % "
                          f"CER {100 * r['cer']:.2f} % ({r['utterances']} utterances)", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
