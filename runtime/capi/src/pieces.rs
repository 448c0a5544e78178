//! The recognizer's pieces on their own, for callers that assemble their own
//! pipeline: the fbank front-end, the frame stacker (with the model's feature
//! normalisation), greedy CTC decoding and the endpoint rules. Each is configured
//! from a speech model's `app.*` metadata, as the recognizer configures it.

use core::ffi::{c_char, c_void};

use linrt::asr::AsrInfo;
use linrt::audio::{Fbank, FrameStacker};
use linrt::decode::{CtcDecoder, EndpointConfig};

use crate::{guard, input, object, output, place, room, shared, write, LinrtModel, LinrtStatus};

/// Receives `len` floats (a feature frame, or one model step's input), valid only
/// during the call.
pub type LinrtOnFloats = Option<unsafe extern "C" fn(user: *mut c_void, values: *const f32, len: usize)>;

fn send(f: LinrtOnFloats, user: *mut c_void, values: &[f32]) {
    if let Some(f) = f {
        // SAFETY: the caller gave this function for this purpose; `values` lives
        // until it returns.
        unsafe { f(user, values.as_ptr(), values.len()) };
    }
}

fn asr_info(m: &'static LinrtModel) -> Result<AsrInfo<'static>, LinrtStatus> {
    AsrInfo::from_model(&m.model).map_err(|e| LinrtStatus::of(&e))
}

/// The log-mel front-end (opaque).
pub struct LinrtFbank {
    fbank: Fbank,
}

/// The frame stacker (opaque).
pub struct LinrtStacker {
    stacker: FrameStacker,
}

/// Greedy CTC decoding over a model's symbols (opaque).
pub struct LinrtCtc {
    decoder: CtcDecoder,
    info: AsrInfo<'static>,
}

/// Bytes of storage a front-end needs (any alignment; its FFT tables and window).
pub const LINRT_FBANK_BYTES: usize = 64 * 1024;
/// Bytes of storage a frame stacker needs (its normalisation and frame history).
pub const LINRT_STACKER_BYTES: usize = 72 * 1024;
/// Bytes of storage a greedy CTC decoder needs (an utterance's symbols).
pub const LINRT_CTC_BYTES: usize = 32 * 1024;
const _: () = assert!(room::<LinrtFbank>() <= LINRT_FBANK_BYTES);
const _: () = assert!(room::<LinrtStacker>() <= LINRT_STACKER_BYTES);
const _: () = assert!(room::<LinrtCtc>() <= LINRT_CTC_BYTES);

/// The front-end of the speech model `model`, in `storage` (`len` ≥ `LINRT_FBANK_BYTES`).
///
/// # Safety
/// `model` comes from `linrt_model_open`; `storage` has `len` writable bytes used by
/// nothing else while the front-end is; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn linrt_fbank_create(
    model: *const LinrtModel,
    storage: *mut c_void,
    len: usize,
    out: *mut *mut LinrtFbank,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let info = asr_info(unsafe { shared(model)? })?;
        let fbank = Fbank::new(info.fbank).map_err(|e| LinrtStatus::of(&e))?;
        // SAFETY: the caller's promise.
        unsafe { write(out, place(storage, len, LinrtFbank { fbank })?) }
    })
}

/// Feeds `count` samples in [-1, 1]; each feature frame they complete goes to
/// `on_frame` (num_bins floats).
///
/// # Safety
/// `fbank` comes from `linrt_fbank_create`; `samples` has `count` floats;
/// `on_frame` (may be null) is safe to call with `user`.
#[no_mangle]
pub unsafe extern "C" fn linrt_fbank_accept(
    fbank: *mut LinrtFbank,
    samples: *const f32,
    count: usize,
    on_frame: LinrtOnFloats,
    user: *mut c_void,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (f, x) = unsafe { (object(fbank)?, input(samples, count)?) };
        f.fbank.accept(x, |frame| send(on_frame, user, frame));
        Ok(())
    })
}

/// Ends the stream: the last frames go to `on_frame`; the front-end starts over.
///
/// # Safety
/// As for `linrt_fbank_accept`.
#[no_mangle]
pub unsafe extern "C" fn linrt_fbank_finish(
    fbank: *mut LinrtFbank,
    on_frame: LinrtOnFloats,
    user: *mut c_void,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let f = unsafe { object(fbank)? };
        f.fbank.finish(|frame| send(on_frame, user, frame));
        Ok(())
    })
}

/// The frame stacker of the speech model `model` (its stacking, context and
/// normalisation), in `storage` (`len` ≥ `LINRT_STACKER_BYTES`).
///
/// # Safety
/// As for `linrt_fbank_create`.
#[no_mangle]
pub unsafe extern "C" fn linrt_stacker_create(
    model: *const LinrtModel,
    storage: *mut c_void,
    len: usize,
    out: *mut *mut LinrtStacker,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let info = asr_info(unsafe { shared(model)? })?;
        let stacker = FrameStacker::new(info.num_bins, info.stack, info.context, info.mean(), info.std())
            .map_err(|e| LinrtStatus::of(&e))?;
        // SAFETY: the caller's promise.
        unsafe { write(out, place(storage, len, LinrtStacker { stacker })?) }
    })
}

/// Pushes one feature frame (`bins` = num_bins floats); when it completes a
/// model step, the step's input goes to `on_step` (the model's input_width floats).
///
/// # Safety
/// `stacker` comes from `linrt_stacker_create`; `frame` has `bins` floats;
/// `on_step` (may be null) is safe to call with `user`.
#[no_mangle]
pub unsafe extern "C" fn linrt_stacker_push(
    stacker: *mut LinrtStacker,
    frame: *const f32,
    bins: usize,
    on_step: LinrtOnFloats,
    user: *mut c_void,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (s, x) = unsafe { (object(stacker)?, input(frame, bins)?) };
        let want = s.stacker.step_len() / s.stacker.stack().max(1);
        if bins == 0 || bins != want {
            return Err(LinrtStatus::BadInput);
        }
        s.stacker.push(x, |step| send(on_step, user, step));
        Ok(())
    })
}

/// Ends the stream: a last, partial step goes to `on_step`; the stacker starts over.
///
/// # Safety
/// As for `linrt_stacker_push`.
#[no_mangle]
pub unsafe extern "C" fn linrt_stacker_finish(
    stacker: *mut LinrtStacker,
    on_step: LinrtOnFloats,
    user: *mut c_void,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let s = unsafe { object(stacker)? };
        s.stacker.finish(|step| send(on_step, user, step));
        Ok(())
    })
}

/// Greedy CTC decoding of the speech model `model`'s logits, in `storage` (`len` ≥
/// `LINRT_CTC_BYTES`).
///
/// # Safety
/// As for `linrt_fbank_create`; the model outlives the decoder.
#[no_mangle]
pub unsafe extern "C" fn linrt_ctc_create(
    model: *const LinrtModel,
    storage: *mut c_void,
    len: usize,
    out: *mut *mut LinrtCtc,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise: the model outlives the decoder.
        let info = asr_info(unsafe { shared(model)? })?;
        let decoder = CtcDecoder::new(0, info.separator());
        // SAFETY: the caller's promise.
        unsafe { write(out, place(storage, len, LinrtCtc { decoder, info })?) }
    })
}

/// Decodes one step's logits (`count` = the model's symbols); `*changed` (may be
/// null) says whether the transcript changed.
///
/// # Safety
/// `ctc` comes from `linrt_ctc_create`; `logits` has `count` floats.
#[no_mangle]
pub unsafe extern "C" fn linrt_ctc_push(
    ctc: *mut LinrtCtc,
    logits: *const f32,
    count: usize,
    changed: *mut bool,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (c, x) = unsafe { (object(ctc)?, input(logits, count)?) };
        if count != c.info.symbols() {
            return Err(LinrtStatus::BadInput);
        }
        let did = c.decoder.push(x);
        if !changed.is_null() {
            // SAFETY: the caller's promise.
            unsafe { write(changed, did)? };
        }
        Ok(())
    })
}

/// The transcript so far, NUL-terminated, into `buf` (`len` bytes); `*written` (may
/// be null) gets its length without the NUL. BufferTooSmall if it does not fit.
///
/// # Safety
/// `ctc` comes from `linrt_ctc_create`; `buf` has `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn linrt_ctc_text(
    ctc: *const LinrtCtc,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let (c, out) = unsafe { (shared(ctc)?, output(buf.cast::<u8>(), len)?) };
        let mut n = 0;
        for token in c.decoder.tokens() {
            let text = c.info.symbol(token.id as usize).as_bytes();
            if n + text.len() + 1 > out.len() {
                return Err(LinrtStatus::BufferTooSmall);
            }
            out[n..n + text.len()].copy_from_slice(text);
            n += text.len();
        }
        if n >= out.len() {
            return Err(LinrtStatus::BufferTooSmall);
        }
        out[n] = 0;
        if !written.is_null() {
            // SAFETY: the caller's promise.
            unsafe { write(written, n)? };
        }
        Ok(())
    })
}

/// Seconds of the utterance so far and of its trailing silence (steps with nothing
/// decoded), what the endpoint rules look at.
///
/// # Safety
/// `ctc` comes from `linrt_ctc_create`; the out pointers are writable.
#[no_mangle]
pub unsafe extern "C" fn linrt_ctc_timing(
    ctc: *const LinrtCtc,
    utterance_seconds: *mut f32,
    trailing_silence_seconds: *mut f32,
) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        let c = unsafe { shared(ctc)? };
        let step = c.info.step_seconds();
        let utterance = c.decoder.steps() as f64 * step;
        let silence = c.decoder.trailing_silence() as f64 * step;
        // SAFETY: the caller's promise.
        unsafe {
            write(utterance_seconds, utterance as f32)?;
            write(trailing_silence_seconds, silence as f32)
        }
    })
}

/// Starts the next utterance (after an endpoint): the transcript is emptied, the
/// stream's clock goes on.
///
/// # Safety
/// `ctc` comes from `linrt_ctc_create`.
#[no_mangle]
pub unsafe extern "C" fn linrt_ctc_clear(ctc: *mut LinrtCtc) -> LinrtStatus {
    guard(|| {
        // SAFETY: the caller's promise.
        unsafe { object(ctc)? }.decoder.clear();
        Ok(())
    })
}

/// sherpa-onnx's default endpoint rules (as `linrt asr` uses them): `*rule` gets the
/// number (1-3) of the first rule that fires for an utterance of this length and
/// trailing silence, or 0 when none does.
///
/// # Safety
/// `rule` is writable.
#[no_mangle]
pub unsafe extern "C" fn linrt_endpoint_detect(
    utterance_seconds: f32,
    trailing_silence_seconds: f32,
    rule: *mut u32,
) -> LinrtStatus {
    guard(|| {
        let fired = EndpointConfig::default().detect(utterance_seconds, trailing_silence_seconds);
        // SAFETY: the caller's promise.
        unsafe { write(rule, fired.map_or(0, |r| r as u32)) }
    })
}
