//! The C API from C: runtime/capi/example/example.c, compiled with `cc` against the
//! static library, runs the tiny model and the speech sample; its outputs must be
//! the Rust session's bit for bit and the Rust recognizer's transcripts.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use linrt::asr::{BufferedRecognizer, Event};
use linrt::carve::Carver;
use linrt::{Input, InputKind, ModelFile, Session, SessionOptions};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds liblinrt_capi.a (in a target directory of its own: this test runs while
/// cargo holds the workspace's) and links the example against it.
fn example() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.join("capi-target");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--locked", "-q", "-p", "linrt-capi", "--target-dir"])
        .arg(&target)
        .current_dir(root())
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build -p linrt-capi failed");
    let exe = tmp.join("linrt-example");
    let capi = root().join("runtime/capi");
    let status = Command::new("cc")
        .args(["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(capi.join("include"))
        .arg(capi.join("example/example.c"))
        .arg(target.join("debug/liblinrt_capi.a"))
        .args(["-lm", "-lpthread", "-ldl", "-o"])
        .arg(&exe)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed to build the C example");
    exe
}

fn run(exe: &Path, args: &[&Path]) -> String {
    let mut cmd = Command::new(exe);
    for a in args {
        cmd.arg(a);
    }
    let out = cmd.output().expect("run the C example");
    assert!(out.status.success(), "the C example failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// What example.c's `input_value` computes (for a vector model; a token model's
/// token is `(t · 31 + 7) mod vocabulary`).
fn input_value(t: usize, i: usize) -> f32 {
    ((t * 31 + i * 17) % 97) as f32 / 48.5 - 1.0
}

fn bits_line(tag: &str, t: usize, y: &[f32]) -> String {
    let mut line = format!("{tag} {t}");
    for v in y {
        line += &format!(" {:08x}", v.to_bits());
    }
    line
}

#[test]
fn the_c_example_steps_the_tiny_model_bit_for_bit_and_recognizes_the_sample() {
    let exe = example();

    // The tiny model: 8 steps, then the second half again from the saved state.
    let tiny = common::model_file("tiny", "f32");
    let out = run(&exe, &[Path::new("steps"), &tiny, Path::new("8")]);
    let file = ModelFile::open(&tiny).expect("tiny model");
    let model = file.model().expect("tiny model");
    let cfg = *model.config();
    let mut arena = vec![0u32; model.arena_bytes(SessionOptions::default()).unwrap().div_ceil(4)];
    let mut session =
        Session::new(&model, bytemuck::cast_slice_mut(&mut arena), SessionOptions::default()).expect("session");
    let (width, dim) = (cfg.input_width(), cfg.output_dim());
    let mut expected = Vec::new();
    let mut y = vec![0f32; dim];
    for t in 0..8 {
        let x: Vec<f32> = (0..width).map(|i| input_value(t, i)).collect();
        let input = match cfg.input_kind {
            InputKind::Tokens => Input::Token(((t * 31 + 7) % cfg.input_dim as usize) as u32),
            InputKind::Vectors => Input::Vector(&x),
        };
        session.step(input, &mut y).expect("step");
        expected.push(bits_line("step", t, &y));
    }
    for t in 4..8 {
        expected.push(expected[t].replacen("step", "again", 1));
    }
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 13, "{out}");
    for (got, want) in lines.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    assert!(lines[12].starts_with("wrong length: bad input ("), "{}", lines[12]);

    // The speech sample through the recognizer, 10 ms at a time, as example.c feeds it.
    let speech = common::models().join("asr-commands");
    let int8 = speech.join("asr-commands.int8.lrt");
    let wav = speech.join("sample.wav");
    let out = run(&exe, &[Path::new("asr"), &int8, &wav]);
    let file = ModelFile::open(&int8).expect("speech model");
    let model = file.model().expect("speech model");
    let setup = BufferedRecognizer::default();
    // Exactly what `bytes` asks for, from an odd address: the bound holds at any alignment.
    let bytes = setup.bytes(&model).unwrap();
    let mut memory = vec![0u8; bytes + 1];
    let mut carver = Carver::new(&mut memory[1..]);
    let mut recognizer = setup.build(&model, &mut carver).expect("recognizer");
    let wav_bytes = std::fs::read(&wav).unwrap();
    let samples: Vec<f32> =
        wav_bytes[44..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0).collect();
    let mut finals = String::new();
    let mut on_event = |e: Event| {
        if let Event::Final(u) = e {
            finals += &format!("[{:8.2} – {:8.2}] {}\n", u.start, u.end, u.text);
        }
    };
    for chunk in samples.chunks(160) {
        recognizer.accept(chunk, &mut on_event).unwrap();
    }
    recognizer.finish(&mut on_event).unwrap();
    assert_eq!(finals.lines().count(), 3, "{finals}");
    assert_eq!(out, finals);
}
