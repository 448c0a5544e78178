#!/usr/bin/env python3
"""The copy task of "Transformers are RNNs" (section 4.1), scaled to this machine.

As in the paper, sequences are at most 128 tokens long: the separator, L random
symbols from an alphabet of 10, the separator again, and the same L symbols:
`| s_1 … s_L | s_1 … s_L`, 2L + 2 tokens (the leading separator marks the start). The
model reads it left to right and is trained to predict every symbol after the second
separator; a copy is exact when all L predictions are right. Training uses L from 1
to 63 (lengths up to 128); the card reports exact-copy accuracy at length 128
(L = 63) and at length 512 (L = 255, four times longer than anything trained), in
recurrent mode by linrt.

  python models/copy/train.py --out /tmp/copy     # trains, exports copy.onnx (sequence form)
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import export_onnx  # noqa: E402
import training  # noqa: E402

SYMBOLS = 10
SEPARATOR = 10
VOCAB = 11
MAX_TRAIN_LEN = 63  # symbols: sequences of 2·63 + 2 = 128 tokens
CONFIG = dict(d_model=64, n_layers=4, n_heads=4, d_query=16, d_value=16, d_ff=128, activation="gelu",
              norm_placement="pre", final_norm=True, feature_map="elu+1", attention_eps=1e-6, layernorm_eps=1e-5,
              input="tokens", input_dim=VOCAB, input_projection=False, output_dim=VOCAB, prefix="",
              positional="sinusoidal", positional_max_len=2 * MAX_TRAIN_LEN + 2)


def batch(rng, n, length):
    """n sequences with L symbols each (length: an int, or (lo, hi) drawn per batch)."""
    L = length if isinstance(length, int) else int(rng.integers(length[0], length[1] + 1))
    s = rng.integers(0, SYMBOLS, (n, L))
    sep = np.full((n, 1), SEPARATOR)
    x = np.concatenate([sep, s, sep, s], axis=1)
    return torch.from_numpy(x), L


def loss_of(model, x, L):
    logits = model.sequence(x[:, :-1], quadratic=True)
    # Positions L+1 .. 2L read the second separator and the copy so far: they predict the copy.
    target = x[:, L + 2:]
    return F.cross_entropy(logits[:, L + 1:].reshape(-1, VOCAB), target.reshape(-1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/copy")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    model = export_onnx.ExportModel(CONFIG)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params} parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    def lr_at(step):
        return training.warmup_cosine(step, a.steps, a.lr, warmup=200)

    t0, running = time.time(), None
    for step in range(a.steps):
        # A curriculum: short copies first, the full range after a third of training.
        hi = min(MAX_TRAIN_LEN, 8 + int(MAX_TRAIN_LEN * 3 * step / a.steps))
        x, L = batch(rng, a.batch, (1, hi))
        loss = loss_of(model, x, L)
        training.update(opt, model, loss, lr_at(step))
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0 or step == a.steps - 1:
            print(f"step {step} loss {running:.4f} max L {hi} {time.time() - t0:.0f}s", flush=True)
    train_time = time.time() - t0
    model.eval()
    with torch.no_grad():
        x, L = batch(np.random.default_rng(1), 64, MAX_TRAIN_LEN)
        pred = model.sequence(x[:, :-1])[:, L + 1:].argmax(-1)
        right = pred == x[:, L + 2:]
        exact, symbols = right.all(-1).float().mean().item(), right.float().mean().item()
    print(f"at length 128 (PyTorch): exact copies {exact:.3f}, symbols right {symbols:.4f}", flush=True)
    path = os.path.join(a.out, "copy.onnx")
    extra = {"app.task": "copy", "app.vocabulary": json.dumps([str(i) for i in range(SYMBOLS)] + ["|"])}
    export_onnx.export(model.state_dict(), CONFIG, path, "sequence", extra_metadata=extra)
    with open(os.path.join(a.out, "train.json"), "w") as f:
        json.dump({"parameters": params, "train_seconds": train_time, "final_loss": running, "args": vars(a),
                   "teacher_forced_exact_at_length_128": exact, "teacher_forced_symbols_right_at_length_128": symbols},
                  f, indent=1)
    print(f"trained {a.steps} steps in {train_time:.0f}s; wrote {path}", flush=True)


if __name__ == "__main__":
    main()
