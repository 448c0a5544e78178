//! A model read from the caller's bytes (a `.lrt` file in flash, a mapped file, a
//! buffer): validated once, then borrowed by everything made from it.

use core::ffi::c_void;

use linrt::{InputKind, Model};

use crate::{guard, input, place, room, shared, write, LinrtStatus};

/// A validated model (opaque; lives in the caller's `LINRT_MODEL_BYTES`).
pub struct LinrtModel {
    pub(crate) model: Model<'static>,
}

/// Bytes of storage a model handle needs (any alignment).
pub const LINRT_MODEL_BYTES: usize = 512;
const _: () = assert!(room::<LinrtModel>() <= LINRT_MODEL_BYTES);

/// Reads the `.lrt` file in `bytes` (`len` bytes, 64-byte aligned, kept unchanged
/// while the model is used) into a handle in `storage` (`storage_len` ≥
/// `LINRT_MODEL_BYTES`); `*out` points to it.
///
/// # Safety
/// `bytes` points to `len` readable bytes and `storage` to `storage_len` writable
/// bytes, both valid for as long as the model and what is made from it are used.
#[no_mangle]
pub unsafe extern "C" fn linrt_model_open(
    bytes: *const u8,
    len: usize,
    storage: *mut c_void,
    storage_len: usize,
    out: *mut *mut LinrtModel,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise: the bytes outlive every use of the model.
        let bytes: &'static [u8] = unsafe { input(bytes, len)? };
        let model = Model::from_bytes(bytes).map_err(|e| LinrtStatus::of(&e))?;
        // SAFETY: the caller's promise about storage and out.
        unsafe {
            let handle = place(storage, storage_len, LinrtModel { model })?;
            write(out, handle)
        }
    })
}

/// How a model takes its input.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinrtInputKind {
    /// One token id per position (`linrt_session_step_token`).
    Tokens = 0,
    /// `input_width` floats per position (`linrt_session_step_vector`).
    Vectors = 1,
}

/// What a caller needs to size inputs and outputs.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinrtModelInfo {
    pub input_kind: LinrtInputKind,
    /// Floats per position for a vector model; the vocabulary size for a token model.
    pub input_width: usize,
    /// Floats each position outputs.
    pub output_dim: usize,
    pub layers: u32,
    pub d_model: u32,
    /// The CRC-32 the file's header carries (state blobs are tagged with it).
    pub checksum: u32,
}

/// The model's shapes.
///
/// # Safety
/// `model` comes from `linrt_model_open`; `out` points to a writable `LinrtModelInfo`.
#[no_mangle]
pub unsafe extern "C" fn linrt_model_info(model: *const LinrtModel, out: *mut LinrtModelInfo) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise (read only).
        let m = unsafe { shared(model)? };
        let cfg = m.model.config();
        let info = LinrtModelInfo {
            input_kind: match cfg.input_kind {
                InputKind::Tokens => LinrtInputKind::Tokens,
                InputKind::Vectors => LinrtInputKind::Vectors,
            },
            input_width: match cfg.input_kind {
                InputKind::Tokens => cfg.input_dim as usize,
                InputKind::Vectors => cfg.input_width(),
            },
            output_dim: cfg.output_dim(),
            layers: cfg.n_layers,
            d_model: cfg.d_model,
            checksum: m.model.checksum(),
        };
        // SAFETY: the caller's promise.
        unsafe { write(out, info) }
    })
}
