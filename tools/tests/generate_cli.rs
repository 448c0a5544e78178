//! `linrt generate` end to end: a PNG grid of digits that repeats with its seed, the
//! copy model copying its prompt, and typed errors for bad requests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn linrt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linrt")).args(args).output().expect("binary runs")
}

fn model(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(name).to_string_lossy().into_owned()
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("linrt-generate-{}-{name}", std::process::id()))
}

/// (width, height, pixels) of a grayscale PNG.
fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn digits_grid_is_a_png_that_repeats_with_its_seed() {
    let digits = model("digits-gen/digits-gen.int8.lrt");
    let (a, b, c) = (temp("a.png"), temp("b.png"), temp("c.png"));
    for (path, seed) in [(&a, "1"), (&b, "1"), (&c, "2")] {
        let out = linrt(&["generate", "--model", &digits, "--out", path.to_str().unwrap(), "--seed", seed]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let (w, h, pixels) = read_png(&a);
    // 10 classes × 4 images of 8×8 pixels, each scaled 4× with 2-pixel gaps.
    assert_eq!((w, h), (10 * 34 + 2, 4 * 34 + 2));
    assert!(pixels.iter().any(|p| *p < 64), "some ink");
    assert_eq!(read_png(&b).2, pixels, "same seed, same images");
    assert_ne!(read_png(&c).2, pixels, "another seed, other images");
    let one = temp("one.png");
    let out = linrt(&["generate", "--model", &digits, "--out", one.to_str().unwrap(), "--class", "3", "--count", "2"]);
    assert!(out.status.success());
    assert_eq!(read_png(&one).0, 34 + 2);
    for p in [a, b, c, one] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn copy_model_copies_its_prompt_with_any_prefill_chunk() {
    let copy = model("copy/copy.f32.lrt");
    for chunk in ["12", "1", "5"] {
        let out =
            linrt(&["generate", "--model", &copy, "--prompt", "|3141592653|", "--greedy", "--prefill-chunk", chunk]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3141592653", "prefill chunks of {chunk}");
    }
    let out = linrt(&["generate", "--model", &copy, "--tokens", "10,1,2,3,10", "--greedy", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["text"], "123");
}

fn assert_fails(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error:") && err.contains(needle), "{err:?} lacks {needle:?}");
}

#[test]
fn bad_requests_are_one_line_errors() {
    let copy = model("copy/copy.f32.lrt");
    let digits = model("digits-gen/digits-gen.int8.lrt");
    assert_fails(&linrt(&["generate", "--model", &copy, "--prompt", "|12a|"]), "not in the model's vocabulary");
    assert_fails(&linrt(&["generate", "--model", &copy, "--tokens", "1,99"]), "out of range");
    assert_fails(&linrt(&["generate", "--model", &copy, "--tokens", "1,x"]), "not a token id");
    assert_fails(&linrt(&["generate", "--model", &copy, "--prompt", "|1|", "--prefill-chunk", "0"]), "at least 1");
    assert_fails(&linrt(&["generate", "--model", &copy]), "empty prompt");
    assert_fails(&linrt(&["generate", "--model", &copy, "--prompt", "|1|", "--steps", "1000000000000"]), "--steps");
    assert_fails(&linrt(&["generate", "--model", &copy, "--prompt", "|1|", "--steps", "0"]), "--steps");
    // A prefill chunk larger than the prompt is simply the whole prompt.
    let out = linrt(&["generate", "--model", &copy, "--prompt", "|12|", "--greedy", "--prefill-chunk", "99999999"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_fails(&linrt(&["generate", "--model", &copy, "--prompt", "|1|", "--top-p", "0"]), "top_p");
    assert_fails(&linrt(&["generate", "--model", &copy, "--prompt", "|1|", "--temperature", "0"]), "temperature");
    assert_fails(&linrt(&["generate", "--model", &digits]), "--out");
    assert_fails(&linrt(&["generate", "--model", &digits, "--out", "/tmp/x.png", "--class", "10"]), "classes 0 to 9");
    let asr = model("asr-commands/asr-commands.int8.lrt");
    assert_fails(&linrt(&["generate", "--model", &asr, "--tokens", "1"]), "takes vectors");
}
