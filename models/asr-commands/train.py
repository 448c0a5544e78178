#!/usr/bin/env python3
"""Trains the streaming voice-command recognizer and exports it for `linrt convert`.

  python models/asr-commands/data.py --work /tmp/asr --shards 24 &   # training data, in the background
  python models/asr-commands/train.py --work /tmp/asr                # trains, resumes, exports
  # then, from the repository root (see README.md in this folder):
  python models/ship.py asr-commands --work /tmp/asr

Training data come in shards of 2,000 utterances (data.py, cached in --work). The run
is resumable: a checkpoint (weights, optimiser, both random generators, the step) is
written every 250 steps, and running the same command again continues from it, so
training can span several sessions. Which shards a step draws from depends only on the
step (`--initial-shards`, one more every `--steps-per-shard`), never on how fast the
data arrived, so a rerun sees the same batches; the run waits for a shard it needs.

The model is a causal linear-attention encoder in the fast-transformers layout: one
step per 3 log-mel frames (30 ms); its input is those 3 frames and the 12 before them
(150 ms, nothing from the future) through an input projection, then pre-norm layers
and a character CTC head. The overlapping window gives every step local acoustic
context directly, which linear attention (no recency bias) is poor at gathering on its
own. It is trained in the causal parallel form (export_onnx's twin, exactly the
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

CONFIG = dict(d_model=144, n_layers=6, n_heads=4, d_query=36, d_value=36, d_ff=384, activation="gelu",
              norm_placement="pre", final_norm=True, feature_map="elu+1", attention_eps=1e-6, layernorm_eps=1e-5,
              input="vectors", input_dim=data.NUM_BINS * data.CONTEXT, input_projection=True,
              output_dim=len(data.SYMBOLS), prefix="")
DEV_FIRST = 50_000_000  # dev utterances: training voices and augmentation, seeds no shard uses


def stack(feats):
    """[T, 80] normalised frames -> [ceil(T/3), CONTEXT·80]: step j sees frames
    3j+3-CONTEXT .. 3j+2. Frames before the start, and after the end in a last partial
    step, are zeros (the mean, after normalisation)."""
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


def vocal_tract_warp(f, rng, mean, std, spread):
    """Stretches the spectrum of a normalised utterance along the mel axis by a factor
    drawn from [1 - spread, 1 + spread] (a vocal-tract-length perturbation): formants
    move without the pitch or the tempo changing, which the audio augmentation (speed
    moves all three together) cannot do. Warped in log-mel energies, then normalised
    again; bins past the top edge repeat the last one."""
    if spread <= 0:
        return f
    alpha = rng.uniform(1 - spread, 1 + spread)
    bins = f.shape[1]
    src = np.clip(np.arange(bins) * alpha, 0, bins - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, bins - 1)
    w = (src - lo).astype(np.float32)
    raw = f * std + mean
    warped = raw[:, lo] * (1 - w) + raw[:, hi] * w
    return ((warped - mean) / std).astype(np.float32)


def greedy(logits):
    """Greedy CTC: best symbol per step, repeats merged, blanks dropped."""
    best = logits.argmax(-1)
    out, prev = [], 0
    for b in best:
        if b != prev and b != 0:
            out.append(data.SYMBOLS[b])
        prev = b
    return " ".join("".join(out).split())


def edit_distance(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


class Pool:
    """The training utterances of the shards loaded so far, normalised."""

    def __init__(self, work, mean, std, batch, order):
        self.work, self.mean, self.std, self.batch, self.order = work, mean, std, batch, order
        self.utts, self.labels, self.shards = [], [], 0

    def grow(self, shards):
        """Loads shards until the first `shards` of `order` are in."""
        while self.shards < shards:
            path = data.shard_path(self.work, self.order[self.shards])
            waited = time.time()
            while not os.path.exists(path):  # data.py is still generating it
                time.sleep(10)
            if time.time() - waited > 10:
                print(f"waited {time.time() - waited:.0f}s for {os.path.basename(path)}", flush=True)
            d = dict(np.load(path))
            self.utts += [((f.astype(np.float32) - self.mean) / self.std) for f in split_utterances(d)]
            self.labels += [data.encode(str(t)) for t in d["texts"]]
            self.shards += 1
        # Batches of similar length: sort, cut into batch-size runs, draw runs at random.
        order = np.argsort([len(u) for u in self.utts], kind="stable")
        self.runs = [order[i:i + self.batch] for i in range(0, len(order), self.batch)]


def shard_order(text):
    """"40,0,41-43" -> [40, 0, 41, 42, 43]."""
    order = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        order += range(int(first), int(last or first) + 1)
    if len(set(order)) != len(order):
        raise SystemExit(f"--shard-order {text}: a shard is named twice")
    return order


def normalisation(work, shards):
    feats = np.concatenate([np.load(data.shard_path(work, s))["feats"] for s in shards]).astype(np.float32)
    return feats.mean(0), feats.std(0) + 1e-5


def dev_set(work, count, mean, std):
    d = data.build("train", count, os.path.join(work, "dev.npz"), first=DEV_FIRST)
    return [((f.astype(np.float32) - mean) / std) for f in split_utterances(d)], [str(t) for t in d["texts"]]


def evaluate(model, utts, texts):
    """Greedy WER and CER of `model` (PyTorch, float32) on normalised utterances."""
    model.eval()
    words = chars = nw = nc = 0
    with torch.no_grad():
        for f, ref in zip(utts, texts):
            hyp = greedy(model.sequence(torch.from_numpy(stack(f))[None], quadratic=True)[0].numpy())
            words += edit_distance(ref.split(), hyp.split())
            chars += edit_distance(ref, hyp)
            nw, nc = nw + len(ref.split()), nc + len(ref)
    model.train()
    return words / nw, chars / nc


def initial_weights(path):
    """(state_dict, feature mean, feature std) of an earlier run: its checkpoint, or
    the ONNX it exported (whose weights keep the state_dict's names)."""
    if path.endswith(".pt"):
        ckpt = torch.load(path, weights_only=False)
        return ckpt["state_dict"], ckpt["mean"], ckpt["std"]
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    state_dict = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in proto.graph.initializer}
    return (state_dict, np.array(json.loads(meta["app.feature_mean"]), dtype=np.float32),
            np.array(json.loads(meta["app.feature_std"]), dtype=np.float32))


def export(model, mean, std, path):
    frontend = dict(sample_rate=data.SAMPLE_RATE, num_bins=data.NUM_BINS, frame_length_ms=25, frame_shift_ms=10,
                    dither=0.0, snip_edges=False, window="povey", low_freq=20.0, high_freq=-400.0,
                    preemph_coeff=0.97, remove_dc_offset=True, sample_scale=32768.0,
                    noise_floor=data.NOISE_FLOOR, stack=data.STACK, context=data.CONTEXT)
    extra = {"app.task": "asr-ctc", "app.vocabulary": json.dumps(data.SYMBOLS),
             "app.words": json.dumps(data.WORDS),
             "app.frontend": json.dumps(frontend),
             "app.feature_mean": json.dumps([round(float(v), 6) for v in mean]),
             "app.feature_std": json.dumps([round(float(v), 6) for v in std])}
    model.eval()
    export_onnx.export(model.state_dict(), CONFIG, path, "step", extra_metadata=extra)


def save(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)  # a checkpoint on disk is always whole


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/asr")
    p.add_argument("--steps", type=int, default=40000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--first-shard", type=int, default=0,
                   help="the pool's first shard: a fine-tuning run can leave out the earliest")
    p.add_argument("--shard-order", default=None,
                   help="the shards the pool takes, in the order it takes them, as a comma list of numbers and "
                        "ranges (\"40,0,41-45\"): mixes shards of several data mixes (default: --first-shard on)")
    p.add_argument("--initial-shards", type=int, default=4)
    p.add_argument("--max-shards", type=int, default=24)
    p.add_argument("--steps-per-shard", type=int, default=1000)
    p.add_argument("--warp", type=float, default=0.0,
                   help="vocal-tract-length warp of the filterbank, factors 1 +- this (0: off, as the first cycles)")
    p.add_argument("--dev", type=int, default=300, help="dev utterances (training voices) for progress reports")
    p.add_argument("--dev-every", type=int, default=2000)
    p.add_argument("--checkpoint", default="checkpoint.pt", help="file name in --work")
    p.add_argument("--init", default=None,
                   help="start a new run from these weights (an exported asr-commands.onnx or a checkpoint), with "
                        "their feature statistics, a fresh optimiser and schedule: a further training cycle")
    p.add_argument("--stop-after", type=float, default=None, help="leave after this many hours (resume later)")
    p.add_argument("--stop-at", type=int, default=None,
                   help="leave after this step's checkpoint (resume later, for example with another --steps)")
    p.add_argument("--export-only", action="store_true", help="export the checkpoint's weights as they are")
    p.add_argument("--onnx", default=None, help="where to export (default: asr-commands.onnx in --work)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.work, exist_ok=True)
    order = shard_order(a.shard_order) if a.shard_order else list(range(a.first_shard, a.first_shard + a.max_shards))
    if a.max_shards > len(order):
        p.error(f"--max-shards {a.max_shards} but --shard-order names {len(order)} shards")
    ckpt_path = os.path.join(a.work, a.checkpoint)
    onnx_path = a.onnx or os.path.join(a.work, "asr-commands.onnx")

    model = export_onnx.ExportModel(CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    if os.path.exists(ckpt_path):
        ckpt = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        mean, std, start_step = ckpt["mean"], ckpt["std"], ckpt["step"] + 1
        rng = np.random.default_rng()
        rng.bit_generator.state = ckpt["numpy_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        history, train_seconds = ckpt["history"], ckpt["train_seconds"]
        print(f"resumed at step {start_step} ({train_seconds:.0f}s trained so far)", flush=True)
    else:
        if a.export_only:
            p.error(f"no checkpoint at {ckpt_path}")
        torch.manual_seed(a.seed)
        rng = np.random.default_rng(a.seed)
        for s in order[:a.initial_shards]:
            data.build_shard(a.work, s)
        if a.init:
            state_dict, mean, std = initial_weights(a.init)
            model.load_state_dict(state_dict)
            print(f"starting from the weights of {a.init}", flush=True)
        else:
            mean, std = normalisation(a.work, order[:a.initial_shards])
        start_step, history, train_seconds = 0, [], 0.0
    if a.export_only:
        export(model, mean, std, onnx_path)
        print(f"wrote {onnx_path} from step {start_step - 1}")
        return
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params} parameters", flush=True)

    def shards_at(step):
        return min(a.max_shards, a.initial_shards + step // a.steps_per_shard)

    pool = Pool(a.work, mean, std, a.batch, order)
    pool.grow(shards_at(start_step))
    dev_utts, dev_texts = dev_set(a.work, a.dev, mean, std)
    print(f"data: {len(pool.utts)} utterances in {pool.shards} shards; dev {len(dev_utts)}", flush=True)

    def lr_at(step):
        return training.warmup_cosine(step, a.steps, a.lr, warmup=500)

    def checkpoint(step):
        save(ckpt_path, {"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                         "mean": mean, "std": std, "numpy_rng": rng.bit_generator.state,
                         "torch_rng": torch.get_rng_state(), "history": history,
                         "train_seconds": train_seconds, "config": CONFIG, "args": vars(a)})

    model.train()
    t0, running, session_start = time.time(), None, time.time()
    step = start_step
    for step in range(start_step, a.steps):
        if shards_at(step) > pool.shards:
            pool.grow(shards_at(step))
            print(f"step {step}: {len(pool.utts)} utterances in {pool.shards} shards", flush=True)
        run = pool.runs[rng.integers(len(pool.runs))]
        xs = [torch.from_numpy(stack(spec_augment(vocal_tract_warp(pool.utts[i], rng, mean, std, a.warp), rng)))
              for i in run]
        x_len = torch.tensor([x.shape[0] for x in xs])
        x = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
        ys = [torch.tensor(pool.labels[i]) for i in run]
        y_len = torch.tensor([len(y) for y in ys])
        logp = F.log_softmax(model.sequence(x, quadratic=True), dim=-1)
        loss = F.ctc_loss(logp.transpose(0, 1), torch.cat(ys), x_len, y_len, blank=0, zero_infinity=True)
        training.update(opt, model, loss, lr_at(step))
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        last = step == a.steps - 1
        if step % 100 == 0 or last:
            print(f"step {step} loss {running:.3f} lr {lr_at(step):.2e} {train_seconds + time.time() - t0:.0f}s",
                  flush=True)
        if (step + 1) % a.dev_every == 0 or last:
            wer, cer = evaluate(model, dev_utts, dev_texts)
            history.append({"step": step, "loss": running, "dev_wer": wer, "dev_cer": cer})
            print(f"step {step} dev greedy WER {100 * wer:.2f} % CER {100 * cer:.2f} %", flush=True)
        stopping = (a.stop_after is not None and time.time() - session_start > a.stop_after * 3600) or \
            (a.stop_at is not None and step + 1 >= a.stop_at)
        if (step + 1) % 250 == 0 or last or stopping:
            train_seconds += time.time() - t0
            t0 = time.time()
            checkpoint(step)
        if stopping:
            print(f"stopping at step {step}; run again to resume", flush=True)
            return
    export(model, mean, std, onnx_path)
    with open(os.path.join(a.work, "train.json"), "w") as f:
        json.dump({"parameters": params, "train_seconds": train_seconds, "steps": a.steps, "batch": a.batch,
                   "utterances": len(pool.utts), "final_loss": running, "history": history, "args": vars(a)},
                  f, indent=1)
    print(f"trained {a.steps} steps in {train_seconds:.0f}s; wrote {onnx_path}", flush=True)


if __name__ == "__main__":
    main()
