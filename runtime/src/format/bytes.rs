//! Bounds-checked little-endian field access; a short buffer is an error, not a panic.

use crate::error::Error;

/// Borrows `len` bytes at `offset`, or says which structure was cut short.
pub(crate) fn slice<'a>(buf: &'a [u8], offset: u64, len: u64, what: &'static str) -> Result<&'a [u8], Error> {
    let oob = Error::OutOfBounds { what, offset, len };
    let end = offset.checked_add(len).ok_or(oob)?;
    if end > buf.len() as u64 {
        return Err(oob);
    }
    // Both fit in buf.len(), so they fit in usize.
    Ok(&buf[offset as usize..end as usize])
}

pub(crate) fn u8_at(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = b.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

// The record readers below are only called on slices whose length was checked
// against the fixed record size first; a short slice reads zeros, never panics.
pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(array(b, at))
}
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array(b, at))
}
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(array(b, at))
}
pub(crate) fn f32_at(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes(array(b, at))
}
