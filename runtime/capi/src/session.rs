//! Sessions: one stream's state and workspace in one caller arena, stepped one
//! position at a time or a chunk at once, reset, saved and restored.

use core::ffi::{c_char, c_void};

use linrt::{Error, Input, Inputs, Session, SessionOptions};

use crate::{bytes_mut, describe, guard, input, object, output, place, room, shared, write, LinrtModel, LinrtStatus};

/// A stream running a model (opaque; at the start of its arena).
pub struct LinrtSession {
    session: Session<'static>,
    output_dim: usize,
    last_error: Option<Error>,
}

impl LinrtSession {
    fn keep<T>(&mut self, r: Result<T, Error>) -> Result<T, LinrtStatus> {
        r.map_err(|e| {
            self.last_error = Some(e);
            LinrtStatus::of(&e)
        })
    }
}

fn options(max_chunk: usize) -> SessionOptions {
    SessionOptions { max_chunk: max_chunk.max(1), kernels: None }
}

/// Bytes of arena a session of `model` needs (any alignment), for chunks of up
/// to `max_chunk` positions (0 or 1: stepping only).
///
/// # Safety
/// `model` comes from `linrt_model_open`; `out` points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_bytes(
    model: *const LinrtModel,
    max_chunk: usize,
    out: *mut usize,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let m = unsafe { shared(model)? };
        let arena = m.model.arena_bytes(options(max_chunk)).map_err(|e| LinrtStatus::of(&e))?;
        // The handle, then the arena at 4-byte alignment.
        let bytes = room::<LinrtSession>().checked_add(arena + 3).ok_or(LinrtStatus::BufferTooSmall)?;
        // SAFETY: the caller's promise.
        unsafe { write(out, bytes) }
    })
}

/// A session of `model` in `arena` (`len` ≥ `linrt_session_bytes`), its state
/// zeroed; `*out` points to it (inside the arena).
///
/// # Safety
/// `model` comes from `linrt_model_open` and outlives the session; `arena` points
/// to `len` writable bytes used by nothing else while the session is.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_create(
    model: *const LinrtModel,
    max_chunk: usize,
    arena: *mut c_void,
    len: usize,
    out: *mut *mut LinrtSession,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise: the model outlives the session.
        let m: &'static LinrtModel = unsafe { shared(model)? };
        // SAFETY: the caller's promise about the arena.
        let bytes = unsafe { bytes_mut(arena, len)? };
        // The session's own arena follows the handle's room, 4-byte aligned.
        let head = room::<LinrtSession>().min(bytes.len());
        let (handle_room, rest) = bytes.split_at_mut(head);
        let skip = rest.as_ptr().align_offset(4).min(rest.len());
        let session = Session::new(&m.model, &mut rest[skip..], options(max_chunk)).map_err(|e| LinrtStatus::of(&e))?;
        let output_dim = m.model.config().output_dim();
        let value = LinrtSession { session, output_dim, last_error: None };
        // SAFETY: handle_room is the caller's, and the session's arena lies after it.
        unsafe {
            let handle = place(handle_room.as_mut_ptr().cast(), handle_room.len(), value)?;
            write(out, handle)
        }
    })
}

/// One position of a vector model: `input_len` floats in, `output_len`
/// (= output_dim) floats out.
///
/// # Safety
/// `session` comes from `linrt_session_create`; the pointers hold their lengths.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_step_vector(
    session: *mut LinrtSession,
    input_values: *const f32,
    input_len: usize,
    out: *mut f32,
    output_len: usize,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (s, x, y) = unsafe { (object(session)?, input(input_values, input_len)?, output(out, output_len)?) };
        let r = s.session.step(Input::Vector(x), y);
        s.keep(r)
    })
}

/// One position of a token model.
///
/// # Safety
/// As for `linrt_session_step_vector`.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_step_token(
    session: *mut LinrtSession,
    token: u32,
    out: *mut f32,
    output_len: usize,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (s, y) = unsafe { (object(session)?, output(out, output_len)?) };
        let r = s.session.step(Input::Token(token), y);
        s.keep(r)
    })
}

/// `positions` positions of a vector model at once (the causal parallel form, 1 ≤
/// positions ≤ max_chunk): `positions × input_width` floats in, `positions ×
/// output_dim` out.
///
/// # Safety
/// As for `linrt_session_step_vector`.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_step_chunk(
    session: *mut LinrtSession,
    input_values: *const f32,
    input_len: usize,
    out: *mut f32,
    output_len: usize,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (s, x, y) = unsafe { (object(session)?, input(input_values, input_len)?, output(out, output_len)?) };
        let r = s.session.step_chunk(Inputs::Vectors(x), y);
        s.keep(r)
    })
}

/// `count` tokens at once (the causal parallel form).
///
/// # Safety
/// As for `linrt_session_step_vector`.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_step_chunk_tokens(
    session: *mut LinrtSession,
    tokens: *const u32,
    count: usize,
    out: *mut f32,
    output_len: usize,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (s, ids, y) = unsafe { (object(session)?, input(tokens, count)?, output(out, output_len)?) };
        let r = s.session.step_chunk(Inputs::Tokens(ids), y);
        s.keep(r)
    })
}

/// Back to the start of a stream: state zeroed, position 0.
///
/// # Safety
/// `session` comes from `linrt_session_create`.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_reset(session: *mut LinrtSession) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        unsafe { object(session)? }.session.reset();
        Ok(())
    })
}

/// Positions the stream has advanced since its start (or reset).
///
/// # Safety
/// `session` comes from `linrt_session_create`; the out pointers are writable.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_position(session: *const LinrtSession, position: *mut u64) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let s = unsafe { shared(session)? };
        // SAFETY: the caller's promise.
        unsafe { write(position, s.session.position()) }
    })
}

/// Bytes `linrt_session_save_state` writes.
///
/// # Safety
/// `session` comes from `linrt_session_create`; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_state_bytes(session: *const LinrtSession, out: *mut usize) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let s = unsafe { shared(session)? };
        // SAFETY: the caller's promise.
        unsafe { write(out, s.session.state_bytes()) }
    })
}

/// Writes the stream's state (tagged with the model's checksum) into `buf`;
/// `*written` gets its length.
///
/// # Safety
/// `session` comes from `linrt_session_create`; `buf` has `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_save_state(
    session: *mut LinrtSession,
    buf: *mut u8,
    len: usize,
    written: *mut usize,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (s, out) = unsafe { (object(session)?, output(buf, len)?) };
        let r = s.session.save_state(out);
        let n = s.keep(r)?;
        // SAFETY: the caller's promise.
        unsafe { write(written, n) }
    })
}

/// Restores a state `linrt_session_save_state` wrote for the same model; nothing
/// changes unless the whole blob is valid.
///
/// # Safety
/// `session` comes from `linrt_session_create`; `bytes` has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_restore_state(
    session: *mut LinrtSession,
    bytes: *const u8,
    len: usize,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (s, blob) = unsafe { (object(session)?, input(bytes, len)?) };
        let r = s.session.restore_state(blob);
        s.keep(r)
    })
}

/// The last failure's description, NUL-terminated, into `buf` (`len` bytes; cut
/// short to fit).
///
/// # Safety
/// `session` comes from `linrt_session_create`; `buf` has `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_error(
    session: *const LinrtSession,
    buf: *mut c_char,
    len: usize,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (s, out) = unsafe { (shared(session)?, output(buf.cast::<u8>(), len)?) };
        describe(s.last_error.as_ref(), out);
        Ok(())
    })
}

/// Floats one position outputs (what `output_len` must be per position).
///
/// # Safety
/// `session` comes from `linrt_session_create`; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn linrt_session_output_dim(session: *const LinrtSession, out: *mut usize) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let s = unsafe { shared(session)? };
        // SAFETY: the caller's promise.
        unsafe { write(out, s.output_dim) }
    })
}
