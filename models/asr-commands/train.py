#!/usr/bin/env python3
"""Trains the streaming voice-command recognizer and exports it for `linrt convert`.

  python models/asr-commands/train.py --work /tmp/asr          # data, training, export
  # then, from the repository root (see README.md in this folder):
  linrt convert /tmp/asr/asr-commands.onnx -o models/asr-commands/asr-commands.f32.lrt

Data are generated into --work by data.py (cached). The model is a causal
linear-attention encoder in the fast-transformers layout: one step per 3 log-mel
frames (30 ms); its input is those 3 frames and the 8 before them (110 ms, nothing
from the future) through an input projection, then pre-norm layers and a character
CTC head. The overlapping window gives every step local acoustic context directly,
which linear attention (no recency bias) is poor at gathering on its own.
It is trained in the causal parallel form (export_onnx's twin, exactly the
recurrent computation) with SpecAugment masks on top of the audio augmentation.
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
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import data  # noqa: E402
import export_onnx  # noqa: E402
import training  # noqa: E402

CONFIG = dict(d_model=128, n_layers=4, n_heads=4, d_query=32, d_value=32, d_ff=320, activation="gelu",
              norm_placement="pre", final_norm=True, feature_map="elu+1", attention_eps=1e-6, layernorm_eps=1e-5,
              input="vectors", input_dim=data.NUM_BINS * data.CONTEXT, input_projection=True,
              output_dim=len(data.SYMBOLS), prefix="")


def stack(feats):
    """[T, 80] normalised frames -> [ceil(T/3), 11·80]: step j sees frames 3j-8 ..
    3j+2. Frames before the start, and after the end in a last partial step, are
    zeros (the mean, after normalisation)."""
    t, bins = feats.shape
    steps = -(-t // data.STACK)
    left = data.CONTEXT - data.STACK
    padded = np.zeros((left + steps * data.STACK, bins), dtype=np.float32)
    padded[left:left + t] = feats
    return np.stack([padded[j * data.STACK:j * data.STACK + data.CONTEXT].reshape(-1) for j in range(steps)])


def split_utterances(d):
    offsets = np.concatenate([[0], np.cumsum(d["lengths"])])
    return [d["feats"][offsets[i]:offsets[i + 1]] for i in range(len(d["lengths"]))]


def spec_augment(f, rng):
    f = f.copy()
    for _ in range(2):
        w = rng.integers(0, 13)
        s = rng.integers(0, f.shape[1] - w + 1)
        f[:, s:s + w] = 0.0
    for _ in range(2):
        w = rng.integers(0, min(16, max(1, f.shape[0] // 8)))
        s = rng.integers(0, max(1, f.shape[0] - w + 1))
        f[s:s + w, :] = 0.0
    return f


def greedy(logits):
    """Greedy CTC: best symbol per step, repeats merged, blanks dropped."""
    best = logits.argmax(-1)
    out, prev = [], 0
    for b in best:
        if b != prev and b != 0:
            out.append(data.SYMBOLS[b])
        prev = b
    return " ".join("".join(out).split())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/asr")
    p.add_argument("--train-utterances", type=int, default=20000)
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--init", help="start from this checkpoint's weights (a second training cycle)")
    p.add_argument("--checkpoint", default="checkpoint.pt", help="file name in --work for checkpoints")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.work, exist_ok=True)

    start = time.time()
    train = data.build("train", a.train_utterances, os.path.join(a.work, "train.npz"))
    feats = train["feats"].astype(np.float32)
    mean, std = feats.mean(0), feats.std(0) + 1e-5
    utts = [((f.astype(np.float32) - mean) / std) for f in split_utterances(train)]
    labels = [data.encode(t) for t in train["texts"]]
    print(f"data: {len(utts)} utterances, {feats.shape[0] / 100 / 3600:.1f} h, {time.time() - start:.0f}s", flush=True)
    del feats

    model = export_onnx.ExportModel(CONFIG)
    if a.init:
        model.load_state_dict(torch.load(a.init)["state_dict"])
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params} parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    def lr_at(step):
        return training.warmup_cosine(step, a.steps, a.lr, warmup=300)

    # Batches of similar length: sort, cut into batch-size runs, draw runs at random.
    order = np.argsort([len(u) for u in utts])
    runs = [order[i:i + a.batch] for i in range(0, len(order), a.batch)]
    model.train()
    t0, running = time.time(), None
    for step in range(a.steps):
        run = runs[rng.integers(len(runs))]
        xs = [torch.from_numpy(stack(spec_augment(utts[i], rng))) for i in run]
        x_len = torch.tensor([x.shape[0] for x in xs])
        x = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
        ys = [torch.tensor(labels[i]) for i in run]
        y_len = torch.tensor([len(y) for y in ys])
        logp = F.log_softmax(model.sequence(x, quadratic=True), dim=-1)
        loss = F.ctc_loss(logp.transpose(0, 1), torch.cat(ys), x_len, y_len, blank=0, zero_infinity=True)
        training.update(opt, model, loss, lr_at(step))
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0 or step == a.steps - 1:
            print(f"step {step} loss {running:.3f} lr {lr_at(step):.2e} {time.time() - t0:.0f}s", flush=True)
            torch.save({"state_dict": model.state_dict(), "step": step}, os.path.join(a.work, a.checkpoint))
    train_time = time.time() - t0

    frontend = dict(sample_rate=data.SAMPLE_RATE, num_bins=data.NUM_BINS, frame_length_ms=25, frame_shift_ms=10,
                    dither=0.0, snip_edges=False, window="povey", low_freq=20.0, high_freq=-400.0,
                    preemph_coeff=0.97, remove_dc_offset=True, sample_scale=32768.0, stack=data.STACK,
                    context=data.CONTEXT)
    extra = {"app.task": "asr-ctc", "app.vocabulary": json.dumps(data.SYMBOLS),
             "app.frontend": json.dumps(frontend),
             "app.feature_mean": json.dumps([round(float(v), 6) for v in mean]),
             "app.feature_std": json.dumps([round(float(v), 6) for v in std])}
    onnx_path = os.path.join(a.work, "asr-commands.onnx")
    model.eval()
    export_onnx.export(model.state_dict(), CONFIG, onnx_path, "step", extra_metadata=extra)
    with open(os.path.join(a.work, "train.json"), "w") as f:
        json.dump({"parameters": params, "train_seconds": train_time, "steps": a.steps, "batch": a.batch,
                   "utterances": len(utts), "final_loss": running, "args": vars(a)}, f, indent=1)
    print(f"trained {a.steps} steps in {train_time:.0f}s; wrote {onnx_path}", flush=True)


if __name__ == "__main__":
    main()
