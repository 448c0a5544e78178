//! `linrt asr` end to end: the main job, files in every encoding, stdin, JSON and
//! stats, and the promise that bad input ends in one `error:` line, a non-zero exit
//! code, and everything decoded before the failure still printed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use linrt_tools::audio::resample::Resampler;
use linrt_tools::audio::wav::WavReader;
use linrt_tools::audio::AudioSource;

fn linrt(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_linrt"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let mut pipe = child.stdin.take().unwrap();
    let data = stdin.unwrap_or_default().to_vec();
    // Written from a thread: the child may stop reading early (that is one of the cases).
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    out
}

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/asr-commands/sample.wav")
}

fn sample() -> Vec<f32> {
    let mut wav = WavReader::new(fs::File::open(sample_path()).unwrap()).unwrap();
    let mut s = Vec::new();
    while wav.read(&mut s, 1 << 16).unwrap() > 0 {}
    s
}

/// The transcripts of a run's final lines (`[start – end] text`).
fn finals(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once("] ").map(|(_, t)| t.to_string()))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A WAV header for `data_bytes` of audio.
fn wav_header(format: u16, channels: u16, rate: u32, bits: u16, data_bytes: u32) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&format.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * block as u32).to_le_bytes());
    h.extend_from_slice(&block.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_bytes.to_le_bytes());
    h
}

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("linrt-asr-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.0.join(name);
        fs::write(&p, bytes).unwrap();
        p.to_string_lossy().into_owned()
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn cases() -> Vec<serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/asr-commands/golden/cases.json");
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// What the sample's three utterances say (models/asr-commands/golden/cases.json).
fn expected() -> Vec<String> {
    cases().iter().map(|c| c["reference"].as_str().unwrap().to_string()).collect()
}

/// The sample index at which utterance `i` of the sample ends.
fn utterance_end(i: usize) -> usize {
    cases()[i]["end"].as_u64().unwrap() as usize
}

#[test]
fn main_job_transcribes_the_bundled_sample_and_says_what_next() {
    let out = linrt(&["asr"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    // The bundled model lists its words: the beam decoder over them is the default.
    assert_eq!(finals(&out), expected());
    let err = stderr(&out);
    assert!(err.contains("Next:") && err.contains("--mic") && err.contains("linrt asr -"), "{err}");
}

#[test]
fn json_lines_carry_partials_finals_with_word_times_and_stats() {
    let path = sample_path();
    let out = linrt(&["asr", path.to_str().unwrap(), "--json", "--stats"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kind = |v: &serde_json::Value| v["type"].as_str().unwrap().to_string();
    assert!(lines.iter().any(|v| kind(v) == "partial"));
    let finals: Vec<&serde_json::Value> = lines.iter().filter(|v| kind(v) == "final").collect();
    let want = expected();
    assert_eq!(finals[0]["text"].as_str(), Some(want[0].as_str()));
    let words = finals[0]["words"].as_array().unwrap();
    let said: Vec<&str> = words.iter().map(|w| w["word"].as_str().unwrap()).collect();
    assert_eq!(said.join(" "), want[0]);
    // The beam decoder says how sure it is of each word.
    for w in words {
        let c = w["confidence"].as_f64().unwrap();
        assert!(c > 0.0 && c <= 1.0, "{w}");
    }
    let (s, e) = (finals[0]["start"].as_f64().unwrap(), finals[0]["end"].as_f64().unwrap());
    assert!(0.2 < s && s < e && e < 1.5, "{s}..{e}");
    let stats = lines.iter().find(|v| kind(v) == "stats").unwrap();
    let rtf = stats["rtf"].as_f64().unwrap();
    assert!(rtf > 0.0 && rtf < 1.0, "{rtf}");
    assert!(stats["chunk_latency_ms"]["p95"].as_f64().unwrap() > 0.0);
    assert!(stats["peak_memory_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn stdin_takes_raw_pcm_and_wav_streams() {
    let wav = fs::read(sample_path()).unwrap();
    let raw = &wav[44..];
    let out = linrt(&["asr", "-"], Some(raw));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(finals(&out), expected());
    let out = linrt(&["asr", "-"], Some(&wav));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(finals(&out), expected());
    // Float samples at 8 kHz, declared by flags.
    let mut r = Resampler::new(16000, 8000);
    let mut low = Vec::new();
    r.process(&sample(), &mut low);
    r.finish(&mut low);
    let bytes: Vec<u8> = low.iter().flat_map(|x| x.to_le_bytes()).collect();
    let out = linrt(&["asr", "-", "--format", "FLOAT_LE", "--rate", "8000"], Some(&bytes));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(finals(&out).len(), 3, "{:?}", finals(&out));
}

#[test]
fn any_rate_channels_and_encoding_give_the_same_transcripts() {
    let dir = Dir::new("formats");
    let audio = sample();
    let mut r = Resampler::new(16000, 44100);
    let mut high = Vec::new();
    r.process(&audio, &mut high);
    r.finish(&mut high);
    // 24-bit stereo at 44.1 kHz, the right channel a quieter copy.
    let mut data = Vec::new();
    for x in &high {
        for v in [*x, 0.5 * x] {
            let s = (v * 8_388_607.0).round().clamp(-8_388_608.0, 8_388_607.0) as i32;
            data.extend_from_slice(&s.to_le_bytes()[..3]);
        }
    }
    let mut file = wav_header(1, 2, 44100, 24, data.len() as u32);
    file.extend_from_slice(&data);
    let out = linrt(&["asr", &dir.write("s24.wav", &file)], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(finals(&out)[..2], expected()[..2]);
    // 8-bit unsigned mono at 16 kHz: coarse, but words still come out.
    let data: Vec<u8> = audio.iter().map(|x| ((x * 128.0).round() + 128.0).clamp(0.0, 255.0) as u8).collect();
    let mut file = wav_header(1, 1, 16000, 8, data.len() as u32);
    file.extend_from_slice(&data);
    let out = linrt(&["asr", &dir.write("u8.wav", &file)], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!finals(&out).is_empty());
}

/// A file of tools/tests/audio/ (the sample encoded by ffmpeg; see its README).
fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/audio").join(name).display().to_string()
}

#[test]
fn flac_ogg_mp3_and_m4a_files_and_streams_give_the_sample_transcripts() {
    for name in ["sample.flac", "sample.ogg", "sample.mp3", "sample.m4a"] {
        let out = linrt(&["asr", &fixture(name)], None);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(finals(&out), expected(), "{name}");
    }
    // Through a pipe: FLAC, Ogg and MP3 name themselves in their first bytes (MP4's
    // index usually comes last: it needs a file).
    for name in ["sample.flac", "sample.ogg", "sample.mp3"] {
        let out = linrt(&["asr", "-"], Some(&fs::read(fixture(name)).unwrap()));
        assert!(out.status.success(), "{name} on stdin: {}", stderr(&out));
        assert_eq!(finals(&out), expected(), "{name} on stdin");
    }
}

#[test]
fn compressed_files_that_cannot_be_read_say_why_in_one_line() {
    let dir = Dir::new("compressed");
    // Opus in Ogg: a codec symphonia does not decode names itself.
    assert_fails(&linrt(&["asr", &fixture("opus.ogg")], None), "Opus audio is not supported");
    assert_fails(&linrt(&["asr", &dir.write("notes.txt", b"hello, this is not audio")], None), "not an audio format");
    assert_fails(&linrt(&["asr", &dir.write("empty.mp3", b"")], None), "empty");
    // Cut files: the transcripts before the cut, then the error.
    for (name, needle) in [("sample.flac", "truncated FLAC"), ("sample.mp3", "truncated MP3")] {
        let bytes = fs::read(fixture(name)).unwrap();
        let out = linrt(&["asr", &dir.write(&format!("cut-{name}"), &bytes[..bytes.len() * 3 / 5])], None);
        assert_fails(&out, needle);
        assert_eq!(finals(&out), expected()[..2], "{name}: what was decoded before the cut");
    }
}

#[test]
fn realtime_paces_a_file_like_live_audio() {
    let dir = Dir::new("realtime");
    let wav = fs::read(sample_path()).unwrap();
    // The first utterance, its lead-in and 0.3 s after it.
    let samples = utterance_end(0) + 4800;
    let data = &wav[44..44 + 2 * samples];
    let mut file = wav_header(1, 1, 16000, 16, data.len() as u32);
    file.extend_from_slice(data);
    let path = dir.write("short.wav", &file);
    let started = std::time::Instant::now();
    let out = linrt(&["asr", &path, "--realtime"], None);
    let took = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(finals(&out), expected()[..1]);
    let seconds = samples as f64 / 16000.0;
    assert!(took >= seconds - 0.1, "{seconds:.2} s of audio went by in {took:.2} s");
}

/// One `error:` line naming the problem, a non-zero exit code.
fn assert_fails(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "succeeded: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_fails_cleanly_and_keeps_what_was_decoded() {
    let dir = Dir::new("bad");
    let wav = fs::read(sample_path()).unwrap();
    assert_fails(&linrt(&["asr", &dir.write("empty.wav", b"")], None), "empty");
    assert_fails(&linrt(&["asr", &dir.write("text.wav", b"hello, this is not audio")], None), "not a WAV");
    assert_fails(&linrt(&["asr", &dir.write("alaw.wav", &wav_header(6, 1, 8000, 8, 0))], None), "A-law");
    assert_fails(&linrt(&["asr", &dir.write("mono0.wav", &wav_header(1, 0, 16000, 16, 0))], None), "0 channels");
    assert_fails(&linrt(&["asr", &dir.write("rate.wav", &wav_header(1, 1, 3, 16, 0))], None), "sample rate");
    assert_fails(&linrt(&["asr", "/nonexistent/x.wav"], None), "cannot open");
    assert_fails(&linrt(&["asr", "-", "--format", "S99"], Some(b"\0\0")), "S16_LE");
    assert_fails(&linrt(&["asr", "--chunk-ms", "0"], None), "--chunk-ms");
    assert_fails(&linrt(&["asr", "--silence-after-speech", "0"], None), "--silence-after-speech");

    // Truncated after the second utterance: both transcripts, then the error.
    let after_second = utterance_end(1) + 1600;
    let cut = 44 + 2 * after_second;
    let out = linrt(&["asr", &dir.write("cut.wav", &wav[..cut])], None);
    assert_fails(&out, "truncated");
    assert_eq!(finals(&out), expected()[..2], "what was decoded before the failure");

    // A NaN in float audio: what came before it is transcribed, then the error.
    let mut floats: Vec<f32> = sample();
    floats.truncate(after_second);
    floats.push(f32::NAN);
    let data: Vec<u8> = floats.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut file = wav_header(3, 1, 16000, 32, data.len() as u32);
    file.extend_from_slice(&data);
    let out = linrt(&["asr", &dir.write("nan.wav", &file)], None);
    assert_fails(&out, "NaN");
    assert_eq!(finals(&out), expected()[..2], "decoded before the NaN");

    // stdin that stops mid-sample: the transcript, then the stray byte reported.
    let mut raw = wav[44..].to_vec();
    raw.push(7);
    let out = linrt(&["asr", "-"], Some(&raw));
    assert_fails(&out, "stray byte");
    assert_eq!(finals(&out)[..2], expected()[..2]);

    // A float sample far outside [-1, 1] (3e38, finite) is not audio: the first
    // utterance, before it, is transcribed; then one error line naming the sample
    // and exit 1, not a garbage transcript and exit 0.
    let mut floats = sample();
    floats[30_000] = 3e38;
    let data: Vec<u8> = floats.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut file = wav_header(3, 1, 16000, 32, data.len() as u32);
    file.extend_from_slice(&data);
    let out = linrt(&["asr", &dir.write("loud.wav", &file)], None);
    assert_fails(&out, "sample 30000 (at 1.875 s) is 3e38, outside [-1, 1]");
    assert_eq!(finals(&out), expected()[..1], "decoded before the bad sample");

    // Clipped audio is audio: no error.
    let loud: Vec<u8> =
        sample().iter().flat_map(|x| (((x * 8.0).clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes()).collect();
    let out = linrt(&["asr", "-"], Some(&loud));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A virtual ALSA capture device that plays `raw` (S16 mono): alsa-lib's `file`
/// plugin reading its `infile`, over a `null` slave, in a self-contained config.
#[cfg(feature = "mic")]
fn alsa_config(dir: &Dir, raw: &[u8]) -> String {
    alsa_config_copying_to(dir, raw, "/dev/null")
}

/// The same device, copying what it captures to `copy` (the `file` plugin's output):
/// once writing that copy fails, every read fails with EIO, as a device that is gone.
#[cfg(feature = "mic")]
fn alsa_config_copying_to(dir: &Dir, raw: &[u8], copy: &str) -> String {
    let infile = dir.write("capture.raw", raw);
    let config = format!(
        "pcm.linrt_test {{\n  type file\n  slave.pcm {{ type null }}\n  file \"{copy}\"\n  infile \"{infile}\"\n  format \"raw\"\n  hint {{ show on description \"linrt test capture\" }}\n}}\n"
    );
    dir.write("asound.conf", config.as_bytes())
}

/// A capture device that fails mid-stream: its copy goes to a FIFO whose reader
/// leaves after 6 s of audio. What was heard before is printed, then one error line,
/// exit code 1.
#[cfg(feature = "mic")]
#[test]
fn a_device_that_fails_mid_stream_ends_in_one_error_after_the_finals() {
    use std::io::Read;
    let dir = Dir::new("mic-gone");
    let fifo = dir.0.join("copy.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let wav = fs::read(sample_path()).unwrap();
    let config = alsa_config_copying_to(&dir, &wav[44..], fifo.to_str().unwrap());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut copy = fs::File::open(fifo).unwrap();
            let mut heard = vec![0u8; 6 * 16000 * 2];
            copy.read_exact(&mut heard).unwrap();
            // Dropping the reader breaks the pipe: alsa-lib's next write of the copy fails.
        })
    };
    let out = Command::new(env!("CARGO_BIN_EXE_linrt"))
        .args(["asr", "--mic", "--device", "linrt_test", "--duration", "60"])
        .env("ALSA_CONFIG_PATH", &config)
        .output()
        .unwrap();
    reader.join().unwrap();
    assert_fails(&out, "capture device linrt_test disappeared");
    assert_eq!(finals(&out)[..2], expected()[..2]);
}

#[cfg(feature = "mic")]
#[test]
fn microphone_path_transcribes_a_virtual_alsa_device() {
    let dir = Dir::new("mic");
    let wav = fs::read(sample_path()).unwrap();
    let config = alsa_config(&dir, &wav[44..]);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_linrt")).args(args).env("ALSA_CONFIG_PATH", &config).output().unwrap()
    };
    let list = run(&["asr", "--list-devices"]);
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(String::from_utf8_lossy(&list.stdout).contains("linrt_test"));
    // The device has no clock and plays silence after the file: stop after 9 s of audio.
    let out = run(&["asr", "--mic", "--device", "linrt_test", "--duration", "9"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("microphone linrt_test"), "{}", stderr(&out));
    assert_eq!(finals(&out)[..2], expected()[..2]);
    assert_fails(&run(&["asr", "--mic", "--device", "no_such_device"]), "no capture device named no_such_device");

    // Without --duration the device plays silence forever: Ctrl-C (SIGINT) ends the
    // stream like the end of a file, and what was heard is printed.
    let child = Command::new(env!("CARGO_BIN_EXE_linrt"))
        .args(["asr", "--mic", "--device", "linrt_test", "--realtime"])
        .env("ALSA_CONFIG_PATH", &config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(8000));
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(finals(&out)[..2], expected()[..2]);
}

#[test]
fn beam_and_greedy_decoders_with_words_grammars_and_hotwords() {
    let dir = Dir::new("decoders");
    let want = expected();
    let json_finals = |out: &Output| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["type"] == "final")
            .collect()
    };
    // Greedy stays available: any spelling, no confidences.
    let out = linrt(&["asr", "--decoder", "greedy", "--json"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let greedy = json_finals(&out);
    assert_eq!(greedy.len(), 3);
    assert!(greedy.iter().flat_map(|f| f["words"].as_array().unwrap()).all(|w| w.get("confidence").is_none()));

    // A word list of just the sample's words: the same commands, each word from it.
    let words = want.join("\n");
    let out = linrt(&["asr", "--words", &dir.write("words.txt", words.as_bytes()), "--beam", "4"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(finals(&out), want);

    // A grammar of the sample's commands gives them; one without the last can only
    // ever say the other two.
    let all = dir.write("all.txt", format!("# the sample\n{}\n", want.join("\n")).as_bytes());
    let out = linrt(&["asr", "--grammar", &all], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(finals(&out), want);
    let two = dir.write("two.txt", want[..2].join("\n").as_bytes());
    let out = linrt(&["asr", "--grammar", &two], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let f = finals(&out);
    assert!(f.len() >= 2 && f.iter().all(|t| want[..2].contains(t)), "{f:?}");

    // Hotwords parse and decode; the same result with a neutral weight.
    let hot = dir.write("hot.txt", format!("{} :0.0\n", want[0]).as_bytes());
    let out = linrt(&["asr", "--hotwords", &hot], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(finals(&out), want);

    // Bad lists: one line naming the file, line and column; exit code 1.
    let bad = |name: &str, text: &str| dir.write(name, text.as_bytes());
    assert_fails(&linrt(&["asr", "--words", &bad("w1.txt", "lights\nnext wörd\n")], None), "w1.txt:2:7:");
    assert_fails(&linrt(&["asr", "--words", &bad("w2.txt", "# nothing\n")], None), "holds no word");
    assert_fails(
        &linrt(&["asr", "--grammar", &bad("g1.txt", "set <unit>\n")], None),
        "g1.txt:1:5: this slot is not defined",
    );
    assert_fails(&linrt(&["asr", "--grammar", &bad("g2.txt", "<d> = one | | two\ncall <d>+\n")], None), "g2.txt:1:12:");
    assert_fails(&linrt(&["asr", "--grammar", &bad("g3.txt", "please?\n")], None), "would accept silence");
    assert_fails(&linrt(&["asr", "--hotwords", &bad("h1.txt", "lights :lots\n")], None), "h1.txt:1:8: a weight");
    let huge = format!("<d> = one | two\n{}", "call <d>+ <d>* <d>?\n".repeat(300));
    assert_fails(&linrt(&["asr", "--grammar", &bad("g4.txt", &huge)], None), "more grammar states than the 1024");
    assert_fails(&linrt(&["asr", "--words", "/nonexistent/words.txt"], None), "cannot read /nonexistent/words.txt");
    assert_fails(&linrt(&["asr", "--beam", "0"], None), "--beam must be between 1 and 256");
    assert_fails(&linrt(&["asr", "--decoder", "greedy", "--grammar", &all], None), "--grammar is for the beam decoder");
    assert_fails(&linrt(&["asr", "--hotword-weight", "inf"], None), "--hotword-weight");

    // The bundled model carries no word prior: leaving it out changes nothing;
    // greedy decoding has none to leave out.
    let out = linrt(&["asr", "--no-word-prior"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(finals(&out), want);
    assert_fails(
        &linrt(&["asr", "--decoder", "greedy", "--no-word-prior"], None),
        "--no-word-prior is for the beam decoder",
    );
}
