#!/usr/bin/env python3
"""Writes a word prior into an export's metadata (`app.word_prior`, runtime/FORMAT.md):
a bigram language model over the model's words, estimated from the transcripts of
the training utterances, which the beam decoder adds to a hypothesis's score each
time it completes a word. It tells apart what a character model cannot hear ("to"
and "two", "for" and "four") by the words around them.

  python models/asr-commands/word_prior.py /tmp/asr/asr-commands.onnx --work /tmp/asr \\
      --scale 0.2 --bonus 0.75

Row 0 scores each word of data.WORDS first in an utterance, row v + 1 each word
after word v: scale · log P(word | previous) + bonus, with add-½ smoothing. The
scale and the bonus were chosen on 1,200 dev utterances of the training voices
(train.DEV_FIRST + 300 on, no shard's), int8 beam 16, the shipped cycle-8 weights
with data.WORDS: WER 6.41 % without a prior; scale/bonus 0.2/0.25 6.30, 0.2/0.5
6.22, 0.2/0.75 6.18, 0.3/0.5 6.24, 0.4/0.5 6.28, 0.4/0.75 6.18 %.
"""
import argparse
import collections
import json
import math
import os
import sys

import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402

SMOOTHING = 0.5


def transcripts(work, count):
    """The texts of training utterances 0 .. count-1, cached in work (drawing them
    takes minutes: each draws its voice first)."""
    path = os.path.join(work, "train-texts.txt")
    texts = open(path).read().splitlines() if os.path.exists(path) else []
    if len(texts) < count:
        texts += [data.Plan("train", i).text for i in range(len(texts), count)]
        with open(path + ".tmp", "w") as f:
            f.write("\n".join(texts) + "\n")
        os.replace(path + ".tmp", path)
    return texts[:count]


def scores(texts, words, scale, bonus):
    """(len(words) + 1) × len(words) scores, row by row."""
    index = {w: i for i, w in enumerate(words)}
    counts = collections.defaultdict(collections.Counter)  # previous (None: start) → next
    for text in texts:
        previous = None
        for w in text.split():
            if w not in index:
                raise SystemExit(f"training transcript word {w!r} is not in data.WORDS")
            counts[previous][w] += 1
            previous = w
    out = []
    for previous in [None] + list(words):
        row, total = counts[previous], sum(counts[previous].values())
        for w in words:
            p = (row[w] + SMOOTHING) / (total + SMOOTHING * len(words))
            out.append(round(scale * math.log(p) + bonus, 4))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", help="the export to add the prior to (rewritten in place unless -o)")
    p.add_argument("-o", "--output", default=None)
    p.add_argument("--work", default="/tmp/asr")
    p.add_argument("--utterances", type=int, default=112_000,
                   help="training utterances whose transcripts count (default: shards 0-55)")
    p.add_argument("--scale", type=float, default=0.2, help="weight of the log probabilities")
    p.add_argument("--bonus", type=float, default=0.75, help="added per word (against the prior's deletions)")
    a = p.parse_args()
    proto = onnx.load(a.onnx)
    meta = {m.key: m.value for m in proto.metadata_props}
    words = json.loads(meta["app.words"])
    if words != data.WORDS:
        raise SystemExit(f"{a.onnx}: its app.words are not data.WORDS (export it again with train.py)")
    values = scores(transcripts(a.work, a.utterances), words, a.scale, a.bonus)
    text = json.dumps(values, separators=(",", ":"))
    for m in list(proto.metadata_props):
        if m.key == "app.word_prior":
            proto.metadata_props.remove(m)
    proto.metadata_props.add(key="app.word_prior", value=text)
    onnx.save(proto, a.output or a.onnx)
    print(f"wrote app.word_prior ({len(words) + 1} × {len(words)}, {len(text)} bytes; scale {a.scale}, bonus {a.bonus}) "
          f"to {a.output or a.onnx}")


if __name__ == "__main__":
    main()
