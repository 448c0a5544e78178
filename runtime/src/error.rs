//! One error type for the whole runtime: every failure is a value, never a panic.

use core::fmt;

use crate::tensor::{DType, TensorRole};

/// Everything that can go wrong when reading a model or running a session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Error {
    /// The buffer ends before the structure that should be at `offset` does.
    Truncated { what: &'static str, needed: u64, available: u64 },
    /// The file does not start with the `.lrt` magic bytes.
    BadMagic,
    /// A major version this reader does not know (newer files need a newer linrt).
    UnsupportedVersion { major: u16, minor: u16 },
    /// The header's own size field is not the one version 1 defines.
    BadHeaderSize(u32),
    /// Reserved header flags were set.
    UnknownFlags(u32),
    /// The header's file size disagrees with the buffer length.
    FileSizeMismatch { header: u64, actual: u64 },
    /// CRC-32 over the file does not match the header: the file is corrupted.
    ChecksumMismatch { stored: u32, computed: u32 },
    /// The buffer (or a tensor inside it) is not aligned as the format requires.
    Misaligned { what: &'static str, align: u32 },
    /// An offset or length points outside the file or overflows.
    OutOfBounds { what: &'static str, offset: u64, len: u64 },
    /// Two sections or tensors share bytes, or a tensor sits inside the header area.
    Overlap { what: &'static str, index: u32 },
    /// A field holds a value outside its enum.
    UnknownEnum { field: &'static str, value: u32 },
    /// A config field is zero, absurd, or inconsistent with another.
    BadConfig { field: &'static str, value: u64 },
    /// The tensor directory does not list the tensor the config requires at `index`.
    UnexpectedTensor { index: u32, expected: TensorRole, expected_layer: u32, found_role: u32, found_layer: u32 },
    /// A tensor's shape is not what the config implies.
    ShapeMismatch { role: TensorRole, layer: u32, expected: [u32; 2], found: [u32; 2] },
    /// The tensor's byte size disagrees with its shape and dtype.
    SizeMismatch { role: TensorRole, layer: u32, expected: u64, found: u64 },
    /// A dtype that the format defines but this build cannot execute, or that is
    /// not allowed for this tensor.
    UnsupportedDType { role: TensorRole, dtype: u8 },
    /// A directory entry is malformed in a way no other variant names.
    BadTensor { index: u32, reason: &'static str },
    /// The writer was not given a tensor the config requires.
    MissingTensor { role: TensorRole, layer: u32 },
    /// A weight is NaN or infinite: the file was written from a broken checkpoint.
    NonFiniteWeight { role: TensorRole, layer: u32 },
    /// Metadata keys and values must be UTF-8.
    BadMetadata { offset: u64 },
    /// The arena is smaller than [`crate::Model::arena_bytes`].
    ArenaTooSmall { needed: usize, given: usize },
    /// Sizes overflow the address space of this target.
    SizeOverflow,
    /// An input of the wrong kind (token for a vector model or the reverse).
    WrongInputKind { expected: crate::InputKind },
    /// An input or output buffer has the wrong length.
    BadLength { what: &'static str, expected: usize, found: usize },
    /// An audio front-end parameter out of range (or, for mel filters, one that
    /// covers no FFT bin: too many bins for the frame length).
    BadFrontend { field: &'static str, value: f32 },
    /// More streams in one `step_batch` than the first session's arena was sized for.
    BatchTooLarge { batch: usize, max: usize },
    /// Sessions stepped together must run the same model with the same kernels.
    BatchMismatch { reason: &'static str },
    /// Sampling parameters or logits that cannot be sampled from.
    BadSampling { what: &'static str },
    /// A token id at or past the vocabulary size.
    TokenOutOfRange { token: u32, vocab: u32 },
    /// A chunk longer than the session was sized for, or empty.
    BadChunkLength { len: usize, max: usize },
    /// Saved state bytes that do not belong to this model or are damaged.
    BadState { reason: &'static str },
    /// An input value is NaN or infinite.
    NonFiniteInput { index: usize },
    /// A forward pass starting at stream position `position` produced NaN or
    /// infinite values (weights too large for f32): the stream refuses to step or be
    /// saved until it is reset or restored.
    NonFiniteStep { position: u64 },
    /// A word list, grammar or hotword list that cannot be used: where (1-based line
    /// and column, in characters) and why.
    BadText { line: u32, column: u32, reason: &'static str },
    /// More than a decoder (or its lexicon, grammar, hotwords) was sized for.
    CapacityExceeded { what: &'static str, capacity: u32 },
    /// A word list, grammar or hotword list holds more than the decoder was sized
    /// for; the line and column of the word that did not fit.
    TooLarge { line: u32, column: u32, what: &'static str, capacity: u32 },
    /// A decoder configuration that cannot work.
    BadDecoder { reason: &'static str },
    /// A kernel path was requested that this CPU cannot run.
    KernelUnavailable { path: &'static str },
    /// The model lacks a metadata entry (or an `app.frontend` field) it needs.
    MissingMetadata { key: &'static str },
    /// The model's `app.task` is not `asr-ctc`.
    NotAsrModel,
    /// An `app.*` metadata value that is not JSON of the expected shape: where
    /// (byte offset in the value) and why.
    BadJson { key: &'static str, offset: u32, reason: &'static str },
    /// An `app.*` metadata value that reads but cannot be used.
    BadAsrMetadata { key: &'static str, reason: &'static str },
    /// A length in the speech metadata disagrees with the model or the front-end.
    AsrShapeMismatch { what: &'static str, expected: u64, found: u64 },
    /// A field of a metadata object that linrt does not know: its position
    /// (from 1) and the names it does know.
    UnknownAsrField { key: &'static str, field: u32, known: &'static str },
    /// Speech metadata larger than the fixed storage [`crate::asr::AsrInfo`] has.
    AsrCapacityExceeded { key: &'static str, what: &'static str, capacity: u32 },
    /// The model file could not be opened or mapped (std only).
    #[cfg(feature = "std")]
    Io(std::io::ErrorKind),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match *self {
            Truncated { what, needed, available } => {
                write!(f, "file truncated: {what} needs {needed} bytes, only {available} present")
            }
            BadMagic => write!(f, "not a linrt model: bad magic bytes (expected \"LNRT\")"),
            UnsupportedVersion { major, minor } => write!(
                f,
                "unsupported .lrt format version {major}.{minor}: this linrt reads version {}.x; upgrade linrt",
                crate::format::VERSION_MAJOR
            ),
            BadHeaderSize(s) => write!(f, "bad header size {s} (version 1 headers are 64 bytes)"),
            UnknownFlags(x) => write!(f, "unknown header flags {x:#x}"),
            FileSizeMismatch { header, actual } => {
                write!(f, "file size mismatch: header says {header} bytes, file has {actual} (truncated or padded)")
            }
            ChecksumMismatch { stored, computed } => {
                write!(f, "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}; the file is corrupted")
            }
            Misaligned { what, align } => write!(f, "{what} is not {align}-byte aligned"),
            OutOfBounds { what, offset, len } => {
                write!(f, "{what} out of bounds: offset {offset}, length {len}")
            }
            Overlap { what, index } => write!(f, "{what} {index} overlaps another section"),
            UnknownEnum { field, value } => write!(f, "unknown value {value} for {field}"),
            BadConfig { field, value } => write!(f, "invalid model config: {field} = {value}"),
            UnexpectedTensor { index, expected, expected_layer, found_role, found_layer } => write!(
                f,
                "tensor directory entry {index}: expected {} of layer {expected_layer}, found role {found_role} of layer {found_layer}",
                expected.name()
            ),
            ShapeMismatch { role, layer, expected, found } => write!(
                f,
                "tensor {} (layer {layer}) has shape {:?}, expected {:?}",
                role.name(),
                found,
                expected
            ),
            SizeMismatch { role, layer, expected, found } => write!(
                f,
                "tensor {} (layer {layer}) has {found} bytes, expected {expected}",
                role.name()
            ),
            UnsupportedDType { role, dtype } => write!(
                f,
                "tensor {} uses dtype {} which this build cannot run for that tensor",
                role.name(),
                DType::from_code(dtype).map(|d| d.name()).unwrap_or("unknown")
            ),
            BadTensor { index, reason } => write!(f, "tensor directory entry {index}: {reason}"),
            MissingTensor { role, layer } => write!(f, "missing tensor {} (layer {layer})", role.name()),
            NonFiniteWeight { role, layer } => {
                write!(f, "tensor {} (layer {layer}) contains NaN or infinite values", role.name())
            }
            BadMetadata { offset } => write!(f, "malformed metadata entry at offset {offset}"),
            ArenaTooSmall { needed, given } => {
                write!(f, "arena too small: {given} bytes given, {needed} needed")
            }
            SizeOverflow => write!(f, "model sizes overflow this target's address space"),
            WrongInputKind { expected } => write!(f, "wrong input kind: this model takes {}", expected.name()),
            BadLength { what, expected, found } => {
                write!(f, "{what} has length {found}, expected {expected}")
            }
            BadSampling { what } => write!(f, "cannot sample: {what}"),
            BadFrontend { field, value } => write!(f, "audio front-end: {field} = {value} is not usable"),
            BatchTooLarge { batch, max } => {
                write!(f, "a batch of {batch} streams; the first session's arena was sized for 1 to {max} (max_chunk)")
            }
            BatchMismatch { reason } => write!(f, "cannot step these sessions together: {reason}"),
            TokenOutOfRange { token, vocab } => {
                write!(f, "token id {token} out of range (vocabulary size {vocab})")
            }
            BadChunkLength { len, max } => {
                write!(f, "chunk of {len} positions; this session takes 1 to {max}")
            }
            BadState { reason } => write!(f, "cannot restore state: {reason}"),
            NonFiniteInput { index } => write!(f, "input value {index} is NaN or infinite"),
            NonFiniteStep { position } => write!(
                f,
                "the step at position {position} produced NaN or infinite values (weights too large for f32?); reset the stream or restore a saved state"
            ),
            BadText { line, column, reason } => write!(f, "line {line}, column {column}: {reason}"),
            CapacityExceeded { what, capacity } => write!(f, "more {what} than the {capacity} the decoder was sized for"),
            TooLarge { line, column, what, capacity } => {
                write!(f, "line {line}, column {column}: more {what} than the {capacity} the decoder was sized for")
            }
            BadDecoder { reason } => write!(f, "decoder: {reason}"),
            KernelUnavailable { path } => write!(f, "kernel path {path} is not supported by this CPU"),
            MissingMetadata { key } => write!(f, "the model has no {key} metadata"),
            NotAsrModel => write!(f, "the model's app.task is not asr-ctc: it is not a CTC speech recognizer"),
            BadJson { key, offset, reason } => write!(f, "the model's {key} metadata, byte {offset}: {reason}"),
            BadAsrMetadata { key, reason } => write!(f, "the model's {key} metadata: {reason}"),
            AsrShapeMismatch { what, expected, found } => write!(f, "{what}: expected {expected}, found {found}"),
            UnknownAsrField { key, field, known } => {
                write!(f, "the model's {key} metadata: field {field} (counting from 1) is not one linrt knows ({known})")
            }
            AsrCapacityExceeded { key, what, capacity } => {
                write!(f, "the model's {key} metadata exceeds linrt's {capacity} {what}")
            }
            #[cfg(feature = "std")]
            Io(kind) => write!(f, "cannot read model file: {kind}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
