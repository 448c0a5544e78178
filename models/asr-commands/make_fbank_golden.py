#!/usr/bin/env python3
"""Golden log-mel features for the front-end parity test (tests/asr.rs), computed by
kaldi-native-fbank configured as sherpa-onnx configures it (see data.fbank).

Writes tests/golden/fbank/<name>.wav (16-bit mono 16 kHz) and <name>.fbank.npy
(float32 [frames, 80]) and <name>.exact.npy (the same computed in float64 with
numpy: kaldi-native-fbank computes in float32, which in the quiet bins of a loud
tone is off by more than 1e-3) for:
  speech  a 4-5 s espeak-ng sentence with background noise (real-length speech)
  stress  a chirp over a noise floor, white noise, digital silence, a very quiet stretch and clipping
  short   300 samples: less than two frames, reflected at both ends

    python models/asr-commands/make_fbank_golden.py
"""
import pathlib
import subprocess
import tempfile

import numpy as np
import soundfile as sf

from data import fbank

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "golden" / "fbank"
RATE = 16000


def speech(rng):
    with tempfile.TemporaryDirectory() as tmp:
        wav = pathlib.Path(tmp) / "s.wav"
        text = "hey set a timer for five minutes and turn the music volume down please"
        subprocess.run(["espeak-ng", "-v", "en-us+m3", "-s", "150", "-w", str(wav), text], check=True)
        raw = pathlib.Path(tmp) / "r.wav"
        subprocess.run(["sox", str(wav), "-r", str(RATE), "-b", "16", str(raw)], check=True)
        audio, rate = sf.read(raw, dtype="float32")
    assert rate == RATE
    return 0.8 * audio / np.abs(audio).max() + 0.003 * rng.standard_normal(len(audio)).astype(np.float32)


def stress(rng):
    t = np.arange(RATE) / RATE
    # Over a noise floor as in any recording: a pure tone leaves bins 130 dB below
    # it, where kaldi-native-fbank's own float arithmetic is only noise.
    chirp = 0.5 * np.sin(2 * np.pi * (50 * t + 3900 * t**2)) + 0.003 * rng.standard_normal(RATE)
    noise = 0.2 * rng.standard_normal(RATE // 2)
    silence = np.zeros(RATE // 4)
    quiet = 2e-4 * rng.standard_normal(RATE // 4)
    clipped = np.clip(3.0 * np.sin(2 * np.pi * 440 * t[: RATE // 2]), -1.0, 1.0)
    return np.concatenate([chirp, noise, silence, quiet, clipped]).astype(np.float32)


def exact_fbank(pcm):
    """The same features computed in float64 with numpy: the truth that
    kaldi-native-fbank's float arithmetic approximates."""
    x = pcm.astype(np.float64)
    n, shift, fft = 400, 160, 512
    frames = (len(x) + shift // 2) // shift
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi = mel(20.0), mel(RATE / 2 - 400.0)
    delta = (hi - lo) / 81
    bin_mel = mel(np.arange(fft // 2) * RATE / fft)
    weights = np.zeros((80, fft // 2))
    for b in range(80):
        left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
        inside = (bin_mel > left) & (bin_mel < right)
        rising = np.where(bin_mel <= center, (bin_mel - left) / (center - left), (right - bin_mel) / (right - center))
        weights[b] = np.where(inside, rising, 0.0)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / (n - 1))) ** 0.85
    out = np.empty((frames, 80))
    for m in range(frames):
        idx = m * shift + shift // 2 - n // 2 + np.arange(n)
        while (idx < 0).any() or (idx >= len(x)).any():
            idx = np.where(idx < 0, -idx - 1, np.where(idx >= len(x), 2 * len(x) - 1 - idx, idx))
        f = x[idx] - x[idx].mean()
        f = np.concatenate([[f[0] - 0.97 * f[0]], f[1:] - 0.97 * f[:-1]]) * window
        power = np.abs(np.fft.rfft(f, fft)) ** 2
        out[m] = np.log(np.maximum(weights @ power[: fft // 2], np.finfo(np.float32).eps))
    return out


def main():
    rng = np.random.default_rng(7)
    OUT.mkdir(parents=True, exist_ok=True)
    cases = {"speech": speech(rng), "stress": stress(rng), "short": 0.3 * rng.standard_normal(300)}
    for name, audio in cases.items():
        # Quantise to int16 first so that the WAV holds exactly what the features saw.
        pcm = np.clip(np.round(np.asarray(audio) * 32768.0), -32768, 32767).astype(np.int16)
        sf.write(OUT / f"{name}.wav", pcm, RATE, subtype="PCM_16")
        feats = fbank(pcm.astype(np.float32) / 32768.0)
        np.save(OUT / f"{name}.fbank.npy", feats.astype(np.float32))
        exact = exact_fbank(pcm)
        np.save(OUT / f"{name}.exact.npy", exact.astype(np.float32))
        print(f"  max |kaldi-native-fbank - float64| = {np.abs(feats - exact).max():.2e}")
        print(f"{name}: {len(pcm) / RATE:.2f} s, {feats.shape[0]} frames")


if __name__ == "__main__":
    main()
