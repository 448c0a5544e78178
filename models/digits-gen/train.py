#!/usr/bin/env python3
"""Pixel-by-pixel generation of 8×8 digits: the paper's image experiment, scaled down.

Data: scikit-learn's bundled digits (1,797 images, 8×8, gray levels 0..16), split
80/20 with a fixed seed; a tenth of the 80 % picks the checkpoint (early stopping). A sequence is a class token followed by the 64 pixels in
raster order; the model predicts each pixel from the class and the pixels before it
(17-way softmax), so it is class-conditional. Test NLL is reported in bits per pixel.

Tokens: 0..16 are gray levels, 17 + c is the class token of digit c. Outputs: 17
logits over the gray level of the next pixel.

  python models/digits-gen/train.py --out /tmp/digits   # trains, exports digits-gen.onnx (sequence form)
"""
import argparse
import json
import math
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

LEVELS = 17
CLASS0 = LEVELS
VOCAB = LEVELS + 10
PIXELS = 64
CONFIG = dict(d_model=64, n_layers=3, n_heads=4, d_query=16, d_value=16, d_ff=192, activation="gelu",
              norm_placement="pre", final_norm=True, feature_map="elu+1", attention_eps=1e-6, layernorm_eps=1e-5,
              input="tokens", input_dim=VOCAB, input_projection=False, output_dim=LEVELS, prefix="",
              positional="sinusoidal", positional_max_len=PIXELS)


def dataset(seed=0):
    """(train, test) arrays of [n, 65] token sequences: class token, then 64 pixels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    seqs = np.concatenate([CLASS0 + d.target[:, None], d.images.reshape(-1, PIXELS).astype(np.int64)], axis=1)
    order = np.random.default_rng(seed).permutation(len(seqs))
    cut = int(0.8 * len(seqs))
    return seqs[order[:cut]], seqs[order[cut:]]


def nll_bits(model, seqs):
    """Mean negative log-likelihood of the pixels, bits per pixel."""
    with torch.no_grad():
        x = torch.from_numpy(seqs)
        logits = model.sequence(x[:, :-1])
        nats = F.cross_entropy(logits.reshape(-1, LEVELS), x[:, 1:].reshape(-1))
    return nats.item() / math.log(2)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/digits")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    train, test = dataset()
    # A tenth of the training images for early stopping: 1,437 images overfit fast,
    # and the test set must not choose the checkpoint.
    val, train = train[: len(train) // 10], train[len(train) // 10:]
    model = export_onnx.ExportModel(CONFIG)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params} parameters; {len(train)} train / {len(test)} test images", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05)

    def lr_at(step):
        return training.warmup_cosine(step, a.steps, a.lr, warmup=100)

    t0, running = time.time(), None
    best = (float("inf"), None, 0)
    for step in range(a.steps):
        x = torch.from_numpy(train[rng.integers(0, len(train), a.batch)])
        logits = model.sequence(x[:, :-1], quadratic=True)
        loss = F.cross_entropy(logits.reshape(-1, LEVELS), x[:, 1:].reshape(-1))
        training.update(opt, model, loss, lr_at(step))
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0 or step == a.steps - 1:
            model.eval()
            v = nll_bits(model, val)
            if v < best[0]:
                best = (v, {k: t.clone() for k, t in model.state_dict().items()}, step)
            print(f"step {step} train {running / math.log(2):.3f} validation {v:.3f} bits/pixel "
                  f"{time.time() - t0:.0f}s", flush=True)
            model.train()
    train_time = time.time() - t0
    model.load_state_dict(best[1])
    print(f"kept step {best[2]} (validation {best[0]:.3f} bits/pixel)", flush=True)
    model.eval()
    test_bits = nll_bits(model, test)
    path = os.path.join(a.out, "digits-gen.onnx")
    vocab = [f"gray{i}" for i in range(LEVELS)] + [f"class{c}" for c in range(10)]
    extra = {"app.task": "image-gen", "app.vocabulary": json.dumps(vocab),
             "app.image": json.dumps({"height": 8, "width": 8, "levels": LEVELS, "class_token_base": CLASS0})}
    export_onnx.export(model.state_dict(), CONFIG, path, "sequence", extra_metadata=extra)
    np.save(os.path.join(a.out, "test.npy"), test)
    with open(os.path.join(a.out, "train.json"), "w") as f:
        json.dump({"parameters": params, "train_seconds": train_time, "test_bits_per_pixel": test_bits,
                   "best_step": best[2], "validation_bits_per_pixel": best[0], "args": vars(a)}, f, indent=1)
    print(f"test NLL {test_bits:.3f} bits/pixel; trained {a.steps} steps in {train_time:.0f}s; wrote {path}", flush=True)


if __name__ == "__main__":
    main()
