//! linrt from C: the model read from bytes, sessions, state save/restore, and the
//! streaming recognizer with its pieces (fbank front-end, frame stacker, greedy CTC
//! decoder, endpoints). `include/linrt.h` is generated from this crate by cbindgen
//! (`LINRT_BLESS=1 cargo test -p linrt-capi --test header` rewrites it; the test
//! fails while it is stale).
//!
//! The rules of the boundary:
//! - every object lives in memory the caller gives, sized by a `LINRT_*_BYTES`
//!   constant or a `linrt_*_bytes` function; nothing is allocated inside;
//! - every function returns a [`LinrtStatus`] and writes results through pointers;
//!   a null pointer where one is needed is `LINRT_STATUS_NULL_ARGUMENT`;
//! - nothing unwinds into C: the runtime reports failures as values, and on hosted
//!   targets a panic (a bug) is caught and returned as `LINRT_STATUS_PANIC`;
//! - bytes given to a `*_open`/`*_create` (the model file, arenas, buffers) must stay
//!   valid and unmoved for as long as the object made from them is used, and an
//!   object is used by one thread at a time.
#![cfg_attr(target_os = "none", no_std)]

mod model;
mod pieces;
mod recognizer;
mod session;

pub use model::*;
pub use pieces::*;
pub use recognizer::*;
pub use session::*;

use core::ffi::c_void;
use core::mem::{align_of, size_of};

use linrt::Error;

/// What a call did.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinrtStatus {
    Ok = 0,
    /// A pointer that must not be null was.
    NullArgument = 1,
    /// The model bytes are not a valid `.lrt` file (or not one this call can run:
    /// a recognizer needs a speech model's `app.*` metadata).
    BadModel = 2,
    /// A buffer (arena, storage, output, text) is smaller than the call needs.
    BufferTooSmall = 3,
    /// A buffer is not aligned as the call needs (the model: 64 bytes).
    Misaligned = 4,
    /// An input has the wrong length, kind or values (NaN, token out of range).
    BadInput = 5,
    /// A state blob is not one this model's sessions wrote.
    BadState = 6,
    /// Anything else the runtime refused; the object's `*_error` tells more.
    Failed = 7,
    /// A bug in linrt: please report it. The object must not be used again.
    Panic = 8,
    /// A step produced NaN or infinite values (weights too large for f32): the
    /// stream refuses to step or be saved until it is reset or restored.
    NonFinite = 9,
}

impl LinrtStatus {
    fn of(e: &Error) -> LinrtStatus {
        match e {
            Error::Truncated { .. }
            | Error::BadMagic
            | Error::UnsupportedVersion { .. }
            | Error::BadHeaderSize(_)
            | Error::UnknownFlags(_)
            | Error::FileSizeMismatch { .. }
            | Error::ChecksumMismatch { .. }
            | Error::OutOfBounds { .. }
            | Error::Overlap { .. }
            | Error::UnknownEnum { .. }
            | Error::BadConfig { .. }
            | Error::UnexpectedTensor { .. }
            | Error::ShapeMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::UnsupportedDType { .. }
            | Error::BadTensor { .. }
            | Error::NonFiniteWeight { .. }
            | Error::BadMetadata { .. }
            | Error::MissingMetadata { .. }
            | Error::NotAsrModel
            | Error::BadAsrMetadata { .. }
            | Error::AsrShapeMismatch { .. }
            | Error::UnknownAsrField { .. } => LinrtStatus::BadModel,
            Error::ArenaTooSmall { .. } => LinrtStatus::BufferTooSmall,
            Error::Misaligned { .. } => LinrtStatus::Misaligned,
            Error::WrongInputKind { .. }
            | Error::BadLength { .. }
            | Error::TokenOutOfRange { .. }
            | Error::BadChunkLength { .. }
            | Error::NonFiniteInput { .. } => LinrtStatus::BadInput,
            Error::BadState { .. } => LinrtStatus::BadState,
            Error::NonFiniteStep { .. } => LinrtStatus::NonFinite,
            _ => LinrtStatus::Failed,
        }
    }
}

/// A short, static description of `status` (NUL-terminated).
#[no_mangle]
pub extern "C" fn linrt_status_text(status: LinrtStatus) -> *const core::ffi::c_char {
    let text: &'static [u8] = match status {
        LinrtStatus::Ok => b"ok\0",
        LinrtStatus::NullArgument => b"a required pointer was null\0",
        LinrtStatus::BadModel => b"not a valid model for this call\0",
        LinrtStatus::BufferTooSmall => b"a buffer is too small\0",
        LinrtStatus::Misaligned => b"a buffer is misaligned\0",
        LinrtStatus::BadInput => b"bad input\0",
        LinrtStatus::BadState => b"not a state of this model\0",
        LinrtStatus::Failed => b"the runtime refused the call\0",
        LinrtStatus::Panic => b"internal error (a bug in linrt)\0",
        LinrtStatus::NonFinite => b"the stream produced NaN or infinite values; reset or restore it\0",
    };
    text.as_ptr().cast()
}

/// Runs `f`; on hosted targets a panic inside becomes `LinrtStatus::Panic`
/// instead of unwinding into C.
fn guard(f: impl FnOnce() -> Result<(), LinrtStatus>) -> LinrtStatus {
    #[cfg(not(target_os = "none"))]
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(Err(LinrtStatus::Panic));
    #[cfg(target_os = "none")]
    let result = f();
    match result {
        Ok(()) => LinrtStatus::Ok,
        Err(status) => status,
    }
}

/// `p` as a reference, or NullArgument.
///
/// # Safety
/// A non-null `p` points to a valid `T` that nothing else uses for `'a`.
unsafe fn object<'a, T>(p: *mut T) -> Result<&'a mut T, LinrtStatus> {
    // SAFETY: the caller's promise (the header's rules).
    unsafe { p.as_mut() }.ok_or(LinrtStatus::NullArgument)
}

/// `p` as a shared reference, or NullArgument.
///
/// # Safety
/// A non-null `p` points to a valid `T` that nothing changes for `'a`.
unsafe fn shared<'a, T>(p: *const T) -> Result<&'a T, LinrtStatus> {
    // SAFETY: the caller's promise.
    unsafe { p.as_ref() }.ok_or(LinrtStatus::NullArgument)
}

/// `len` values from `p` (any `p` when `len` is 0), or NullArgument.
///
/// # Safety
/// A non-null `p` points to `len` valid values of `T` for `'a`.
unsafe fn input<'a, T>(p: *const T, len: usize) -> Result<&'a [T], LinrtStatus> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(LinrtStatus::NullArgument);
    }
    // SAFETY: the caller's promise.
    Ok(unsafe { core::slice::from_raw_parts(p, len) })
}

/// `len` writable values at `p` (any `p` when `len` is 0), or NullArgument.
///
/// # Safety
/// A non-null `p` points to `len` values of `T` writable and used by nothing else for `'a`.
unsafe fn output<'a, T>(p: *mut T, len: usize) -> Result<&'a mut [T], LinrtStatus> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(LinrtStatus::NullArgument);
    }
    // SAFETY: the caller's promise.
    Ok(unsafe { core::slice::from_raw_parts_mut(p, len) })
}

/// Writes `value`, if `out` is not null.
///
/// # Safety
/// A non-null `out` points to a writable `T`.
unsafe fn write<T>(out: *mut T, value: T) -> Result<(), LinrtStatus> {
    if out.is_null() {
        return Err(LinrtStatus::NullArgument);
    }
    // SAFETY: the caller's promise.
    unsafe { out.write(value) };
    Ok(())
}

/// Moves `value` into caller storage at `T`'s alignment; the pointer to it.
///
/// # Safety
/// A non-null `storage` points to `len` writable bytes that nothing else uses while
/// the object lives.
unsafe fn place<T>(storage: *mut c_void, len: usize, value: T) -> Result<*mut T, LinrtStatus> {
    if storage.is_null() {
        return Err(LinrtStatus::NullArgument);
    }
    let addr = storage as usize;
    let pad = addr.next_multiple_of(align_of::<T>()) - addr;
    if pad.checked_add(size_of::<T>()).is_none_or(|n| n > len) {
        return Err(LinrtStatus::BufferTooSmall);
    }
    // SAFETY: storage + pad is aligned for T and has size_of::<T>() bytes of the
    // caller's buffer (checked above).
    unsafe {
        let at = (storage as *mut u8).add(pad) as *mut T;
        at.write(value);
        Ok(at)
    }
}

/// The caller's buffer from `storage` on, `len` bytes.
///
/// # Safety
/// As for [`place`]; the bytes are borrowed for as long as the caller keeps them.
unsafe fn bytes_mut<'a>(storage: *mut c_void, len: usize) -> Result<&'a mut [u8], LinrtStatus> {
    // SAFETY: the caller's promise.
    unsafe { output(storage as *mut u8, len) }
}

/// Bytes that [`place`] may need for a `T`: its size and worst-case padding.
const fn room<T>() -> usize {
    size_of::<T>() + align_of::<T>() - 1
}

/// Writes `e`'s description into `buf` (`len` bytes, NUL-terminated, cut short to fit).
fn describe(e: Option<&Error>, buf: &mut [u8]) {
    use core::fmt::Write;
    struct Cut<'b>(&'b mut [u8], usize);
    impl Write for Cut<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for &b in s.as_bytes() {
                if self.1 + 1 < self.0.len() {
                    self.0[self.1] = b;
                    self.1 += 1;
                }
            }
            Ok(())
        }
    }
    if buf.is_empty() {
        return;
    }
    let mut cut = Cut(buf, 0);
    let _ = match e {
        Some(e) => write!(cut, "{e}"),
        None => write!(cut, "no error"),
    };
    let end = cut.1;
    cut.0[end] = 0;
}

#[cfg(all(target_os = "none", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // A bug in linrt on a board without unwinding: stop here, where a debugger finds it.
    loop {
        core::hint::spin_loop();
    }
}
