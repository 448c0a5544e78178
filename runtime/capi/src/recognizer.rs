//! The streaming recognizer (`linrt::asr::Recognizer`): samples in, partial and
//! final transcripts out through a callback, everything in one caller buffer.

use core::ffi::{c_char, c_void};

use linrt::asr::{BufferedRecognizer, Event, Recognizer};
use linrt::carve::Carver;
use linrt::Error;

use crate::{bytes_mut, describe, guard, input, object, output, place, room, shared, write, LinrtModel, LinrtStatus};

/// A recognizer (opaque; inside its memory).
pub struct LinrtRecognizer {
    recognizer: Recognizer<'static>,
    last_error: Option<Error>,
}

/// Partial or final.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinrtUtteranceKind {
    /// The best transcript so far; it may still change.
    Partial = 0,
    /// An utterance ended at an endpoint (or the stream's end); it will not change.
    Final = 1,
}

/// A transcript, valid only during the callback that receives it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LinrtUtterance {
    pub kind: LinrtUtteranceKind,
    /// UTF-8 words joined by single spaces, `text_len` bytes (not NUL-terminated).
    pub text: *const c_char,
    pub text_len: usize,
    /// Seconds from the start of the stream: first and last symbol, and when decided.
    pub start: f64,
    pub end: f64,
    pub decided_at: f64,
}

/// Receives each transcript; `user` is what the caller passed along.
pub type LinrtOnUtterance = Option<unsafe extern "C" fn(user: *mut c_void, utterance: *const LinrtUtterance)>;

fn setup(beam: usize) -> BufferedRecognizer {
    BufferedRecognizer { beam, ..BufferedRecognizer::default() }
}

/// Bytes of memory a recognizer of the speech model `model` needs (any alignment):
/// with the beam search over the model's words of width `beam`, or greedy decoding
/// when `beam` is 0 (`linrt asr` uses 16).
///
/// # Safety
/// `model` comes from `linrt_model_open`; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn linrt_recognizer_bytes(model: *const LinrtModel, beam: usize, out: *mut usize) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let m = unsafe { shared(model)? };
        let inner = setup(beam).bytes(&m.model).map_err(|e| LinrtStatus::of(&e))?;
        let bytes = inner.checked_add(room::<LinrtRecognizer>()).ok_or(LinrtStatus::BufferTooSmall)?;
        // SAFETY: the caller's promise.
        unsafe { write(out, bytes) }
    })
}

/// A recognizer of `model` in `memory` (`len` ≥ `linrt_recognizer_bytes` for this
/// `beam`); `*out` points to it.
///
/// # Safety
/// `model` comes from `linrt_model_open` and outlives the recognizer; `memory` has
/// `len` writable bytes used by nothing else while the recognizer is.
#[no_mangle]
pub unsafe extern "C" fn linrt_recognizer_create(
    model: *const LinrtModel,
    beam: usize,
    memory: *mut c_void,
    len: usize,
    out: *mut *mut LinrtRecognizer,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise: the model outlives the recognizer.
        let m: &'static LinrtModel = unsafe { shared(model)? };
        // SAFETY: the caller's promise about the memory.
        let bytes = unsafe { bytes_mut(memory, len)? };
        let (handle_room, rest) = bytes.split_at_mut(room::<LinrtRecognizer>().min(bytes.len()));
        let mut carver = Carver::new(rest);
        let recognizer = setup(beam).build(&m.model, &mut carver).map_err(|e| LinrtStatus::of(&e))?;
        // SAFETY: handle_room is the caller's; the recognizer's buffers lie after it.
        unsafe {
            let handle = place(
                handle_room.as_mut_ptr().cast(),
                handle_room.len(),
                LinrtRecognizer { recognizer, last_error: None },
            )?;
            write(out, handle)
        }
    })
}

/// Sends `event` to the callback, if it is a transcript.
fn deliver(on_utterance: LinrtOnUtterance, user: *mut c_void, event: Event<'_>) {
    let (kind, u) = match event {
        Event::Partial(u) => (LinrtUtteranceKind::Partial, u),
        Event::Final(u) => (LinrtUtteranceKind::Final, u),
        Event::Logits(_) => return,
    };
    let c = LinrtUtterance {
        kind,
        text: u.text.as_ptr().cast(),
        text_len: u.text.len(),
        start: u.start,
        end: u.end,
        decided_at: u.decided_at,
    };
    if let Some(f) = on_utterance {
        // SAFETY: the caller gave this function for this purpose; `c` and the text
        // it points to live until it returns.
        unsafe { f(user, &c) };
    }
}

/// Feeds `count` samples in [-1, 1] at the model's rate (any chunking gives the
/// same transcripts); what they complete goes to `on_utterance` before this returns.
///
/// # Safety
/// `recognizer` comes from `linrt_recognizer_create`; `samples` has `count` floats;
/// `on_utterance` (may be null) is safe to call with `user`.
#[no_mangle]
pub unsafe extern "C" fn linrt_recognizer_accept(
    recognizer: *mut LinrtRecognizer,
    samples: *const f32,
    count: usize,
    on_utterance: LinrtOnUtterance,
    user: *mut c_void,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (r, x) = unsafe { (object(recognizer)?, input(samples, count)?) };
        let result = r.recognizer.accept(x, &mut |e| deliver(on_utterance, user, e));
        result.map_err(|e| {
            r.last_error = Some(e);
            LinrtStatus::of(&e)
        })
    })
}

/// Ends the stream: what is left is decoded and becomes a final; the recognizer is
/// then ready for a new stream, its clock at zero.
///
/// # Safety
/// As for `linrt_recognizer_accept`.
#[no_mangle]
pub unsafe extern "C" fn linrt_recognizer_finish(
    recognizer: *mut LinrtRecognizer,
    on_utterance: LinrtOnUtterance,
    user: *mut c_void,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let r = unsafe { object(recognizer)? };
        let result = r.recognizer.finish(&mut |e| deliver(on_utterance, user, e));
        result.map_err(|e| {
            r.last_error = Some(e);
            LinrtStatus::of(&e)
        })
    })
}

/// The last failure's description, NUL-terminated, into `buf` (`len` bytes).
///
/// # Safety
/// `recognizer` comes from `linrt_recognizer_create`; `buf` has `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn linrt_recognizer_error(
    recognizer: *const LinrtRecognizer,
    buf: *mut c_char,
    len: usize,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (r, out) = unsafe { (shared(recognizer)?, output(buf.cast::<u8>(), len)?) };
        describe(r.last_error.as_ref(), out);
        Ok(())
    })
}
