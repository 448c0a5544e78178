//! What several workspace tests share.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use linrt_tools::onnx::convert::{convert_file, ConvertOptions};

pub fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// A shipped model's file of `dtype`. The speech model's f32 file is not committed
/// (its ONNX is, and the int8 file the binary carries; models/ stays small): it is
/// converted from the ONNX once, into the target directory, as `linrt convert` would.
pub fn model_file(name: &str, dtype: &str) -> PathBuf {
    let shipped = models().join(name).join(format!("{name}.{dtype}.lrt"));
    if shipped.exists() {
        return shipped;
    }
    static CONVERTING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = CONVERTING.lock().unwrap_or_else(|e| e.into_inner());
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.{dtype}.lrt"));
    let onnx = models().join(name).join(format!("{name}.onnx"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if !out.exists() || modified(&out) < modified(&onnx) {
        assert_eq!(dtype, "f32", "{name}: only the f32 file is converted at test time");
        convert_file(&onnx, &out, &ConvertOptions::default(), &mut |_| {})
            .unwrap_or_else(|e| panic!("converting {}: {e:#}", onnx.display()));
    }
    out
}
