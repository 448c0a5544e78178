//! The `linrt` binary end to end: convert, inspect, verify, run, and the promise that
//! bad input ends in one `error:` line and a non-zero exit code.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use linrt_tools::npy::{self, NpyData};

fn linrt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linrt")).args(args).output().expect("binary runs")
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path).to_string_lossy().into_owned()
}

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("linrt-cli-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Asserts a failure: the given exit code and exactly one line on stderr.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(lines[0].contains(needle), "expected {needle:?} in {:?}", lines[0]);
    assert!(!err.contains("panicked"), "{err}");
}

fn write_i64_npy(path: &str, values: &[i64]) {
    let header = format!("{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}", values.len());
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let padded = format!("{header:<width$}\n", width = (10 + header.len() + 1).next_multiple_of(64) - 11);
    bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    bytes.extend_from_slice(padded.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    fs::write(path, bytes).unwrap();
}

fn converted(dir: &Dir) -> String {
    let lrt = dir.file("tiny.lrt");
    let out = linrt(&["convert", &repo("models/tiny/tiny.onnx"), "-o", &lrt]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    lrt
}

fn floats(path: &str) -> Vec<f32> {
    match npy::read(Path::new(path)).unwrap().data {
        NpyData::F32(v) => v,
        NpyData::I64(_) => panic!("ints"),
    }
}

#[test]
fn convert_inspect_run_verify() {
    let dir = Dir::new("main");
    let lrt = dir.file("tiny.lrt");
    let out = linrt(&["convert", &repo("models/tiny/tiny.onnx"), "-o", &lrt]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("verification: linrt vs tract, step form"), "{stdout}");
    assert!(stdout.contains("wrote"), "{stdout}");

    let out = linrt(&["inspect", &lrt]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("d_model 64, 2 layers, 4 heads"), "{text}");
    assert!(text.contains("token ids, vocabulary 50"), "{text}");
    assert!(text.contains("source.sha256"), "{text}");

    let out = linrt(&["inspect", &lrt, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config"]["n_heads"], 4);
    assert_eq!(v["metadata"]["quantization"], "f32");
    assert_eq!(v["state_floats"], 2 * 4 * 16 * 17);

    for chunk in ["1", "16"] {
        let y = dir.file(&format!("y{chunk}.npy"));
        let out = linrt(&["run", &lrt, "--input", &repo("models/tiny/sample.npy"), "--output", &y, "--chunk", chunk]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got = floats(&y);
        let want = floats(&repo("models/tiny/reference.npy"));
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        assert_eq!(got.len(), want.len());
        assert!(err < 1e-5, "chunk {chunk}: {err}");
    }

    let out = linrt(&["verify", &lrt, &repo("models/tiny/tiny.onnx"), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], true);

    let out = linrt(&["info"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("format       .lrt 1.2"));
}

#[test]
fn bad_model_files() {
    let dir = Dir::new("badmodel");
    assert_fails(&linrt(&["inspect", &dir.file("nope.lrt")]), 1, "cannot open");
    let garbage = dir.file("garbage.lrt");
    fs::write(&garbage, b"this is not a model at all, just some text that is long enough to be a header").unwrap();
    assert_fails(&linrt(&["inspect", &garbage]), 1, "bad magic");
    let empty = dir.file("empty.lrt");
    fs::write(&empty, b"").unwrap();
    assert_fails(&linrt(&["inspect", &empty]), 1, "truncated");

    let lrt = converted(&dir);
    let bytes = fs::read(&lrt).unwrap();
    let cut = dir.file("cut.lrt");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(&linrt(&["inspect", &cut]), 1, "file size mismatch");
    let mut flipped = bytes.clone();
    let at = bytes.len() - 100;
    flipped[at] ^= 0x40;
    let bad = dir.file("flipped.lrt");
    fs::write(&bad, &flipped).unwrap();
    assert_fails(
        &linrt(&["run", &bad, "--input", &repo("models/tiny/sample.npy"), "--output", &dir.file("y.npy")]),
        1,
        "checksum mismatch",
    );
    assert!(!Path::new(&dir.file("y.npy")).exists());

    // An ONNX file handed to a command that runs .lrt models: say to convert it.
    let onnx = repo("models/tiny/tiny.onnx");
    let convert_first = "is an ONNX file, not a .lrt model: convert it first (linrt convert";
    assert_fails(
        &linrt(&["run", &onnx, "--input", &repo("models/tiny/sample.npy"), "--output", &dir.file("y.npy")]),
        1,
        convert_first,
    );
    assert_fails(&linrt(&["inspect", &onnx]), 1, convert_first);
    assert_fails(&linrt(&["bench", &onnx]), 1, convert_first);
    assert_fails(&linrt(&["asr", "--model", &onnx]), 1, convert_first);
}

#[test]
fn bad_run_inputs() {
    let dir = Dir::new("badinput");
    let lrt = converted(&dir);
    let y = dir.file("y.npy");
    let ids = dir.file("ids.npy");
    write_i64_npy(&ids, &[1, 2, 50]);
    assert_fails(
        &linrt(&["run", &lrt, "--input", &ids, "--output", &y]),
        1,
        "token id 50 at position 2 is outside the vocabulary",
    );
    write_i64_npy(&ids, &[1, -3]);
    assert_fails(&linrt(&["run", &lrt, "--input", &ids, "--output", &y]), 1, "token id -3");
    write_i64_npy(&ids, &[]);
    assert_fails(&linrt(&["run", &lrt, "--input", &ids, "--output", &y]), 1, "no positions");
    let floats = dir.file("f.npy");
    npy::write_f32(Path::new(&floats), &[2, 64], &[0.0; 128]).unwrap();
    assert_fails(&linrt(&["run", &lrt, "--input", &floats, "--output", &y]), 1, "takes integer token ids");
    let text = dir.file("t.npy");
    fs::write(&text, "1,2,3").unwrap();
    assert_fails(&linrt(&["run", &lrt, "--input", &text, "--output", &y]), 1, "not a usable .npy file");
    assert_fails(&linrt(&["run", &lrt, "--input", &dir.file("missing.npy"), "--output", &y]), 1, "cannot read");
    assert_fails(
        &linrt(&["run", &lrt, "--input", &repo("models/tiny/sample.npy"), "--output", &y, "--chunk", "0"]),
        1,
        "--chunk must be at least 1",
    );
    assert!(!Path::new(&y).exists());
}

#[test]
fn bad_convert_calls() {
    let dir = Dir::new("badconvert");
    let out = dir.file("x.lrt");
    assert_fails(&linrt(&["convert", &dir.file("none.onnx"), "-o", &out]), 1, "cannot read");
    assert_fails(
        &linrt(&["convert", &repo("models/tiny/tiny.onnx"), "-o", &out, "--activation", "swish"]),
        1,
        "unknown activation",
    );
    assert_fails(
        &linrt(&["convert", &repo("models/tiny/tiny.onnx"), "-o", &out, "--n-heads", "8"]),
        1,
        "contradictory n_heads",
    );
    assert_fails(
        &linrt(&["convert", &repo("models/tiny/tiny.onnx"), "-o", &dir.file("no/such/dir/x.lrt")]),
        1,
        "cannot write",
    );
    // int8 rounding that misses only the cosine bar is called that, with what to try.
    let asr = repo("models/asr-commands/asr-commands.onnx");
    let strict = ["convert", &asr, "-o", &out, "--dtype", "int8", "--min-cosine", "0.99999"];
    let rounding = linrt(&strict);
    assert_fails(&rounding, 1, "int8 rounding moves these further than allowed: a smaller --int8-block");
    assert!(String::from_utf8_lossy(&rounding.stderr).contains("min cosine 0.99999)"));
    assert!(!Path::new(&out).exists());
    // Verification of a model against an ONNX of another model fails loudly.
    let lrt = converted(&dir);
    assert_fails(&linrt(&["verify", &lrt, &repo("tests/golden/cases/micro.step.onnx")]), 1, "");
    // Usage errors are clap's: exit code 2.
    assert_eq!(linrt(&[]).status.code(), Some(2));
    assert_eq!(linrt(&["convert"]).status.code(), Some(2));
}

#[test]
fn run_checks_expected_outputs() {
    let dir = Dir::new("expect");
    let lrt = converted(&dir);
    let y = dir.file("y.npy");
    let sample = repo("models/tiny/sample.npy");
    let out = linrt(&["run", &lrt, "--input", &sample, "--output", &y, "--expect", &repo("models/tiny/reference.npy")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("of the expected output scale"));
    // Against outputs that are not this model's, the run fails.
    let wrong = dir.file("wrong.npy");
    npy::write_f32(Path::new(&wrong), &[64, 50], &vec![0.5; 64 * 50]).unwrap();
    assert_fails(&linrt(&["run", &lrt, "--input", &sample, "--output", &y, "--expect", &wrong]), 1, "above tolerance");
    npy::write_f32(Path::new(&wrong), &[3, 50], &[0.5; 150]).unwrap();
    assert_fails(&linrt(&["run", &lrt, "--input", &sample, "--output", &y, "--expect", &wrong]), 1, "shape [3, 50]");
}

#[test]
fn kernel_paths_can_be_forced_and_agree() {
    let dir = Dir::new("kernels");
    let lrt = converted(&dir);
    let out = linrt(&["info", "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<String> =
        info["kernel_paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    assert!(paths.contains(&"scalar".to_string()));
    assert_eq!(info["kernels"], paths.last().unwrap().as_str(), "the fastest path is chosen");
    let sample = repo("models/tiny/sample.npy");
    let reference = repo("models/tiny/reference.npy");
    for path in &paths {
        let y = dir.file(&format!("y-{path}.npy"));
        let out = linrt(&["run", &lrt, "--input", &sample, "--output", &y, "--kernels", path, "--expect", &reference]);
        assert!(out.status.success(), "{path}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let y = dir.file("y.npy");
    assert_fails(
        &linrt(&["run", &lrt, "--input", &sample, "--output", &y, "--kernels", "sse9"]),
        1,
        "unknown kernel path",
    );
    // The environment variable does the same as the flag.
    let out = Command::new(env!("CARGO_BIN_EXE_linrt")).args(["info"]).env("LINRT_KERNELS", "scalar").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("kernels      scalar"));
    if !paths.contains(&"avx512".to_string()) && cfg!(target_arch = "x86_64") {
        assert_fails(
            &linrt(&["run", &lrt, "--input", &sample, "--output", &y, "--kernels", "avx512"]),
            1,
            "not supported by this CPU",
        );
    }
}

/// A model whose weights are all finite but near f32's limit: `linrt run` used to
/// write NaN outputs and exit 0. Now the step that overflowed is named, exit 1, and
/// no output file is left. (issue 19)
#[test]
fn an_overflowing_model_fails_instead_of_writing_nan() {
    use linrt::format::{expected_tensor, tensor_count};
    use linrt::{InputKind, LrtWriter, ModelConfig, OutputKind};
    let dir = Dir::new("overflow");
    let mut cfg = ModelConfig::new(8, 2, 2, 16);
    cfg.input_kind = InputKind::Tokens;
    cfg.input_dim = 5;
    cfg.output_kind = OutputKind::Linear;
    cfg.output_dim = 3;
    let mut w = LrtWriter::new(cfg);
    for i in 0..tensor_count(&cfg) {
        let spec = expected_tensor(&cfg, i).unwrap();
        let n = spec.dims[0] as usize * spec.dims[1] as usize;
        w.tensor(spec.role, spec.layer, (0..n).map(|j| if j % 3 == 0 { -1.7e38 } else { 1.7e38 }).collect());
    }
    let lrt = dir.file("huge.lrt");
    fs::write(&lrt, w.to_bytes().unwrap()).unwrap();
    let ids = dir.file("ids.npy");
    write_i64_npy(&ids, &[1, 2, 3]);
    let y = dir.file("y.npy");
    for chunk in ["1", "3"] {
        assert_fails(
            &linrt(&["run", &lrt, "--input", &ids, "--output", &y, "--chunk", chunk]),
            1,
            "the step at position 0 produced NaN or infinite values",
        );
        assert!(!Path::new(&y).exists(), "no output is written");
    }
}

/// `--device cuda` where there is no GPU (here and in CI), whether or not linrt was
/// built with CUDA: one line saying why, exit 1, nothing written. A GPU machine runs
/// runtime/cuda/device-check instead.
#[test]
fn cuda_without_a_gpu_is_one_error_line() {
    let dir = Dir::new("cuda");
    let (y, ids) = (dir.file("y.npy"), dir.file("ids.npy"));
    write_i64_npy(&ids, &[1, 2, 3]);
    let model = repo("models/copy/copy.int8.lrt");
    let has_gpu = linrt(&["info"]).stdout.windows(5).any(|w| w == b"cuda:");
    if has_gpu {
        eprintln!("a CUDA device is present: this test is for machines without one");
        return;
    }
    assert_fails(&linrt(&["run", &model, "--input", &ids, "--output", &y, "--device", "cuda"]), 1, "--device cuda:0: ");
    assert_fails(&linrt(&["bench", &model, "--device", "cuda:1"]), 1, "--device cuda:1: ");
    assert_fails(
        &linrt(&["generate", "--model", &model, "--tokens", "1,2", "--device", "cuda"]),
        1,
        "--device cuda:0: ",
    );
    assert_fails(
        &linrt(&["run", &model, "--input", &ids, "--output", &y, "--device", "gpu"]),
        1,
        "expected cpu, cuda or cuda:N",
    );
    assert!(!Path::new(&y).exists());
    let out = linrt(&["run", &model, "--input", &ids, "--output", &y, "--device", "cpu"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info = String::from_utf8_lossy(&linrt(&["info"]).stdout).into_owned();
    let line = info.lines().find(|l| l.starts_with("cuda")).unwrap_or_else(|| panic!("no cuda line in {info}"));
    assert!(line.contains("not built") || line.contains("no CUDA driver"), "{line}");
}
