//! Minimal `.npy` (NumPy array file) reading and writing: C-order, little-endian,
//! float16/float32/float64 (read as f32) and int32/int64. Enough for `linrt run`
//! inputs and outputs.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// An array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

const MAGIC: &[u8] = b"\x93NUMPY";

pub fn read(path: &Path) -> Result<NpyArray> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{} is not a usable .npy file", path.display()))
}

pub fn parse(bytes: &[u8]) -> Result<NpyArray> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        bail!("missing the \\x93NUMPY magic");
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => bail!("unsupported .npy version {v}"),
    };
    let end = start.checked_add(header_len).filter(|&e| e <= bytes.len()).context("header runs past the end")?;
    let header = std::str::from_utf8(&bytes[start..end]).context("header is not text")?;
    let descr = dict_value(header, "descr").context("header has no 'descr'")?;
    let fortran = dict_value(header, "fortran_order").context("header has no 'fortran_order'")?;
    if fortran.starts_with("True") {
        bail!("Fortran-ordered arrays are not supported; save with np.ascontiguousarray");
    }
    let shape_text = dict_value(header, "shape").context("header has no 'shape'")?;
    let shape = parse_shape(shape_text)?;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).context("shape overflows")?;
    let body = &bytes[end..];
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let width = match descr {
        "<f2" => 2,
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        other => {
            bail!("unsupported dtype {other} (use float16, float32, float64, int32 or int64, little-endian)")
        }
    };
    let expected = count.checked_mul(width).context("shape overflows")?;
    if body.len() != expected {
        bail!("data holds {} bytes, shape {:?} of {descr} needs {expected}", body.len(), shape);
    }
    let words = body.chunks_exact(width);
    let data = match descr {
        "<f2" => NpyData::F32(words.map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()),
        "<f4" => NpyData::F32(words.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        "<f8" => NpyData::F32(words.map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect()),
        "<i4" => NpyData::I64(words.map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect()),
        _ => NpyData::I64(words.map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()),
    };
    Ok(NpyArray { shape, data })
}

/// The text after `'key':` up to the next top-level comma or closing brace.
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    if rest.starts_with('(') {
        return rest.find(')').map(|e| &rest[..=e]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

fn parse_shape(text: &str) -> Result<Vec<usize>> {
    let inner = text.trim().trim_start_matches('(').trim_end_matches(')');
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().with_context(|| format!("bad dimension {s:?} in shape")))
        .collect()
}

/// Writes a float32 array of `shape` to `path`.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad so the data starts on a 64-byte boundary, header ending in '\n'.
    let total = (10 + header.len() + 1).next_multiple_of(64);
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let mut out = Vec::with_capacity(total + data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_f32() {
        let dir = std::env::temp_dir().join(format!("linrt-npy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.npy");
        write_f32(&path, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let a = read(&path).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, NpyData::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reads_float16_as_f32() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&[1, 0]);
        let header = "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }\n";
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in [1.5f32, -2.0, 65504.0] {
            bytes.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
        assert_eq!(parse(&bytes).unwrap().data, NpyData::F32(vec![1.5, -2.0, 65504.0]));
    }

    #[test]
    fn rejects_garbage_and_short_data() {
        assert!(parse(b"hello").is_err());
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&[1, 0]);
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n";
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0; 8]);
        let err = parse(&bytes).unwrap_err().to_string();
        assert!(err.contains("needs 16"), "{err}");
    }
}
