//! The firmware's RAM: one static buffer, carved once into the typed slices the
//! runtime asks for (no allocator: what is taken is never given back).

use core::mem::{align_of, size_of};
use core::sync::atomic::{AtomicBool, Ordering};

/// Bytes of the static buffer. The link fails if it, the other statics and the
/// stack do not fit the RAM of `memory.x`.
pub const POOL_BYTES: usize = 800 * 1024;

static mut POOL: linrt::Aligned<[u8; POOL_BYTES]> = linrt::Aligned([0; POOL_BYTES]);
static TAKEN: AtomicBool = AtomicBool::new(false);

/// A slice asked for did not fit.
#[derive(Debug, Clone, Copy)]
pub struct OutOfMemory {
    pub needed: usize,
    pub free: usize,
}

/// The static buffer, handed out front to back.
pub struct Pool {
    bytes: &'static mut [u8],
}

impl Pool {
    /// The whole static buffer; None after the first call.
    pub fn take() -> Option<Pool> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: TAKEN guards this: the only reference to POOL ever made.
        let bytes: &'static mut [u8] = unsafe { &mut (*core::ptr::addr_of_mut!(POOL)).0 };
        Some(Pool { bytes })
    }

    /// `n` values of `T`, each `T::default()`.
    pub fn slice<T: Default>(&mut self, n: usize) -> Result<&'static mut [T], OutOfMemory> {
        let addr = self.bytes.as_ptr() as usize;
        let pad = addr.next_multiple_of(align_of::<T>()) - addr;
        let needed = n.checked_mul(size_of::<T>()).and_then(|b| b.checked_add(pad)).unwrap_or(usize::MAX);
        if needed > self.bytes.len() {
            return Err(OutOfMemory { needed, free: self.bytes.len() });
        }
        let (head, tail) = core::mem::take(&mut self.bytes).split_at_mut(needed);
        self.bytes = tail;
        let ptr = head[pad..].as_mut_ptr() as *mut T;
        for i in 0..n {
            // SAFETY: head[pad..] holds n · size_of::<T>() bytes from ptr, which is
            // aligned for T (pad), and belongs to this slice alone.
            unsafe { ptr.add(i).write(T::default()) };
        }
        // SAFETY: the n values were just written; the bytes leave the pool for good.
        Ok(unsafe { core::slice::from_raw_parts_mut(ptr, n) })
    }

    /// Bytes not yet handed out.
    pub fn free(&self) -> usize {
        self.bytes.len()
    }
}
