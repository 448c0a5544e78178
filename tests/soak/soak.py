#!/usr/bin/env python3
"""A day-long stream through `linrt asr` (issue 19's soak; not in CI).

Generates HOURS of live-like audio on the fly (the bundled sample's three commands at
varied gains, separated by 1.5-6 s of quiet, all over a continuous noise floor) and
pipes it as raw 16 kHz S16_LE into `linrt asr - --json` at full speed. Every
PROBE_EVERY seconds of audio the same probe utterance goes in at the same gain, into
the same stretch of noise: its transcript must stay identical all day.

While it runs, the recognizer's resident memory (VmRSS) is sampled four times a
second of wall time, more often than once per minute of audio at linrt's speed. At the
end it prints, and writes with --report, a JSON report: peak, first-hour and final
RSS, finals against utterances sent (every endpoint closed), NaN count, the probe's
transcripts and the wall time.

    python3 tests/soak/soak.py --linrt target/release/linrt --hours 24 --report soak.json

Needs numpy. The audio never touches the disk (24 h of 16-bit audio is 2.8 GB).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import wave

import numpy as np

RATE = 16000
PROBE_EVERY = 300.0  # seconds of audio between probes
# One encoder step of the shipped model: 3 frames of 10 ms at 16 kHz. Each probe
# starts on a step boundary, so its steps hold the same frames every time. (On whole
# seconds, as before, a probe falls at one of three offsets within a step, since a
# second is 33⅓ steps: the model read the probe as "is" at some and "it is" at
# others, 28 against 7 in three hours. That is the input changing, not drift.)
STEP = 3 * 160  # samples
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def load_sample():
    """The bundled sample's utterances (float32 arrays) and their references."""
    base = os.path.join(ROOT, "models", "asr-commands")
    with wave.open(os.path.join(base, "sample.wav")) as w:
        assert w.getframerate() == RATE and w.getsampwidth() == 2 and w.getnchannels() == 1
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    with open(os.path.join(base, "golden", "cases.json")) as f:
        cases = json.load(f)
    return [(audio[c["start"]:c["end"]], c["reference"]) for c in cases]


def finite(event):
    """False when a time or confidence is NaN, infinite, or null (serde_json's NaN)."""
    words = event.get("words", [])
    values = [event.get("start"), event.get("end")] if event.get("type") == "final" else []
    values += [w.get(k) for w in words for k in ("start", "end", "confidence")]
    return all(isinstance(v, (int, float)) and np.isfinite(v) for v in values)


class Rss:
    """Samples a process's VmRSS (bytes) with the audio position at that moment."""

    def __init__(self, pid, position):
        self.pid, self.position, self.samples, self.done = pid, position, [], False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def read(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None

    def run(self):
        while not self.done:
            rss = self.read()
            if rss is not None:
                self.samples.append((self.position(), rss))
            time.sleep(0.25)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--linrt", default=os.path.join(ROOT, "target", "release", "linrt"))
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--report", default=None, help="write the JSON report here too")
    p.add_argument("--probe", type=int, default=2, help="which of the sample's utterances is the probe")
    a = p.parse_args()

    utterances = load_sample()
    probe_audio, probe_reference = utterances[a.probe]
    rng = np.random.default_rng(a.seed)
    # A minute of noise floor (about -60 dBFS), looped: the quiet between commands.
    floor = (rng.standard_normal(60 * RATE) * 0.001).astype(np.float32)
    floor_at = [0]

    def noise(n):
        out = np.empty(n, dtype=np.float32)
        done = 0
        while done < n:
            start = floor_at[0] % len(floor)
            take = min(n - done, len(floor) - start)
            out[done:done + take] = floor[start:start + take]
            floor_at[0] += take
            done += take
        return out

    def pcm(x):
        return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()

    # The probe always sits in the same noise, with the same quiet before it.
    said = probe_audio + floor[2 * RATE:2 * RATE + len(probe_audio)]
    probe_block = np.concatenate([floor[:2 * RATE], said, floor[:4 * RATE]])
    probe_lead = 2 * RATE  # samples of quiet before the probe
    probe_bytes = pcm(probe_block)

    proc = subprocess.Popen([a.linrt, "asr", "-", "--json", "--stats"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1 << 20)
    written = [0]  # samples
    rss = Rss(proc.pid, lambda: written[0] / RATE)
    finals, probes, nan_lines, stats = [], [], [0], [None]
    probe_windows = []  # (start s, end s) of each probe utterance in the stream
    windows = []  # (start s, end s, reference) of every other utterance

    def read_output():
        for line in proc.stdout:
            text = line.decode("utf-8", "replace")
            try:
                event = json.loads(text)
            except json.JSONDecodeError:
                continue
            if not finite(event):
                nan_lines[0] += 1
            if event.get("type") == "final":
                finals.append((event["start"], event["end"], event["text"]))
            elif event.get("type") == "stats":
                stats[0] = event

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    total = int(a.hours * 3600 * RATE)
    sent = 0  # utterances, probes included
    next_probe = PROBE_EVERY * RATE
    start = time.time()
    try:
        while written[0] < total:
            if written[0] >= next_probe:
                # On a step boundary: the probe's steps hold the same frames
                # every time.
                pad = (-written[0]) % STEP
                proc.stdin.write(pcm(noise(pad)))
                written[0] += pad
                begin = written[0] + probe_lead
                probe_windows.append((begin / RATE, (begin + len(probe_audio)) / RATE))
                proc.stdin.write(probe_bytes)
                written[0] += len(probe_block)
                next_probe += PROBE_EVERY * RATE
                sent += 1
                continue
            audio, reference = utterances[int(rng.integers(len(utterances)))]
            gain = float(rng.uniform(0.5, 1.0))
            quiet = int(rng.uniform(1.5, 6.0) * RATE)
            block = np.concatenate([audio * gain + noise(len(audio)), noise(quiet)])
            windows.append((written[0] / RATE, (written[0] + len(audio)) / RATE, reference))
            proc.stdin.write(pcm(block))
            written[0] += len(block)
            sent += 1
        proc.stdin.close()
    except BrokenPipeError:
        print("linrt stopped reading its input", file=sys.stderr)
    code = proc.wait()
    reader.join()
    rss.done = True
    wall = time.time() - start
    err = proc.stderr.read().decode("utf-8", "replace").strip()

    probe_hours = {}
    for (p_start, p_end) in probe_windows:
        texts = [t for (s, e, t) in finals if s < p_end + 0.5 and e > p_start - 0.5]
        probes.append(" | ".join(texts))
        hour = probe_hours.setdefault(int(p_start // 3600), {})
        hour[probes[-1]] = hour.get(probes[-1], 0) + 1
    # Each utterance's endpoint closes with a final overlapping it; a miss is a
    # (marginal) utterance the model heard nothing in. Misses per hour show whether
    # the stream ever stopped closing utterances.
    missed, per_hour = {}, {}
    correct = 0
    for (u_start, u_end, reference) in windows:
        texts = [t for (s, e, t) in finals if s < u_end + 0.5 and e > u_start - 0.5]
        if not texts:
            missed[reference] = missed.get(reference, 0) + 1
            hour_index = int(u_start // 3600)
            per_hour[hour_index] = per_hour.get(hour_index, 0) + 1
        elif " ".join(texts) == reference:
            correct += 1
    samples = rss.samples
    hour = [r for (pos, r) in samples if pos <= 3600]
    report = {
        "hours": a.hours,
        "exit_code": code,
        "stderr": err[-500:],
        "wall_s": round(wall, 1),
        "rtf": round(wall / (written[0] / RATE), 5),
        "utterances_sent": sent,
        "finals": len(finals),
        "utterances_without_final": missed,
        "misses_per_hour": [per_hour.get(h, 0) for h in range(int(np.ceil(a.hours)))],
        "utterances_read_exactly": correct,
        "nan_lines": nan_lines[0],
        "rss_samples": len(samples),
        "rss_peak_bytes": max(r for _, r in samples) if samples else None,
        "rss_first_hour_peak_bytes": max(hour) if hour else None,
        "rss_final_bytes": samples[-1][1] if samples else None,
        "probe_reference": probe_reference,
        "probes": len(probes),
        "probe_transcripts": {t: probes.count(t) for t in sorted(set(probes))},
        "probe_transcripts_per_hour": [probe_hours.get(h, {}) for h in range(int(np.ceil(a.hours)))],
        "probe_identical": len(set(probes)) == 1,
        "stats": stats[0],
    }
    text = json.dumps(report, indent=1)
    print(text)
    if a.report:
        with open(a.report, "w") as f:
            f.write(text + "\n")
    ok = (code == 0 and report["nan_lines"] == 0 and report["probe_identical"] and len(probes) == len(probe_windows)
          and samples and report["rss_peak_bytes"] <= report["rss_first_hour_peak_bytes"])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
