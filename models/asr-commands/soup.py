#!/usr/bin/env python3
"""Averages the weights of two exports of the same model, element by element (a "model
soup"), and writes the mean as a new export:

  python models/asr-commands/soup.py /tmp/asr/cycle7.onnx /tmp/asr/cycle8.onnx \\
      -o /tmp/asr/asr-commands.onnx --weight 0.5

Both must have the same architecture and the same feature normalisation, which holds
for a run started with `train.py --init` from the other. A fine-tuned run and the
weights it started from lie in one basin of the loss, so their mean is a model of its
own, usually better than either on voices neither saw (cycle 8: see the card).
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import export_onnx  # noqa: E402
import train  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("first", help="an export (.onnx) or checkpoint (.pt)")
    p.add_argument("second", help="an export (.onnx) or checkpoint (.pt) of the same model")
    p.add_argument("-o", "--output", required=True, help="where to write the averaged export")
    p.add_argument("--weight", type=float, default=0.5, help="the second's share, 0 to 1")
    a = p.parse_args()
    if not 0.0 <= a.weight <= 1.0:
        raise SystemExit(f"--weight {a.weight}: must be between 0 and 1")
    first, mean, std = train.initial_weights(a.first)
    second, mean2, std2 = train.initial_weights(a.second)
    if not (np.array_equal(mean, mean2) and np.array_equal(std, std2)):
        raise SystemExit(f"{a.second}: its feature normalisation differs from {a.first}'s; they are not one model")
    model = export_onnx.ExportModel(train.CONFIG)
    names = model.state_dict()
    for name in names:
        if name not in first or name not in second or first[name].shape != second[name].shape:
            raise SystemExit(f"{name}: missing or shaped differently in one of the two; they are not one model")
    mixed = {n: (1 - a.weight) * first[n] + a.weight * second[n] if first[n].is_floating_point() else second[n]
             for n in names}
    model.load_state_dict(mixed)
    train.export(model, mean, std, a.output)
    print(f"wrote {a.output}: {1 - a.weight:g} × {a.first} + {a.weight:g} × {a.second}")


if __name__ == "__main__":
    main()
