"""The Python package against the command line and the Rust session: the same
bits, the same transcripts, the same error messages.

Needs the `linrt` binary of the same checkout (LINRT_BIN, else target/release or
target/debug): `cargo build` first.
"""
import json
import os
import pathlib
import random
import subprocess
import threading
import time
import wave

import numpy as np
import pytest

import linrt

ROOT = pathlib.Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "models/asr-commands/sample.wav"
AUDIO = ROOT / "tools/tests/audio"
TINY = ROOT / "models/tiny"
EXPECTED = ["one", "close", "it is"]


def linrt_bin():
    given = os.environ.get("LINRT_BIN")
    for path in [given] if given else [ROOT / "target/release/linrt", ROOT / "target/debug/linrt"]:
        if path and os.path.exists(path):
            return str(path)
    raise RuntimeError("no linrt binary: run `cargo build` (or set LINRT_BIN)")


def cli(*args, check=True):
    return subprocess.run([linrt_bin(), *map(str, args)], capture_output=True, text=True, check=check)


def cli_error(*args):
    """The message of the command line's one `error:` line."""
    out = cli(*args, check=False)
    assert out.returncode != 0
    lines = [l for l in out.stderr.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, out.stderr
    return lines[0][len("error: "):]


def same_bits(a, b):
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.lrt"
    linrt.convert(TINY / "tiny.onnx", path, dtype="f32")
    return path


# ---------------------------------------------------------------------------------
# convert


def test_convert_returns_the_command_lines_report_and_file(tmp_path):
    for dtype in ["f32", "int8"]:
        report = linrt.convert(TINY / "tiny.onnx", tmp_path / f"py.{dtype}.lrt", dtype=dtype)
        out = cli("convert", TINY / "tiny.onnx", "-o", tmp_path / f"cli.{dtype}.lrt", "--dtype", dtype, "--json")
        want = json.loads(out.stdout)
        assert report["verification"] == want["verification"]
        assert report["verification"]["passed"] is True
        assert report["bytes"] == want["bytes"] and report["form"] == want["form"]
        assert (tmp_path / f"py.{dtype}.lrt").read_bytes() == (tmp_path / f"cli.{dtype}.lrt").read_bytes()


def test_convert_errors_are_the_command_lines(tmp_path):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(linrt.LinrtError) as e:
        linrt.convert(missing, tmp_path / "x.lrt")
    assert str(e.value) == cli_error("convert", missing, "-o", tmp_path / "y.lrt", "--dtype", "int8")
    with pytest.raises(linrt.LinrtError, match="unknown dtype"):
        linrt.convert(TINY / "tiny.onnx", tmp_path / "x.lrt", dtype="f8")
    # Not ONNX at all: an error, not an abort of the interpreter.
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07" + bytes(range(256)) * 4)
    with pytest.raises(linrt.LinrtError) as e:
        linrt.convert(junk, tmp_path / "x.lrt")
    assert str(e.value) == cli_error("convert", junk, "-o", tmp_path / "y.lrt", "--dtype", "int8")
    assert not (tmp_path / "x.lrt").exists()


# ---------------------------------------------------------------------------------
# Model and Session


def test_model_reports_its_config_and_arena(tiny):
    model = linrt.Model(tiny)
    inspected = json.loads(cli("inspect", tiny, "--json").stdout)
    assert model.config == inspected["config"]
    assert model.metadata == inspected["metadata"]
    assert model.arena_bytes() == inspected["arena_bytes"]
    assert model.arena_bytes(64) > model.arena_bytes()
    assert "asr-ctc" == linrt.Model.bundled().metadata["app.task"]


def test_steps_and_chunks_equal_the_rust_session_bit_for_bit(tiny, tmp_path):
    x = np.load(TINY / "sample.npy")
    session = linrt.Model(tiny).session()
    steps = np.stack([session.step(row) for row in x])
    assert session.position == len(x)
    cli("run", tiny, "--input", TINY / "sample.npy", "--output", tmp_path / "steps.npy")
    assert same_bits(steps, np.load(tmp_path / "steps.npy"))
    # The causal parallel form, 8 positions a call, as `linrt run --chunk 8`.
    chunked = linrt.Session(linrt.Model(tiny), max_chunk=8)
    chunks = np.concatenate([chunked.step_chunk(x[i:i + 8]) for i in range(0, len(x), 8)])
    cli("run", tiny, "--input", TINY / "sample.npy", "--output", tmp_path / "chunks.npy", "--chunk", "8")
    assert same_bits(chunks, np.load(tmp_path / "chunks.npy"))

def test_vector_inputs_as_float32_or_float64(tmp_path):
    # The speech model takes vectors (1,200 log-mel values a step).
    model = linrt.Model.bundled()
    x = np.random.default_rng(3).standard_normal((6, model.config["input_dim"])).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "m.lrt").write_bytes(pathlib.Path(ROOT / "models/asr-commands/asr-commands.int8.lrt").read_bytes())
    cli("run", tmp_path / "m.lrt", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    want = np.load(tmp_path / "y.npy")
    session = model.session()
    assert same_bits(np.stack([session.step(row) for row in x]), want)
    # float64 inputs are narrowed to float32 first: the same bits.
    session.reset()
    assert same_bits(np.stack([session.step(row.astype(np.float64)) for row in x]), want)
    chunked = model.session(max_chunk=6)
    assert chunked.step_chunk(x).shape == (6, model.config["output_dim"])


def test_state_saved_restored_and_reset(tiny):
    x = np.load(TINY / "sample.npy")
    model = linrt.Model(tiny)
    a = model.session()
    first = [a.step(row) for row in x[:4]]
    state = a.save_state()
    assert isinstance(state, bytes)
    rest = [a.step(row) for row in x[4:8]]
    b = model.session()
    b.restore_state(state)
    assert b.position == 4
    assert all(same_bits(b.step(row), want) for row, want in zip(x[4:8], rest))
    a.restore_state(state)
    assert all(same_bits(a.step(row), want) for row, want in zip(x[4:8], rest))
    a.reset()
    assert a.position == 0 and same_bits(a.step(x[0]), first[0])


def test_session_errors_carry_the_runtimes_messages(tiny):
    model = linrt.Model.bundled()
    session = model.session(max_chunk=4)
    width = model.config["input_dim"]
    with pytest.raises(linrt.LinrtError, match=str(width)):
        session.step(np.zeros(width + 1, dtype=np.float32))
    with pytest.raises(linrt.LinrtError):
        session.step_chunk(np.zeros((5, width), dtype=np.float32))  # more than max_chunk
    with pytest.raises(linrt.LinrtError, match="restore"):
        session.restore_state(b"not a state")
    with pytest.raises(TypeError):
        session.step("seven")
    tokens = linrt.Model(tiny).session()
    with pytest.raises(linrt.LinrtError):
        tokens.step(10**6)  # no such token
    with pytest.raises(TypeError):
        tokens.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(linrt.LinrtError, match="cannot open"):
        linrt.Model(TINY / "missing.lrt")
    with pytest.raises(linrt.LinrtError):
        linrt.Model(TINY / "tiny.onnx")  # not a .lrt file
    # The session still works after its errors.
    assert session.step(np.zeros(width, dtype=np.float32)).shape == (model.config["output_dim"],)


# ---------------------------------------------------------------------------------
# Recognizer


def cli_finals(*args):
    out = cli("asr", *args, "--json").stdout
    return [e for e in map(json.loads, out.splitlines()) if e["type"] == "final"]


def same_finals(got, want):
    """Python's finals against `linrt asr --json`'s: the same words at the same times,
    with the same confidences (the command line prints them to 1 ms and 0.001)."""
    assert [f["text"] for f in got] == [f["text"] for f in want]
    for g, w in zip(got, want):
        assert (round(g["start"], 3), round(g["end"], 3)) == (w["start"], w["end"])
        assert [(x["word"], round(x["start"], 3), round(x["end"], 3)) for x in g["words"]] == \
            [(x["word"], x["start"], x["end"]) for x in w["words"]]
        for x, y in zip(g["words"], w["words"]):
            assert (x["confidence"] is None) == ("confidence" not in y)
            if x["confidence"] is not None:
                assert round(x["confidence"], 3) == y["confidence"]


def recognize(recognizer, rate, samples, chunks):
    events = []
    for chunk in chunks:
        recognizer.accept_waveform(rate, chunk)
        events += recognizer.events()
    recognizer.input_finished()
    return events + recognizer.events()


def test_recognizer_equals_linrt_asr_on_the_sample():
    rate, samples = linrt.load_audio(SAMPLE)
    assert rate == 16000 and samples.dtype == np.float32
    recognizer = linrt.Recognizer()
    events = recognize(recognizer, rate, samples, np.array_split(samples, len(samples) // 160))
    same_finals(recognizer.finals(), cli_finals(SAMPLE))
    assert [f["text"] for f in recognizer.finals()] == EXPECTED
    # Partial results come before each final, then the final.
    kinds = [e["type"] for e in events]
    assert kinds.count("final") == 3 and kinds[0] == "partial"
    assert recognizer.partial() == ""


def test_any_chunking_gives_the_same_events():
    rate, samples = linrt.load_audio(SAMPLE)
    reference = recognize(linrt.Recognizer(), rate, samples, [samples])
    rng = random.Random(7)
    for _ in range(3):
        cuts = sorted(rng.sample(range(1, len(samples)), 400))
        got = recognize(linrt.Recognizer(), rate, samples, np.split(samples, cuts))
        assert [e for e in got if e["type"] == "final"] == [e for e in reference if e["type"] == "final"]


def test_int16_and_other_rates_as_the_command_line_reads_them(tmp_path):
    rate, samples = linrt.load_audio(SAMPLE)
    pcm = np.round(samples * 32768).astype(np.int16)
    recognizer = linrt.Recognizer()
    recognize(recognizer, rate, pcm, [pcm])
    same_finals(recognizer.finals(), cli_finals(SAMPLE))
    # 48 kHz audio (each sample three times): resampled to the model's 16 kHz by the
    # same resampler as `linrt asr` uses on a 48 kHz file.
    high = np.repeat(pcm, 3)
    path = tmp_path / "48k.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(high.tobytes())
    recognizer = linrt.Recognizer()
    recognize(recognizer, 48000, high, np.array_split(high, 97))
    same_finals(recognizer.finals(), cli_finals(path))
    # Compressed files read as the command line reads them.
    for name in ["sample.flac", "sample.mp3"]:
        r, s = linrt.load_audio(AUDIO / name)
        recognizer = linrt.Recognizer()
        recognize(recognizer, r, s, [s])
        same_finals(recognizer.finals(), cli_finals(AUDIO / name))


def test_load_audio_reads_flac_as_the_wav_bit_for_bit():
    _, wav = linrt.load_audio(SAMPLE)
    rate, flac = linrt.load_audio(AUDIO / "sample.flac")
    assert rate == 16000 and same_bits(flac, wav)
    with pytest.raises(linrt.LinrtError, match="Opus audio is not supported"):
        linrt.load_audio(AUDIO / "opus.ogg")


def test_decoders_words_grammars_and_hotwords_as_the_command_line(tmp_path):
    rate, samples = linrt.load_audio(SAMPLE)
    greedy = linrt.Recognizer(decoder="greedy")
    recognize(greedy, rate, samples, [samples])
    same_finals(greedy.finals(), cli_finals(SAMPLE, "--decoder", "greedy"))
    grammar = "<cmd> = one | close | open\n<cmd>\nit is\n"
    (tmp_path / "g.txt").write_text(grammar)
    constrained = linrt.Recognizer(grammar=grammar)
    recognize(constrained, rate, samples, [samples])
    same_finals(constrained.finals(), cli_finals(SAMPLE, "--grammar", tmp_path / "g.txt"))
    words = ["one", "close", "it", "is", "open"]
    (tmp_path / "w.txt").write_text("\n".join(words))
    listed = linrt.Recognizer(words=words, hotwords="close :2.0")
    (tmp_path / "h.txt").write_text("close :2.0")
    recognize(listed, rate, samples, [samples])
    same_finals(listed.finals(), cli_finals(SAMPLE, "--words", tmp_path / "w.txt", "--hotwords", tmp_path / "h.txt"))


def test_recognizer_errors_are_raised_with_their_messages(tmp_path):
    bad = "set <missing>+ minutes\n"
    (tmp_path / "bad.txt").write_text(bad)
    with pytest.raises(linrt.LinrtError) as e:
        linrt.Recognizer(grammar=bad)
    # The command line names the file, Python the argument; the rest is the same line.
    want = cli_error("asr", "--grammar", tmp_path / "bad.txt")
    assert str(e.value).startswith("grammar:1:") and want.endswith(str(e.value)[len("grammar"):])
    with pytest.raises(linrt.LinrtError, match="beam"):
        linrt.Recognizer(decoder="greedy", words=["one"])
    with pytest.raises(linrt.LinrtError, match="decoder"):
        linrt.Recognizer(decoder="fast")
    with pytest.raises(linrt.LinrtError, match="silence_after_speech"):
        linrt.Recognizer(silence_after_speech=0)
    recognizer = linrt.Recognizer()
    with pytest.raises(ValueError, match=r"samples\[2\] is 3e38"):
        recognizer.accept_waveform(16000, np.array([0, 0.5, 3e38], dtype=np.float32))
    with pytest.raises(TypeError):
        recognizer.accept_waveform(16000, np.zeros((2, 160), dtype=np.float32))
    recognizer.accept_waveform(16000, np.zeros(160, dtype=np.float32))
    with pytest.raises(linrt.LinrtError, match="16000 Hz, not 8000 Hz"):
        recognizer.accept_waveform(8000, np.zeros(80, dtype=np.float32))
    with pytest.raises(linrt.LinrtError, match="sample rate"):
        linrt.Recognizer().accept_waveform(3, np.zeros(3, dtype=np.float32))


def test_the_gil_is_released_while_the_runtime_works():
    rate, samples = linrt.load_audio(SAMPLE)
    long = np.tile(samples, 4)  # 31 s: tens of milliseconds of work in one call
    recognizer = linrt.Recognizer()
    ticks, stop = [], threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.perf_counter())

    counter = threading.Thread(target=count)
    counter.start()
    time.sleep(0.02)
    entered = time.perf_counter()
    recognizer.accept_waveform(rate, long)
    left = time.perf_counter()
    stop.set()
    counter.join()
    assert left - entered > 0.02
    # Python's own switch interval is 5 ms: ticks well inside the call mean the other
    # thread ran while the recognizer worked.
    inside = [t for t in ticks if entered + 0.01 < t < left - 0.001]
    assert len(inside) > 100, f"{len(inside)} ticks in {left - entered:.3f} s"
