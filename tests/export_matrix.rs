//! The export matrix (models/export_matrix.py): the same two models exported the ways
//! PyTorch users export them, with torch.onnx.export's defaults and no linrt
//! metadata: TorchScript opsets 14 to 23 and dynamo 18 to 28, step and sequence form,
//! fixed and dynamic lengths, f16 weights, external data. Every cell converts to f32,
//! f16 and int8, and matches fast-transformers over 512 steps: f32 within 1e-5 of the
//! output scale at every step, f16 within 2e-3, int8 with a cosine of 0.999 or more
//! at every step. The fixtures are gzip'd; CI never needs Python.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use linrt::{DType, ModelFile};
use linrt_tools::compare::{distance, min_cosine};
use linrt_tools::npy::{self, NpyData};
use linrt_tools::onnx::convert::{convert_file, ConvertOptions};
use linrt_tools::run::{read_inputs, run_model};

fn matrix() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/matrix")
}

struct Cell {
    name: String,
    model: String,
    form: String,
    external: bool,
}

fn cells() -> Vec<Cell> {
    let text = fs::read_to_string(matrix().join("cells.json")).unwrap();
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| Cell {
            name: r["name"].as_str().unwrap().to_string(),
            model: r["model"].as_str().unwrap().to_string(),
            form: r["form"].as_str().unwrap().to_string(),
            external: r["external_data"].as_bool().unwrap(),
        })
        .collect()
}

fn gunzip(from: &Path, to: &Path) {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(from).unwrap()).read_to_end(&mut raw).unwrap();
    fs::write(to, raw).unwrap();
}

fn floats(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = npy::read(path).unwrap();
    match a.data {
        NpyData::F32(v) => (a.shape, v),
        NpyData::I64(_) => panic!("{} holds integers", path.display()),
    }
}

/// Worst step of `got` against `want`, relative to the reference's output scale.
fn worst_step(got: &[f32], want: &[f32], width: usize) -> f32 {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    got.chunks_exact(width)
        .zip(want.chunks_exact(width))
        .map(|(g, w)| distance(g, w).max_abs / scale)
        .fold(0.0, f32::max)
}

#[test]
fn every_cell_converts_and_matches_fast_transformers() {
    let dir = std::env::temp_dir().join(format!("linrt-matrix-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let cells = cells();
    assert!(cells.len() >= 20, "the matrix has {} cells", cells.len());
    let mut failures = Vec::new();
    for cell in &cells {
        let onnx = dir.join(format!("{}.onnx", cell.name));
        gunzip(&matrix().join(format!("{}.onnx.gz", cell.name)), &onnx);
        if cell.external {
            let data = format!("{}.onnx.data", cell.name);
            gunzip(&matrix().join(format!("{data}.gz")), &dir.join(data));
        }
        let (shape, reference) = floats(&matrix().join(format!("{}.reference.npy", cell.model)));
        let width = shape[1];
        let mut line = format!("{:36}", cell.name);
        for dtype in [DType::F32, DType::F16, DType::I8] {
            let lrt = dir.join(format!("{}.{}.lrt", cell.name, dtype.name()));
            if let Err(e) = convert_file(&onnx, &lrt, &ConvertOptions::for_dtype(dtype), &mut |_| {}) {
                failures.push(format!("{} {}: {e:#}", cell.name, dtype.name()));
                continue;
            }
            let file = ModelFile::open(&lrt).unwrap();
            let model = file.model().unwrap();
            let inputs = read_inputs(&matrix().join(format!("{}.input.npy", cell.model)), &model).unwrap();
            // Stepping, and for sequence-form cells also the causal form in chunks.
            let mut outputs = vec![run_model(&model, &inputs, 1, None).unwrap()];
            if cell.form == "sequence" {
                outputs.push(run_model(&model, &inputs, 64, None).unwrap());
            }
            for got in &outputs {
                assert_eq!(got.len(), reference.len(), "{}: output size", cell.name);
                let (ok, figure) = match dtype {
                    DType::F32 => {
                        let e = worst_step(got, &reference, width);
                        (e <= 1e-5, format!("f32 {e:.1e}"))
                    }
                    DType::F16 => {
                        let e = worst_step(got, &reference, width);
                        (e <= 2e-3, format!("f16 {e:.1e}"))
                    }
                    DType::I8 => {
                        let c = min_cosine(got, &reference, width);
                        (c >= 0.999, format!("int8 cos {c:.5}"))
                    }
                };
                if !ok {
                    failures.push(format!("{} {}: {figure}", cell.name, dtype.name()));
                }
                if std::ptr::eq(got, &outputs[0]) {
                    line.push_str(&format!("  {figure:>16}"));
                }
            }
        }
        eprintln!("{line}");
    }
    let _ = fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
