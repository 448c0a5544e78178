//! The firmware's RAM: one static buffer, carved once into what the runtime asks
//! for (`linrt::carve`: no allocator, what is taken is never given back).

use core::sync::atomic::{AtomicBool, Ordering};

use linrt::carve::Carver;

/// Bytes of the static buffer. The link fails if it, the other statics and the
/// stack do not fit the RAM of `memory.x`.
pub const POOL_BYTES: usize = 900 * 1024;

static mut POOL: linrt::Aligned<[u8; POOL_BYTES]> = linrt::Aligned([0; POOL_BYTES]);
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The whole static buffer; None after the first call.
pub fn take() -> Option<Carver<'static>> {
    if TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: TAKEN guards this: the only reference to POOL ever made.
    let bytes: &'static mut [u8] = unsafe { &mut (*core::ptr::addr_of_mut!(POOL)).0 };
    Some(Carver::new(bytes))
}
