#!/usr/bin/env python3
"""Prints the card's result tables (markdown) from metrics.json, so that every figure
in README.md comes from the measurement and none is copied by hand.

  python models/asr-commands/card_tables.py [models/asr-commands/metrics.json]
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

SETS = [
    ("test-espeak-clean", "espeak-ng, held-out voices, clean"),
    ("test-espeak-noisy", "espeak-ng, held-out voices, 5-20 dB SNR"),
    ("test-pico-clean", "Pico, held-out voice (en-GB), clean"),
    ("test-pico-noisy", "Pico, held-out voice (en-GB), 5-20 dB SNR"),
    ("test-piper-clean", "piper joe (voice seen in training), clean"),
    ("test-piper-noisy", "piper joe (voice seen in training), 5-20 dB SNR"),
    ("test-festival-clean", "Festival ked (voice seen in training), clean"),
    ("test-festival-noisy", "Festival ked (voice seen in training), 5-20 dB SNR"),
    ("test-mbrola-clean", "MBROLA, held-out voice (us3), clean"),
    ("test-mbrola-noisy", "MBROLA, held-out voice (us3), 5-20 dB SNR"),
    ("test-rhvoice-clean", "RHVoice, held-out voice (clb), clean"),
    ("test-rhvoice-noisy", "RHVoice, held-out voice (clb), 5-20 dB SNR"),
    ("test-flite", "Flite, never in training: kal16, awb, rms, slt"),
    ("test-real", "a real person (Asterisk's prompts, 8 kHz), never in training"),
]


def pct(r):
    return f"{100 * r['wer']:.1f} / {100 * r['cer']:.1f}"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "metrics.json")
    m = json.load(open(path))["results"]
    if "data" in m:
        print("| engine | training utterances | hours | voices |")
        print("|---|---:|---:|---:|")
        for engine, d in m["data"].items():
            print(f"| {engine} | {d['utterances']:,} | {d['hours']:.1f} | {d['voices']} |")
        print()
    print("| set | utterances | f32 beam | int8 beam | f32 greedy | int8 greedy |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, name in SETS:
        if key not in m["f32"]["beam"]:
            continue
        cells = [pct(m[d][k][key]) for d, k in (("f32", "beam"), ("int8", "beam"), ("f32", "greedy"), ("int8", "greedy"))]
        print(f"| {name} | {m['f32']['beam'][key]['utterances']} | " + " | ".join(cells) + " |")
    print()
    # Per voice: Flite's four, Pico's and the real speaker; espeak-ng per accent and variant.
    print("| group | set | utterances | f32 beam | int8 beam | f32 greedy |")
    print("|---|---|---:|---:|---:|---:|")
    for key, _ in SETS:
        if key not in m["f32"]["beam"]:
            continue
        groups = m["f32"]["beam"][key]["groups"]
        for g in groups:
            if key.startswith("test-espeak") and g.startswith("voice "):
                continue  # 272 voices: accents and variants below instead
            cells = [pct(m["f32"]["beam"][key]["groups"][g]), pct(m["int8"]["beam"][key]["groups"][g]),
                     pct(m["f32"]["greedy"][key]["groups"][g])]
            print(f"| {g} | {key[5:]} | {groups[g]['utterances']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
