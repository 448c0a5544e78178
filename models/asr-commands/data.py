#!/usr/bin/env python3
"""Synthetic speech for the voice-command recognizer: sentences, voices, augmentation,
features. Nothing here is committed as data: `train.py` calls `build` to generate it.

Every utterance is drawn from its own seed, so a split is reproducible from
(split, index) alone. Speech comes from espeak-ng (every English accent it ships
times its voice variants), resampled to 16 kHz by sox with speed perturbation (which
also moves the formants, a cheap vocal-tract-length perturbation), pitch shift,
reverberation and band-limiting, then gets random level, clipping and additive noise
(white, pink, brown, hum, babble of other synthetic speech) at varied SNR here.

Features are kaldi-native-fbank's, configured as sherpa-onnx configures it: 80 bins,
25 ms povey window, 10 ms hop, 16 kHz, dither 0, snip_edges false, low 20 Hz, high
-400 Hz, samples scaled to the int16 range.
"""
import os
import subprocess
import tempfile
import zlib

import numpy as np

SAMPLE_RATE = 16000
NUM_BINS = 80
STACK = 3  # new frames per encoder step: 30 ms
CONTEXT = 11  # frames one step sees: its 3 and the 8 before (110 ms), all in the past

VOCAB = (
    "zero one two three four five six seven eight nine oh yes no up down left right front rear side center back "
    "forward on off stop go start pause play next previous open close turn set volume light lights fan music timer "
    "alarm minutes seconds hours call answer cancel confirm help home temperature degrees what time is it the to and "
    "for please hey wake sleep"
).split()
DIGITS = "zero one two three four five six seven eight nine oh".split()
# CTC output symbols: 0 is the blank.
SYMBOLS = ["<blank>", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]

ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-us-nyc", "en-029", "en-gb-x-gbcwmd"]
VARIANT_DIR = "/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v"
# Held out of training entirely: two accents, and these variants under every accent.
TEST_ACCENTS = ["en-029", "en-gb-x-gbcwmd"]
TEST_VARIANTS = ["f2", "m4", "klatt3", "Andy", "belinda", "grandpa", "john", "linda", "max", "norbert", "steph", "Tweaky"]


def variants():
    names = sorted(os.listdir(VARIANT_DIR)) if os.path.isdir(VARIANT_DIR) else []
    # Whispered variants have no voicing at all; "mbrola" needs an external synthesizer.
    return [""] + [v for v in names if v not in ("whisper", "whisperf", "mbrola")]


def voices(split):
    """(accent, variant) pairs of a split; no pair, accent-only or variant-only
    overlap lets a test voice into training."""
    vs = variants()
    train_accents = [a for a in ACCENTS if a not in TEST_ACCENTS]
    train_variants = [v for v in vs if v not in TEST_VARIANTS]
    if split == "train":
        return [(a, v) for a in train_accents for v in train_variants]
    held = [(a, v) for a in TEST_ACCENTS for v in vs]
    held += [(a, v) for a in train_accents for v in TEST_VARIANTS if v in vs]
    return held


TEMPLATES = [
    "turn {onoff} the {device}", "turn the {device} {onoff}", "set {the} volume to {digit}", "volume {updown}",
    "set a timer for {number} {unit}", "set the alarm for {digit} {digit}", "set the temperature to {digit} {digit} degrees",
    "what time is it", "hey {cmd}", "{cmd} please", "{cmd}", "play music", "{cmd} the music", "call {digits}",
    "answer the call", "cancel the timer", "cancel the alarm", "turn {leftright}", "go {direction}", "help", "go home",
    "wake up", "sleep", "open the {where} {device}", "close the {where} {device}", "confirm", "next", "previous",
    "turn {onoff} the {where} {device} please", "fan {onoff}", "lights {onoff}", "set the fan to {digit}",
]
SLOTS = {
    "onoff": ["on", "off"], "device": ["light", "lights", "fan", "music", "alarm", "timer"], "the": ["the", ""],
    "updown": ["up", "down"], "unit": ["minutes", "seconds", "hours"], "cmd": ["stop", "go", "start", "pause",
    "play", "next", "previous", "cancel", "confirm", "help", "answer", "wake", "sleep", "back", "forward"],
    "leftright": ["left", "right", "back"], "direction": ["left", "right", "up", "down", "back", "forward", "home"],
    "where": ["front", "rear", "side", "center", "back", "left", "right"],
}


def sentence(rng):
    """1-8 words over VOCAB: a command template, a digit string, or random words."""
    kind = rng.random()
    if kind < 0.35:
        text = TEMPLATES[rng.integers(len(TEMPLATES))]
        out = []
        for word in text.split():
            if word == "{digit}":
                out.append(DIGITS[rng.integers(len(DIGITS))])
            elif word == "{number}":
                out += [DIGITS[rng.integers(1, 10)] for _ in range(rng.integers(1, 3))]
            elif word == "{digits}":
                out += [DIGITS[rng.integers(len(DIGITS))] for _ in range(rng.integers(3, 8))]
            elif word.startswith("{"):
                choice = SLOTS[word[1:-1]][rng.integers(len(SLOTS[word[1:-1]]))]
                out += choice.split()
            else:
                out.append(word)
        words = out[:8]
    elif kind < 0.6:
        words = [DIGITS[rng.integers(len(DIGITS))] for _ in range(rng.integers(1, 9))]
    else:
        words = [VOCAB[rng.integers(len(VOCAB))] for _ in range(rng.integers(1, 9))]
    return " ".join(words)


def encode(text):
    return [SYMBOLS.index(c) for c in text]


def synthesize(text, accent, variant, rng, clean=False):
    """espeak-ng then sox: float32 samples in [-1, 1] at 16 kHz."""
    voice = accent + (f"+{variant}" if variant else "")
    speed = int(rng.integers(125, 196))
    pitch = int(rng.integers(15, 86))
    gap = int(rng.integers(0, 5))
    espeak = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-g", str(gap), "--stdout", text]
    # speed changes the rate: resample to 16 kHz after it, before filters that need it.
    effects = ["speed", f"{rng.uniform(0.9, 1.1):.3f}", "rate", str(SAMPLE_RATE)]
    if not clean and rng.random() < 0.35:
        lo, hi = int(rng.integers(60, 400)), int(rng.integers(3000, 7000))
        effects += ["sinc", f"{lo}-{hi}"]
    effects += ["pitch", str(int(rng.integers(-250, 251)))]
    if not clean and rng.random() < 0.45:
        effects += ["reverb", str(int(rng.integers(10, 90))), "50", str(int(rng.integers(10, 100))), "100",
                    str(int(rng.integers(0, 30)))]
    pad = [f"{rng.uniform(0.1, 0.6):.2f}", f"{rng.uniform(0.1, 0.6):.2f}"]
    effects += ["pad", *pad, "rate", str(SAMPLE_RATE)]
    wav = subprocess.run(espeak, capture_output=True, check=True).stdout
    raw = subprocess.run(["sox", "-q", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "float", "-b", "32", "-c", "1",
                          "-", *effects],
                         input=wav, capture_output=True, check=True).stdout
    audio = np.frombuffer(raw, dtype=np.float32).copy()
    peak = np.abs(audio).max() + 1e-9
    return audio / peak * 10 ** (rng.uniform(-26, -1) / 20)  # level: -26..-1 dBFS peak


# A different synthesizer (CMU Flite, apt package `flite`), never used in training:
# the out-of-distribution test of how the model holds up on speech unlike its data.
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]


def synthesize_flite(text, voice, rng):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "x.wav")
        subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={rng.uniform(0.85, 1.15):.2f}",
                        "-t", text, "-o", out], check=True, capture_output=True)
        pad = [f"{rng.uniform(0.1, 0.6):.2f}", f"{rng.uniform(0.1, 0.6):.2f}"]
        raw = subprocess.run(["sox", "-q", out, "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "float", "-b", "32", "-c",
                              "1", "-", "pad", *pad, "rate", str(SAMPLE_RATE)], capture_output=True, check=True).stdout
    audio = np.frombuffer(raw, dtype=np.float32).copy()
    return audio / (np.abs(audio).max() + 1e-9) * 10 ** (rng.uniform(-26, -1) / 20)


def colored_noise(n, rng, kind):
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "hum":
        t = np.arange(n) / SAMPLE_RATE
        f0 = rng.choice([50.0, 60.0])
        return sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 6))
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    spectrum /= np.sqrt(f) if kind == "pink" else f
    return np.fft.irfft(spectrum, n)


def add_noise(audio, rng, snr_db, babble=None):
    kinds = ["white", "pink", "brown", "hum"] + (["babble"] if babble is not None else [])
    kind = kinds[rng.integers(len(kinds))]
    if kind == "babble":
        noise = np.resize(babble, len(audio))
    else:
        noise = colored_noise(len(audio), rng, kind)
    p_sig = np.mean(audio**2) + 1e-12
    p_noise = np.mean(noise**2) + 1e-12
    return (audio + noise * np.sqrt(p_sig / p_noise / 10 ** (snr_db / 10))).astype(np.float32)


def fbank(audio):
    """Log-mel features [frames, 80], kaldi-native-fbank as sherpa-onnx sets it up."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = False
    opts.mel_opts.num_bins = NUM_BINS
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = -400.0
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(SAMPLE_RATE, (audio * 32768.0).tolist())
    fb.input_finished()
    return np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)]).astype(np.float32)


def utterance(split, index):
    """(text, voice, audio, snr or None) for utterance `index` of `split`, deterministic.
    "test-clean" and "test-noisy" are the same held-out utterances, without and with
    noise at 5-20 dB SNR."""
    if split == "test-flite":
        rng = np.random.default_rng(zlib.crc32(f"flite:{index}".encode()))
        voice = FLITE_VOICES[index % len(FLITE_VOICES)]
        text = sentence(rng)
        return text, f"flite-{voice}", np.clip(synthesize_flite(text, voice, rng), -1, 1), None
    base = "test" if split.startswith("test") else split
    rng = np.random.default_rng(zlib.crc32(f"{base}:{index}".encode()))
    pool = voices("train" if split == "train" else "test")
    accent, variant = pool[rng.integers(len(pool))]
    text = sentence(rng)
    audio = synthesize(text, accent, variant, rng, clean=base == "test")
    snr = None
    if split == "train":
        if rng.random() < 0.75:
            snr = float(rng.uniform(0, 30))
            babble = None
            if rng.random() < 0.3:
                other = sentence(rng)
                babble = synthesize(other, *pool[rng.integers(len(pool))], rng) * 0.5
            audio = add_noise(audio, rng, snr, babble)
        if rng.random() < 0.05:  # clipped input
            audio = np.clip(audio * rng.uniform(2, 8), -1, 1)
    elif split == "test-noisy":
        noise_rng = np.random.default_rng(zlib.crc32(f"test-noise:{index}".encode()))
        snr = float(noise_rng.uniform(5, 20))
        audio = add_noise(audio, noise_rng, snr)
    audio = np.clip(audio, -1.0, 1.0)
    return text, f"{accent}+{variant}" if variant else accent, audio, snr


def _job(args):
    split, index = args
    text, voice, audio, snr = utterance(split, index)
    return text, voice, fbank(audio).astype(np.float16), snr


def build(split, count, path, workers=2):
    """Generates `count` utterances of `split` into an .npz at `path` (cached)."""
    if os.path.exists(path):
        return dict(np.load(path, allow_pickle=True))
    from multiprocessing import Pool

    with Pool(workers) as pool:
        rows = pool.map(_job, [(split, i) for i in range(count)], chunksize=16)
    texts, voices_, feats, snrs = zip(*rows)
    lengths = np.array([f.shape[0] for f in feats])
    data = dict(texts=np.array(texts), voices=np.array(voices_), lengths=lengths,
                feats=np.concatenate(feats), snr=np.array([s if s is not None else np.nan for s in snrs]))
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(path) or ".", suffix=".npz", delete=False) as f:
        np.savez(f, **data)
    os.replace(f.name, path)
    return data


if __name__ == "__main__":
    import sys
    import time

    rng = np.random.default_rng(0)
    for _ in range(5):
        print(sentence(rng))
    print(len(voices("train")), "training voices,", len(voices("test")), "held-out voices")
    start = time.time()
    text, voice, audio, snr = utterance(sys.argv[1] if len(sys.argv) > 1 else "train", 0)
    f = fbank(audio)
    print(text, voice, audio.shape, snr, f.shape, f"{time.time() - start:.3f}s")
